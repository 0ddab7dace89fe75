"""Precompute MiDaS / DPT depth maps for a folder or BasicSR LMDB of HR images (``ssr.tools.precompute_depth``).

Each map is relative inverse depth (near = 1) normalised per image to [0, 1], at the image's size, stored as a 16-bit
PNG (0..65535 <-> 0..1) named like the image (file stem, or LMDB key): a folder of PNGs, or with ``--lmdb`` a BasicSR
LMDB, either read by ``SVDegradationDataset`` as ``dataroot_depth``. Weights come from a local official MiDaS file
only (https://github.com/isl-org/MiDaS/releases); nothing downloads. A run resumes: maps already written are kept.

Example:
    python scripts/precompute_depth.py -i datasets/DIV2K/DIV2K_train_HR_sub.lmdb \
        -o datasets/DIV2K/DIV2K_train_depth_sub.lmdb --lmdb \
        --variant dpt_large_384 --weights experiments/pretrained_models/dpt_large_384.pt --batch-size 8
"""
from __future__ import annotations

import argparse
import logging
import sys

import lmdb

import ssr  # noqa: F401  (compatibility fixes before basicsr is imported anywhere)
from ssr.archs.midas_depth_arch import MIDAS_VARIANTS
from ssr.tools.precompute_depth import precompute_depth

logger = logging.getLogger('precompute_depth')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('-i', '--input', required=True,
                   help='folder of HR images (searched recursively) or a BasicSR LMDB ending in .lmdb')
    p.add_argument('-o', '--output', required=True,
                   help='output folder of 16-bit PNGs, or with --lmdb an LMDB ending in .lmdb; may hold a partial run')
    p.add_argument('--lmdb', action='store_true', help='write a BasicSR LMDB instead of a folder (default: off)')
    p.add_argument('--variant', choices=list(MIDAS_VARIANTS), default='dpt_hybrid_384',
                   help='MiDaS / DPT model (default: dpt_hybrid_384)')
    p.add_argument('--weights', required=True, help='the official <variant>.pt file (local path; nothing downloads)')
    p.add_argument('--batch-size', type=int, default=4,
                   help='images per network pass; images with the same network input size share one (default: 4)')
    p.add_argument('--input-size', type=int, default=None,
                   help="network input size in pixels, a multiple of 32 (default: the variant's native 256/384/512)")
    p.add_argument('--device', default=None, help='torch device (default: cuda when available, else cpu)')
    p.add_argument('--quiet', action='store_true', help='no progress bar (default: off)')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        run = precompute_depth(args.input, args.output, variant=args.variant, weights=args.weights,
                               lmdb_output=args.lmdb, batch_size=args.batch_size, input_size=args.input_size,
                               device=args.device, progress=not args.quiet and sys.stderr.isatty())
    except (ValueError, FileNotFoundError) as e:
        logger.error('error: %s', e)
        return 2
    except (OSError, RuntimeError, lmdb.Error) as e:
        logger.error('error: %s (maps written so far are kept; run the same command again to resume)', e)
        return 1
    logger.info('%s: %d depth maps written, %d already there', args.output, run.written, run.skipped)
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
