"""Turn a folder of HR images into a fixed spatially variant test set.

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
import json
import logging
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np

MODES = {
    # DCLS "Gaussian8": 8 isotropic widths evenly spaced in [1.8, 3.2] (x4), one per image
    'gaussian8': {'modes': ['gaussian8']},
    'aniso': {'modes': ['uniform'], 'kernel_list': ['aniso'], 'kernel_prob': [1.0]},
    'sv_random': {'modes': ['random']},
    'sv_depth': {'modes': ['depth']},
}
GAUSSIAN8_SIGMAS = {2: [0.8, 1.6], 3: [1.35, 2.4], 4: [1.8, 3.2]}
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


def degradation_options(args: argparse.Namespace) -> dict:
    """The ``degradation`` option block equivalent to the command line (stored in protocol.json)."""
    kernel = dict(MODES[args.mode], sigma_range=list(args.sigma_range))
    if args.mode == 'gaussian8':
        if args.scale not in GAUSSIAN8_SIGMAS:
            raise ValueError(f'--mode gaussian8 is defined for scales {sorted(GAUSSIAN8_SIGMAS)}, not {args.scale}')
        kernel['gaussian8_sigmas'] = GAUSSIAN8_SIGMAS[args.scale]
    opt = {'kernel_size': args.kernel_size, 'kernel': kernel}
    if args.noise > 0:
        opt['noise'] = {'gaussian_prob': 1.0, 'poisson_prob': 0.0, 'gray_prob': 0.0,
                        'gaussian_sigma_range': [args.noise, args.noise]}
    if args.jpeg:
        if not 1 <= args.jpeg <= 100:
            raise ValueError(f'--jpeg must be in [1, 100], got {args.jpeg}')
        opt['jpeg'] = {'prob': 1.0, 'quality_range': [args.jpeg, args.jpeg]}
    return opt


def image_seed(seed: int, name: str) -> int:
    return (seed * 0x9E3779B1 + zlib.crc32(name.encode('utf-8'))) % (2 ** 63)


def read_inputs(args: argparse.Namespace) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """Decode every input (and its depth map) before anything is written; raise naming the first bad file."""
    import cv2

    from ssr.data.image_io import decode_depth, decode_image, list_images

    items, names = [], set()
    for path in list_images(args.input):
        if path.stem in names:
            raise ValueError(f'{path}: two inputs share the name {path.stem!r}')
        names.add(path.stem)
        img = decode_image(path.read_bytes(), str(path))
        if args.max_side and max(img.shape[:2]) > args.max_side:
            f = args.max_side / max(img.shape[:2])
            img = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA)
        h, w = (img.shape[0] // args.scale) * args.scale, (img.shape[1] // args.scale) * args.scale
        r = args.kernel_size // 2
        if h // args.scale < 1 or w // args.scale < 1 or h <= r or w <= r:
            raise ValueError(f'{path}: {img.shape[0]}x{img.shape[1]} is too small for scale {args.scale} and '
                             f'kernel size {args.kernel_size}')
        depth = None
        if args.depth_dir:
            candidates = [Path(args.depth_dir) / f'{path.stem}{ext}' for ext in ('.png', '.npy')]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise FileNotFoundError(f'--depth-dir {args.depth_dir!r} has no depth map for {path.name}')
            depth = decode_depth(found.read_bytes(), str(found))
            if depth.shape != img.shape[:2]:
                depth = cv2.resize(depth, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
            depth = depth[:h, :w]
        items.append((path.stem, img[:h, :w], depth))
    return items


def generate(args: argparse.Namespace, target: Path) -> dict:
    """Write the test set into ``target`` (an empty folder) and return the protocol."""
    import torch
    from tqdm import tqdm

    from ssr.data.degradation import SVDegradation
    from ssr.data.image_io import encode_depth_png, write_image

    opt = degradation_options(args)
    degrade = SVDegradation(opt, args.scale, source='generate_sv_testset')
    items = read_inputs(args)
    for sub in ('HR', 'LR', 'kernel', 'depth'):
        (target / sub).mkdir(parents=True)
    protocol = {'mode': args.mode, 'scale': args.scale, 'kernel_size': args.kernel_size, 'seed': args.seed,
                'depth': 'file' if args.depth_dir else 'synthetic', 'degradation': opt, 'images': {}}
    show = not args.quiet and sys.stderr.isatty()
    for name, img, depth in tqdm(items, total=len(items), unit='img', desc='degrade', disable=not show):
        seed = image_seed(args.seed, name)
        g = torch.Generator(device=args.device).manual_seed(seed)
        gt = torch.from_numpy(img.transpose(2, 0, 1).copy())[None].to(args.device)
        d = None if depth is None else torch.from_numpy(depth)[None, None].to(args.device)
        out = degrade(gt, d, g)
        write_image(target / 'HR' / f'{name}.png', img)
        write_image(target / 'LR' / f'{name}.png', out['lq'][0].permute(1, 2, 0).cpu().numpy())
        np.savez_compressed(target / 'kernel' / f'{name}.npz', kernel=out['kernel'][0].cpu().numpy().astype(np.float16))
        (target / 'depth' / f'{name}.png').write_bytes(encode_depth_png(out['depth'][0, 0].cpu().numpy()))
        protocol['images'][name] = {
            'seed': seed, 'hr_size': list(img.shape[:2]), 'lr_size': list(out['lq'].shape[-2:]),
            'kernel_family': degrade.modes[int(out['mode'][0])], 'noise_level': float(out['noise_level'][0]),
            'jpeg_quality': int(out['jpeg_quality'][0])}
    (target / 'protocol.json').write_text(json.dumps(protocol, indent=2), encoding='utf-8')
    return protocol


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format='%(name)s: %(message)s')
    import ssr  # noqa: F401  (compatibility fixes before basicsr is imported anywhere)

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it', output)
        return 1
    tmp = output.with_name(f'.{output.name}.tmp')
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        protocol = generate(args, tmp)
    except (OSError, ValueError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        logger.error('%s; nothing was written to %s', e, output)
        return 1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if output.exists():
        shutil.rmtree(output)
    tmp.rename(output)
    logger.info('wrote %d images (%s, x%d) to %s', len(protocol['images']), args.mode, args.scale, output)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
