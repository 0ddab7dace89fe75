"""Deviation studies of the paper's Fig. 8 / 9: SR quality when the kernel field (sigmas times 1 + δ) or the depth
map (D + δ, D · (1 + δ)) deviates from the method's own (``ssr.tools.deviation_study``).

The option file's test sets must store depth (``dataroot_depth``), e.g. the layered Set5 / Set14 of
``options/_base_/layered_test_sets_x4.yml``. Writes a markdown table, a CSV and a PNG figure (PSNR against δ).

Example:
    python scripts/deviation_study.py -opt options/depth_study/blind_depth_true.yml \\
        --deltas -0.5 -0.25 0 0.25 0.5 -o results/deviation/blind_layered.md
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import ssr  # noqa: F401  (compatibility fixes before basicsr is imported anywhere)
from ssr.tools.deviation_study import STUDIES, deviation_study

logger = logging.getLogger('deviation_study')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('-opt', '--opt', required=True, help='test option file (blind / non-blind NBSR or SSRModel '
                   'with conditions.source: svkr) whose test sets store depth')
    p.add_argument('-o', '--output', required=True, help='markdown table (.md); .csv and .png are written beside it')
    p.add_argument('--deltas', type=float, nargs='+', default=[-0.5, -0.25, 0.0, 0.25, 0.5],
                   help='deviations δ (default: -0.5 -0.25 0 0.25 0.5); 0 is always added')
    p.add_argument('--studies', nargs='+', choices=STUDIES, default=list(STUDIES),
                   help='which conditions to deviate (default: all)')
    p.add_argument('--kernel-reference', choices=['estimated', 'true'], default='estimated',
                   help="the field the kernel study deviates: the estimator's (the paper's Fig. 8) or the data's "
                        'ground truth (default: estimated)')
    p.add_argument('--testsets', nargs='*', default=None, help='test-set names to keep (default: all)')
    p.add_argument('--max-images', type=int, default=0, help='first N images of each set (default: 0 = all)')
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu', help='default: cpu')
    p.add_argument('--overwrite', action='store_true', help='replace an existing table')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[deviation_study] %(message)s')
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it', output)
        return 1
    if args.max_images < 0:
        logger.error('--max-images must be >= 0, got %d', args.max_images)
        return 2
    try:
        text = deviation_study(args.opt, output, args.deltas, args.studies, args.testsets, args.max_images,
                               args.device, progress=logger.info,
                               kernel_reference=args.kernel_reference)
    except (FileNotFoundError, ValueError, KeyError) as e:
        logger.error('%s', e)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
