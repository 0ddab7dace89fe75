"""Super-resolve any image or folder of images with a trained model (blind DKENet + NBSR, SSR, RealSR, ...).

The model is whatever an option file describes (``model_type``, ``network_*``, ``path.pretrain_network_*``); it is
built once, then every image goes through ``model.feed_data({'lq': ...})`` + ``model.test()``, whole or in tiles.

Inputs (decoded with the policy of :mod:`ssr.data.image_io`):
    - 8-bit RGB / JPEG: SR written as an 8-bit PNG;
    - grayscale: SR of the replicated RGB, written back as one channel (BT.601 luma of the SR);
    - RGBA: RGB through the model, alpha upscaled separately (bicubic, clipped to [0, 1]) and re-attached;
    - 16-bit: SR written as a 16-bit PNG (values in [0, 1] scaled by 65535).
    Every output is a PNG named ``<stem><suffix>.png`` (sub-folders of an input folder are kept).
    Files a folder holds with non-image extensions are ignored (debug log); hidden files are ignored.

Bad files: a file that does not decode (corrupt, or text named ``*.png``), an image with a side under
``MIN_SIDE`` LR pixels, an output name two inputs share, or a model error on one image is logged on stderr with the
path and the reason, and skipped; the run goes on.

Exit code: 0 when every image was written or skipped as already done; otherwise the number of failed images,
capped at 125. A setup failure (option file, weights, CUDA missing, no image in the folder) exits 1 and argparse
misuse (or ``--bf16`` without ``--device cuda``) exits 2; the log says which case it is.

Outputs are written to a temporary file beside the target, then renamed, so no partial file is left. An image
whose requested outputs all exist is skipped with a message unless ``--overwrite``; existing ones are never
rewritten without it.

Tiling (``--tile N``): the LR is cut into N x N tiles overlapping by ``--tile-overlap`` pixels, each tile is
super-resolved on its own (the networks are fully convolutional) and the SR tiles (and the kernel / depth fields)
are blended with weights that ramp linearly across each overlap (a partition of unity between two neighbours), so
seams are feathered. An image no larger than one tile runs untiled, bit for bit. With ``svkr.depth: midas`` each tile
gets its own relative depth, which may differ in scale between tiles: prefer large tiles there.

Examples:
    python scripts/inference_ssr.py -i photos/ -o results/photos_sr
    python scripts/inference_ssr.py -i big.jpg -o out/ --tile 256 --tile-overlap 16 --save-kernel --device cuda --bf16
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_OPT = 'options/test_blind_demo_x4.yml'
# Smallest LR side accepted: DKENet's stride-2 stage and 3x3 convolutions see nothing but padding below this, so
# the kernel estimate (and the SR built on it) of a 1x1 or 2x2 image is meaningless; such files are reported.
MIN_SIDE = 4
MAX_EXIT = 125  # exit codes above 125 mean "not executable" / "killed by a signal" to shells
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # RGB -> gray for grayscale inputs (ITU-R BT.601)
logger = logging.getLogger('inference_ssr')


# ----------------------------------------------------------------------------------------------------------------
# model
def load_model(opt_path: str | os.PathLike, device: str = 'cpu'):
    """Build the model of an option file for inference on ``device`` (``cpu`` or ``cuda``).

    Adds the settings BasicSR's test pipeline adds (``dist``, ``rank``, ``world_size``, ``is_train``, ``num_gpu``)
    and drops ``datasets``. ``svkr.depth: file`` (depth maps from a test set) becomes ``none`` (a constant map, the
    paper's no-depth ablation) with a warning, since plain images carry no depth; use ``midas`` with a
    ``network_d`` for estimated depth.

    Raises:
        FileNotFoundError: the option file or a weight file is missing.
        RuntimeError: ``device='cuda'`` without CUDA.
    """
    import ssr  # noqa: F401  (first: compatibility fixes basicsr needs, and the registries)

    import torch
    from basicsr.models import build_model

    from ssr.utils.options import inference_options

    if device == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda asked for but CUDA is not available; use --device cpu')
    opt = inference_options(opt_path, device)
    opt.pop('datasets', None)
    svkr = opt.get('svkr')
    if isinstance(svkr, dict) and svkr.get('depth') == 'file':
        logger.warning('%s: svkr.depth: file needs a test set\'s depth maps; using depth: none (constant depth)',
                       opt_path)
        svkr['depth'] = 'none'
    return build_model(opt)


# ----------------------------------------------------------------------------------------------------------------
# tiled inference
def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: a stride of ``tile - overlap``, the last tile flush with the end."""
    if length <= tile:
        return [0]
    step = tile - overlap
    return list(range(0, length - tile, step)) + [length - tile]


def _ramp(size: int, ramp: int, left: bool, right: bool) -> np.ndarray:
    """1-D blending weights: 1 inside, rising linearly over ``ramp`` pixels on each side that has a neighbour."""
    w = np.ones(size, np.float32)
    if ramp > 0:
        up = np.minimum(1.0, (np.arange(size, dtype=np.float32) + 0.5) / ramp)
        if left:
            w *= up
        if right:
            w *= up[::-1]
    return w


class _Blender:
    """Accumulates weighted tiles of a (C, H*f, W*f) field whose tiles come from LR tiles (f: grid factor)."""

    def __init__(self, lr_shape: tuple[int, int], overlap: int):
        self.lr_h, self.lr_w = lr_shape
        self.overlap = overlap
        self.acc = self.weight = None
        self.factor = None

    def add(self, tile: np.ndarray, y0: int, x0: int, th: int, tw: int) -> None:
        c, h, w = tile.shape
        if self.factor is None:
            self.factor = h // th
            if self.factor < 1 or h != self.factor * th or w != self.factor * tw:
                raise ValueError(f'a {h}x{w} field from a {th}x{tw} LR tile is not on an integer multiple grid')
            f = self.factor
            self.acc = np.zeros((c, self.lr_h * f, self.lr_w * f), np.float32)
            self.weight = np.zeros((self.lr_h * f, self.lr_w * f), np.float32)
        f = self.factor
        if h != f * th or w != f * tw:
            raise ValueError(f'tile field of {h}x{w} does not match the {f}x grid of a {th}x{tw} tile')
        wy = _ramp(h, self.overlap * f, y0 > 0, y0 + th < self.lr_h)
        wx = _ramp(w, self.overlap * f, x0 > 0, x0 + tw < self.lr_w)
        weight = wy[:, None] * wx[None, :]
        ys, xs = slice(y0 * f, y0 * f + h), slice(x0 * f, x0 * f + w)
        self.acc[:, ys, xs] += tile * weight
        self.weight[ys, xs] += weight

    def result(self) -> np.ndarray:
        return self.acc / self.weight


def _run(model, lq_hwc: np.ndarray, bf16: bool):
    """One forward pass: ``(H, W, 3)`` -> SR ``(3, sH, sW)``, kernel ``(k*k, H, W)`` or None, depth ``(1, ., .)``."""
    import torch

    from ssr.data.image_io import hwc_to_chw_tensor

    model.feed_data({'lq': hwc_to_chw_tensor(lq_hwc)[None]})
    autocast = torch.autocast('cuda', dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        model.test()

    def numpy(t):
        return None if t is None else t[0].detach().float().cpu().numpy()

    depth = numpy(getattr(model, 'depth_est', None))
    if depth is not None:
        depth = depth.reshape(1, *depth.shape[-2:])
    return numpy(model.output), numpy(getattr(model, 'kernel_est', None)), depth


def super_resolve_image(model, img_rgb: np.ndarray, tile: int = 0, overlap: int = 0, *, bf16: bool = False,
                        keep_kernel: bool = True, keep_depth: bool = True):
    """Super-resolve one image, whole or in overlapping tiles.

    Args:
        model: a built model (``feed_data`` + ``test``, results in ``output`` / ``kernel_est`` / ``depth_est``).
        img_rgb: ``(H, W, 3)`` float32 RGB in [0, 1].
        tile: LR tile side in pixels; 0 (or an image no larger than a tile) runs the image whole.
        overlap: LR pixels shared by neighbouring tiles (blended linearly); ``0 <= overlap < tile``.
        bf16: run under CUDA bfloat16 autocast.
        keep_kernel / keep_depth: stitch and return those fields (the kernel field is large: k*k per LR pixel).

    Returns:
        ``(sr, kernel, depth)``: SR ``(sH, sW, 3)`` float32 clipped to [0, 1]; the kernel field ``(k*k, H, W)`` or
        None (a kernel-unaware model, or ``keep_kernel=False``); the depth ``(H', W')`` or None.
    """
    if img_rgb.ndim != 3 or img_rgb.shape[2] != 3:
        raise ValueError(f'img_rgb must be (H, W, 3), got shape {img_rgb.shape}')
    if tile < 0 or overlap < 0 or (tile and overlap >= tile):
        raise ValueError(f'need tile >= 0 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}')
    h, w = img_rgb.shape[:2]
    if not tile or (h <= tile and w <= tile):
        sr, kernel, depth = _run(model, img_rgb, bf16)
    else:
        blenders = {'sr': _Blender((h, w), overlap), 'kernel': _Blender((h, w), overlap),
                    'depth': _Blender((h, w), overlap)}
        for y0 in _starts(h, tile, overlap):
            for x0 in _starts(w, tile, overlap):
                th, tw = min(tile, h), min(tile, w)
                out = _run(model, np.ascontiguousarray(img_rgb[y0:y0 + th, x0:x0 + tw]), bf16)
                for name, field in zip(blenders, out):
                    if field is not None and (name == 'sr' or (keep_kernel if name == 'kernel' else keep_depth)):
                        blenders[name].add(field, y0, x0, th, tw)
        sr, kernel, depth = (b.result() if b.acc is not None else None for b in blenders.values())
    sr = np.clip(sr.transpose(1, 2, 0), 0.0, 1.0)
    kernel = kernel if keep_kernel else None
    depth = depth[0] if keep_depth and depth is not None else None
    return np.ascontiguousarray(sr), kernel, depth


# ----------------------------------------------------------------------------------------------------------------
# files
@dataclass
class Settings:
    """What ``process_file`` does with an image (the CLI flags)."""

    tile: int = 0
    overlap: int = 16
    bf16: bool = False
    save_kernel: bool = False
    save_depth: bool = False
    overwrite: bool = False
    suffix: str = '_SR'


def output_paths(source: Path, out_dir: Path, settings: Settings, rel: Path | None = None) -> dict[str, Path]:
    """Target paths of one input: ``sr`` always, ``kernel`` / ``kernel_field`` / ``depth`` when asked for."""
    rel = rel if rel is not None else Path(source.name)
    base = out_dir / rel.parent / f'{rel.stem}{settings.suffix}'
    paths = {'sr': base.with_name(base.name + '.png')}
    if settings.save_kernel:
        paths['kernel'] = base.with_name(base.name + '_kernel_var.png')
        paths['kernel_field'] = base.with_name(base.name + '_kernel.npz')
    if settings.save_depth:
        paths['depth'] = base.with_name(base.name + '_depth.png')
    return paths


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None, bool, bool]:
    """``(rgb (H, W, 3) float32, alpha (H, W) float32 or None, is_gray, is_16bit)``.

    Raises:
        ValueError: the file does not decode, or is smaller than ``MIN_SIDE`` pixels on a side.
    """
    import cv2

    from ssr.data.image_io import decode_image

    content = path.read_bytes()
    rgb = decode_image(content, str(path))  # the project policy; raises ValueError naming the file
    raw = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    channels = 1 if raw.ndim == 2 else raw.shape[2]
    scale = 65535.0 if raw.dtype == np.uint16 else 255.0
    alpha = raw[..., 3].astype(np.float32) / scale if channels == 4 else None
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise ValueError(f'{path}: {rgb.shape[1]}x{rgb.shape[0]} is too small (each side needs >= {MIN_SIDE} px)')
    return rgb, alpha, channels == 1, raw.dtype == np.uint16


def encode_png(img: np.ndarray, sixteen_bit: bool) -> bytes:
    """``(H, W)`` / ``(H, W, 3)`` RGB / ``(H, W, 4)`` RGBA float in [0, 1] -> 8- or 16-bit PNG bytes."""
    import cv2

    peak, dtype = (65535.0, np.uint16) if sixteen_bit else (255.0, np.uint8)
    data = np.round(np.clip(img, 0.0, 1.0) * peak).astype(dtype)
    if data.ndim == 3:
        data = cv2.cvtColor(data, cv2.COLOR_RGBA2BGRA if data.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.png', data)
    if not ok:
        raise ValueError(f'could not encode a {data.shape} {data.dtype} PNG')
    return buf.tobytes()


def _encode_outputs(paths: dict[str, Path], sr: np.ndarray, kernel, depth, alpha, gray: bool, sixteen: bool):
    import cv2

    from ssr.data.image_io import encode_depth_png

    data = {}
    if 'sr' in paths:
        img = sr
        if gray:
            img = sr @ LUMA
        elif alpha is not None:
            up = cv2.resize(alpha, (sr.shape[1], sr.shape[0]), interpolation=cv2.INTER_CUBIC)
            img = np.concatenate([sr, np.clip(up, 0.0, 1.0)[..., None]], axis=2)
        data['sr'] = encode_png(img, sixteen)
    if 'kernel' in paths or 'kernel_field' in paths:
        if kernel is None:
            logger.warning('the model estimates no kernel field: no %s written', paths.get('kernel'))
        else:
            import torch

            from ssr.utils.visualize import colorize, kernel_variance_map

            if 'kernel' in paths:
                ok, buf = cv2.imencode('.png', colorize(kernel_variance_map(torch.from_numpy(kernel)), 'viridis'))
                data['kernel'] = buf.tobytes()
            if 'kernel_field' in paths:
                stream = io.BytesIO()
                np.savez_compressed(stream, kernel=kernel.astype(np.float16))
                data['kernel_field'] = stream.getvalue()
    if 'depth' in paths:
        if depth is None:
            logger.warning('the model estimates no depth: no %s written', paths['depth'])
        else:
            data['depth'] = encode_depth_png(depth)
    return data


def _write_all(paths: dict[str, Path], data: dict[str, bytes]) -> None:
    """Write every encoded output to a temporary file beside its target, then rename them all."""
    temps = {}
    try:
        for key, content in data.items():
            target = paths[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f'.{target.name}.{os.getpid()}.tmp')
            temps[key] = tmp
            tmp.write_bytes(content)
        for key, tmp in temps.items():
            tmp.replace(paths[key])
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def process_file(model, source: Path, paths: dict[str, Path], settings: Settings) -> str:
    """Super-resolve ``source`` into ``paths``; returns ``'written'`` or ``'skipped'`` (all outputs exist).

    Without ``settings.overwrite`` only missing outputs are written. Raises ``ValueError`` (undecodable or too
    small), ``OSError`` or a model error; the caller reports them.
    """
    todo = paths if settings.overwrite else {k: p for k, p in paths.items() if not p.exists()}
    if not todo:
        logger.info('%s: outputs exist, skipped (use --overwrite to redo)', source)
        return 'skipped'
    rgb, alpha, gray, sixteen = read_image(source)
    sr, kernel, depth = super_resolve_image(model, rgb, settings.tile, settings.overlap, bf16=settings.bf16,
                                            keep_kernel='kernel' in todo or 'kernel_field' in todo,
                                            keep_depth='depth' in todo)
    _write_all(todo, _encode_outputs(todo, sr, kernel, depth, alpha, gray, sixteen))
    return 'written'


def collect_inputs(path: Path) -> list[tuple[Path, Path]]:
    """``(file, path relative to the input folder)`` of every image under ``path`` (a file gives itself)."""
    from ssr.data.image_io import IMAGE_EXTENSIONS

    if path.is_file():
        return [(path, Path(path.name))]
    found = []
    for p in sorted(path.rglob('*')):
        if not p.is_file() or p.name.startswith('.'):
            continue
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            logger.debug('%s: not an image extension, ignored', p)
            continue
        found.append((p, p.relative_to(path)))
    return found


# ----------------------------------------------------------------------------------------------------------------
# command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Super-resolve an image or a folder of images with a trained model chosen by option file. '
                    'Exit code: 0 if all images succeed, else the number that failed (at most 125); 1 for a setup '
                    'failure, 2 for misuse.')
    parser.add_argument('-i', '--input', required=True, help='image file or folder (searched recursively)')
    parser.add_argument('-o', '--output', required=True,
                        help='output folder; SR images are <stem><suffix>.png, sub-folders are kept')
    parser.add_argument('--opt', default=DEFAULT_OPT,
                        help=f'option file of a trained model, relative to the working directory or the '
                             f'repository root (default: {DEFAULT_OPT})')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu', help='where to run (default: cpu)')
    parser.add_argument('--bf16', action='store_true',
                        help='bfloat16 autocast; needs --device cuda (default: off, float32)')
    parser.add_argument('--tile', type=int, default=0,
                        help=f'LR tile side in pixels, 0 = whole image (default: 0); at least {MIN_SIDE}')
    parser.add_argument('--tile-overlap', type=int, default=16,
                        help='LR pixels shared by neighbouring tiles, blended linearly; below --tile (default: 16)')
    parser.add_argument('--save-kernel', action='store_true',
                        help='also write <stem><suffix>_kernel_var.png (heatmap of per-pixel kernel variance) and '
                             '<stem><suffix>_kernel.npz (the LR-grid field, key "kernel", float16) (default: off)')
    parser.add_argument('--save-depth', action='store_true',
                        help='also write <stem><suffix>_depth.png, the estimated depth as 16-bit PNG (default: off)')
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite existing outputs (default: off, images whose outputs exist are skipped)')
    parser.add_argument('--suffix', default='_SR', help='appended to each output stem (default: _SR)')
    parser.add_argument('--seed', type=int, default=0, help='torch seed, for models that sample (default: 0)')
    parser.add_argument('--quiet', action='store_true',
                        help='warnings and errors only, no progress bar (default: off)')
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bf16 and args.device != 'cuda':
        parser.error('--bf16 needs --device cuda (bfloat16 autocast on the CPU is slow and not supported here)')
    if args.tile < 0 or (args.tile and args.tile < MIN_SIDE):
        parser.error(f'--tile {args.tile}: use 0 (off) or at least {MIN_SIDE} pixels')
    if args.tile_overlap < 0 or (args.tile and args.tile_overlap >= args.tile):
        parser.error(f'--tile-overlap {args.tile_overlap}: need 0 <= overlap < --tile ({args.tile})')
    source = Path(args.input)
    if not source.exists():
        parser.error(f'--input {str(source)!r} does not exist')
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)

    inputs = collect_inputs(source)
    if not inputs:
        logger.error('%s holds no image file; nothing to do', source)
        return 1
    settings = Settings(tile=args.tile, overlap=args.tile_overlap, bf16=args.bf16, save_kernel=args.save_kernel,
                        save_depth=args.save_depth, overwrite=args.overwrite, suffix=args.suffix)
    out_dir = Path(args.output)
    import torch

    torch.manual_seed(args.seed)
    basicsr_log = logging.getLogger('basicsr')
    level = basicsr_log.level
    basicsr_log.setLevel(logging.WARNING)  # BasicSR prints every network's structure at INFO
    try:
        model = load_model(args.opt, args.device)
    except Exception as exc:  # noqa: BLE001  (option, weight and device errors all end the run the same way)
        logger.error('could not build the model from %s: %s', args.opt, exc)
        return 1
    finally:
        basicsr_log.setLevel(level)

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    failed, written, skipped, claimed = [], 0, 0, {}
    progress = not args.quiet and sys.stderr.isatty()
    with logging_redirect_tqdm(), tqdm(total=len(inputs), unit='img', desc='SR', disable=not progress) as bar:
        for path, rel in inputs:
            paths = output_paths(path, out_dir, settings, rel)
            try:
                if paths['sr'] in claimed:
                    raise ValueError(f'{path}: output {paths["sr"]} is also the output of {claimed[paths["sr"]]}; '
                                     'rename one of them')
                claimed[paths['sr']] = path
                if process_file(model, path, paths, settings) == 'written':
                    written += 1
                else:
                    skipped += 1
            except Exception as exc:  # noqa: BLE001  (one bad image must not stop the run)
                reason = str(exc) if str(path) in str(exc) else f'{path}: {exc}'
                logger.error('failed, skipped: %s', reason)
                failed.append(path)
            bar.update(1)
    logger.info('%d written, %d skipped (outputs exist), %d failed -> %s', written, skipped, len(failed), out_dir)
    if failed:
        logger.error('%d of %d images failed: %s', len(failed), len(inputs), ', '.join(map(str, failed)))
    return min(len(failed), MAX_EXIT)


if __name__ == '__main__':
    raise SystemExit(main())
