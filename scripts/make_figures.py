"""PNG figures: kernel-variance heatmaps (paper Fig. 8), depth colormaps, the SVKR strip (paper Fig. 4), crops.

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
    k.add_argument('--height', type=int, default=256, help='figure height in pixels (default: 256)')
    d = sub.add_parser('depth', help='colormap of a depth map')
    d.add_argument('-i', '--input', required=True, help='depth PNG (16- or 8-bit) or .npy in [0, 1]')
    d.add_argument('--height', type=int, default=256, help='figure height in pixels (default: 256)')
    c = sub.add_parser('crops', help='the same crop of several images side by side')
    c.add_argument('--image', action='append', required=True, metavar='NAME=PATH', help='repeat per method, in order')
    c.add_argument('--box', type=int, nargs=4, required=True, metavar=('X', 'Y', 'W', 'H'), help='crop, pixels')
    c.add_argument('--zoom', type=int, default=2, help='nearest-neighbour enlargement (default: 2)')
    s = sub.add_parser('svkr-strip', help='depth and kernel variance at every SVKR iteration for one image')
    s.add_argument('--opt', required=True, help='a BlindSRModel test option file (e.g. options/test_blind_x4.yml)')
    s.add_argument('--testset', required=True, help='an SV test-set folder (LR/, HR/, depth/, kernel/)')
    s.add_argument('--name', required=True, help='image name (file stem) in the test set')
    s.add_argument('--height', type=int, default=128, help='panel height in pixels (default: 128)')
    s.add_argument('--device', default='cpu', help='torch device (default: cpu)')
    for parser in (k, d, c, s):
        parser.add_argument('-o', '--output', required=True, help='output PNG')
        parser.add_argument('--overwrite', action='store_true', help='replace an existing output (default: off)')
    return p


def kernel_heatmap(path: str, height: int):
    import torch

    from ssr.data.sv_paired_dataset import load_kernel_field
    from ssr.utils.visualize import colorize, kernel_variance_map, label, resize_nearest

    var = kernel_variance_map(torch.from_numpy(load_kernel_field(path)))
    width = max(1, round(height * var.shape[1] / var.shape[0]))
    return label(resize_nearest(colorize(var, 'viridis'), height, width),
                 f'kernel variance {float(var.min()):.2f}-{float(var.max()):.2f} px^2')


def depth_figure(path: str, height: int):
    from ssr.data.image_io import decode_depth
    from ssr.utils.visualize import colorize, label, resize_nearest

    depth = decode_depth(Path(path).read_bytes(), path)
    width = max(1, round(height * depth.shape[1] / depth.shape[0]))
    return label(resize_nearest(colorize(depth, 'magma', 0, 1), height, width), 'depth (near = bright)')


def crops_figure(items: list[str], box, zoom: int):
    import cv2

    from ssr.utils.visualize import crops_side_by_side

    images = {}
    for item in items:
        name, _, path = item.partition('=')
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if not path or img is None:
            raise ValueError(f'--image {item!r}: give NAME=PATH of a readable image')
        images[name] = img
    return crops_side_by_side(images, tuple(box), zoom)


def svkr_figure(opt_path: str, testset: str, name: str, height: int, device: str):
    import torch
    from basicsr.models import build_model

    from ssr.data.sv_paired_dataset import SVPairedDataset
    from ssr.utils.options import inference_options
    from ssr.utils.visualize import svkr_strip

    opt = inference_options(opt_path, device)
    opt['svkr'] = {**(opt.get('svkr') or {}), 'save_iterates': True}
    if opt['model_type'] != 'BlindSRModel' or 'network_e' not in opt:
        raise ValueError(f'{opt_path}: svkr-strip needs a BlindSRModel with a kernel estimator (network_e)')
    dataset = SVPairedDataset({'name': 'figure', 'dataroot': testset, 'scale': opt.get('scale', 4)})
    if name not in dataset.names:
        raise ValueError(f'{testset} has no image {name!r}; it holds {dataset.names[:10]}')
    sample = dataset[dataset.names.index(name)]
    model = build_model(opt)
    batch = {k: (v[None] if isinstance(v, torch.Tensor) else [v]) for k, v in sample.items()}
    model.feed_data(batch)
    model.test()
    return svkr_strip(model.svkr_output.iterates, height)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s')
    import ssr  # noqa: F401
    from ssr.utils.visualize import write_png

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it', out)
        return 1
    try:
        if args.command == 'kernel-heatmap':
            fig = kernel_heatmap(args.input, args.height)
        elif args.command == 'depth':
            fig = depth_figure(args.input, args.height)
        elif args.command == 'crops':
            fig = crops_figure(args.image, args.box, args.zoom)
        else:
            fig = svkr_figure(args.opt, args.testset, args.name, args.height, args.device)
    except (OSError, ValueError, KeyError) as e:
        logger.error('%s', e)
        return 1
    write_png(out, fig)
    logger.info('wrote %s (%dx%d)', out, fig.shape[1], fig.shape[0])
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
