"""Turn a folder of HR images into a fixed spatially variant test set (``ssr.data.sv_testset``).

Output layout (read by ``SVPairedDataset`` with ``dataroot: <output>``)::

    <output>/HR/<name>.png       HR mod-cropped to a multiple of the scale
    <output>/LR/<name>.png       degraded LR (SV blur + s-fold subsampling [+ noise] [+ JPEG])
    <output>/kernel/<name>.npz   'kernel': (k*k, h, w) float16 field on the LR grid
    <output>/depth/<name>.png    16-bit depth (relative inverse depth, 0..1 -> 0..65535) at HR size
    <output>/protocol.json       every setting, and per image its seed, kernel family, noise level, JPEG quality

Each image's generator is seeded from ``(--seed, crc32(name))``, so a set is reproducible and an image's
degradation does not depend on which other images are in the folder.

Example:
    python scripts/generate_sv_testset.py -i datasets/Set14/HR -o datasets/Set14_sv_depth --mode sv_depth
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import ssr  # noqa: F401  (compatibility fixes before basicsr is imported anywhere)
from ssr.data.sv_testset import MODES, SVTestSetConfig, generate_sv_testset

logger = logging.getLogger('generate_sv_testset')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('-i', '--input', required=True, help='folder of HR images (PNG/JPEG/...; other files are ignored)')
    p.add_argument('-o', '--output', required=True, help='output folder (must not exist unless --overwrite)')
    p.add_argument('--mode', choices=sorted(MODES), default='sv_depth', help='kernel family (default: sv_depth)')
    p.add_argument('--scale', type=int, default=4, help='subsampling factor s (default: 4)')
    p.add_argument('--kernel-size', type=int, default=21, help='kernel taps per side, odd (default: 21)')
    p.add_argument('--sigma-range', type=float, nargs=2, default=[0.2, 4.0],
                   help='Gaussian std range in HR pixels for aniso / sv modes (default: 0.2 4.0)')
    p.add_argument('--noise', type=float, default=0.0,
                   help='Gaussian noise std in 0-255 units, applied to every image (default: 0 = none)')
    p.add_argument('--jpeg', type=int, default=0, help='JPEG quality 1-100 for every image (default: 0 = none)')
    p.add_argument('--depth-dir', default=None,
                   help='depth maps named like the images (16-bit PNG / .npy, HR size); default: synthetic depth')
    p.add_argument('--max-side', type=int, default=0,
                   help='downscale (INTER_AREA) images whose longer side exceeds this many pixels (default: 0 = off)')
    p.add_argument('--seed', type=int, default=0, help='base seed (default: 0)')
    p.add_argument('--device', default='cpu', help='torch device for the degradation (default: cpu)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing output folder')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format='%(name)s: %(message)s')
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it', output)
        return 1
    config = SVTestSetConfig(mode=args.mode, scale=args.scale, kernel_size=args.kernel_size,
                             sigma_range=tuple(args.sigma_range), noise=args.noise, jpeg=args.jpeg,
                             depth_dir=args.depth_dir, max_side=args.max_side, seed=args.seed, device=args.device)
    try:
        generate_sv_testset(args.input, output, config, overwrite=args.overwrite,
                            progress=not args.quiet and sys.stderr.isatty())
    except (OSError, ValueError) as e:
        logger.error('%s; nothing was written to %s', e, output)
        return 1
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
