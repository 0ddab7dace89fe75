"""PNG figures (``ssr.tools.figures``): kernel-variance heatmaps (paper Fig. 8), depth colormaps, the SVKR strip
(paper Fig. 4), crops.

Sub-commands:
    kernel-heatmap -i kernel/NAME.npz -o fig.png       a stored kernel field (generate_sv_testset.py / --save-kernel)
    depth          -i depth/NAME.png  -o fig.png       a 16-bit / 8-bit depth map
    crops          --image bicubic=a.png --image ours=b.png --box X Y W H -o fig.png
    svkr-strip     --opt options/test_blind_x4.yml --testset datasets/Set5_sv_depth --name img_001 -o fig.png

Example:
    python scripts/make_figures.py kernel-heatmap -i demo/testset_sv_depth/kernel/chelsea.npz -o results/k.png
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger('make_figures')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    k = sub.add_parser('kernel-heatmap', help='heatmap of per-pixel kernel variance of an .npz field')
    k.add_argument('-i', '--input', required=True, help='.npz with "kernel" (k*k, h, w)')
    k.add_argument('--height', type=int, default=256, help='map height in pixels, at least 96 (default: 256)')
    k.add_argument('--vmin', type=float, default=None, help='colour-bar minimum, px^2 (default: the map minimum); '
                   'give compared figures the same --vmin / --vmax')
    k.add_argument('--vmax', type=float, default=None, help='colour-bar maximum, px^2 (default: the map maximum)')
    d = sub.add_parser('depth', help='colormap of a depth map')
    d.add_argument('-i', '--input', required=True, help='depth PNG (16- or 8-bit) or .npy in [0, 1]')
    d.add_argument('--height', type=int, default=256, help='map height in pixels, at least 96 (default: 256)')
    c = sub.add_parser('crops', help='the same crop of several images side by side')
    c.add_argument('--image', action='append', required=True, metavar='NAME=PATH', help='repeat per method, in order')
    c.add_argument('--box', type=int, nargs=4, required=True, metavar=('X', 'Y', 'W', 'H'), help='crop, pixels')
    c.add_argument('--zoom', type=int, default=2, help='nearest-neighbour enlargement (default: 2)')
    s = sub.add_parser('svkr-strip', help='D^t and kernel variance of K^t at every SVKR iteration beside the true '
                       'ones, on shared colour bars (matplotlib)')
    s.add_argument('--opt', required=True, help='a BlindSRModel test option file (e.g. options/test_blind_x4.yml)')
    s.add_argument('--testset', required=True, help='an SV test-set folder (LR/, HR/, depth/, kernel/)')
    s.add_argument('--name', required=True, help='image name (file stem) in the test set')
    s.add_argument('--height', type=int, default=128,
                   help='side of each panel in pixels, at least 96 so labels stay readable (default: 128)')
    s.add_argument('--device', default='cpu', help='torch device (default: cpu)')
    for parser in (k, d, c, s):
        parser.add_argument('-o', '--output', required=True, help='output PNG')
        parser.add_argument('--overwrite', action='store_true', help='replace an existing output (default: off)')
    return p


def parse_images(items: list[str]) -> dict[str, str]:
    """``--image NAME=PATH`` values as ``{NAME: PATH}`` in order."""
    images = {}
    for item in items:
        name, _, path = item.partition('=')
        if not path:
            raise ValueError(f'--image {item!r}: give NAME=PATH of a readable image')
        images[name] = path
    return images


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s')
    import ssr  # noqa: F401
    from ssr.tools.figures import crops_figure, depth_figure, kernel_heatmap_figure, svkr_strip_figure
    from ssr.utils.visualize import write_png

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it', out)
        return 1
    try:
        if args.command == 'kernel-heatmap':
            fig = kernel_heatmap_figure(args.input, args.height, args.vmin, args.vmax)
        elif args.command == 'depth':
            fig = depth_figure(args.input, args.height)
        elif args.command == 'crops':
            fig = crops_figure(parse_images(args.image), args.box, args.zoom)
        else:
            fig = svkr_strip_figure(args.opt, args.testset, args.name, args.height, args.device)
    except (OSError, ValueError, KeyError) as e:
        logger.error('%s', e)
        return 1
    write_png(out, fig)
    logger.info('wrote %s (%dx%d)', out, fig.shape[1], fig.shape[0])
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
