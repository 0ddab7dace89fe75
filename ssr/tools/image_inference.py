"""Super-resolving image files with the inference path of an option file (the driver of ``scripts/inference_ssr.py``).

The path is built without a BasicSR model: ``SSRModel`` files give an :class:`~ssr.pipelines.ssr_pipeline.SSRPipeline`
(``conditions.source: svkr``), every other file the blind path of ``network_g`` / ``network_e`` / ``network_d``
(:func:`~ssr.pipelines.svkr.blind_sr`: SVKR with an estimator, the SR network alone without one). Each image goes
through it whole or in overlapping LR tiles blended with the Gaussian weights of :mod:`ssr.pipelines.tiling`.

Inputs (decoded with the policy of :mod:`ssr.data.image_io`):
    - 8-bit RGB / JPEG: SR written as an 8-bit PNG;
    - grayscale: SR of the replicated RGB, written back as one channel (BT.601 luma of the SR);
    - RGBA: RGB through the model, alpha upscaled separately (bicubic, clipped to [0, 1]) and re-attached;
    - 16-bit: SR written as a 16-bit PNG (values in [0, 1] scaled by 65535).
Every output is a PNG named ``<stem><suffix>.png`` (sub-folders of an input folder are kept), written to a temporary
file beside the target and then renamed.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ssr.pipelines.loading import network_from_options, option_file
from ssr.pipelines.ssr_pipeline import SSRPipeline
from ssr.pipelines.svkr import SVKRConfig, blind_sr
from ssr.pipelines.tiling import tiled_fields

__all__ = ['ImagePipeline', 'Settings', 'check_output_folder', 'collect_inputs', 'load_pipeline', 'output_paths', 'process_file',
           'process_inputs', 'read_image', 'super_resolve_image']

# Smallest LR side accepted: DKENet's stride-2 stage and 3x3 convolutions see nothing but padding below this, so
# the kernel estimate (and the SR built on it) of a 1x1 or 2x2 image is meaningless; such files are reported.
MIN_SIDE = 4
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # RGB -> gray for grayscale inputs (ITU-R BT.601)
logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# the inference path
@dataclass
class ImagePipeline:
    """``lq (B, 3, h, w) in [0, 1] -> {'sr': (B, 3, sh, sw), 'kernel': (B, k*k, h, w) or None, 'depth': (B, 1, H',
    W') or None}`` on ``device``, gradients off.

    Attributes:
        run: an :class:`SSRPipeline`, :class:`~ssr.pipelines.svkr.SVKR` or ``OneNetworkSR``.
        device: where ``run``'s networks are; inputs are moved there.
    """

    run: Callable
    device: torch.device

    def __call__(self, lq: Tensor) -> dict[str, Tensor | None]:
        with torch.no_grad():
            out = self.run(lq.to(self.device))
        return {'sr': out.sr, 'kernel': out.kernel, 'depth': out.depth}


def load_pipeline(opt_path: str | os.PathLike, device: str = 'cpu') -> ImagePipeline:
    """The inference path of a test option file on ``device`` (``cpu`` or ``cuda``).

    ``svkr.depth: file`` (depth maps from a test set) becomes ``none`` (a constant map, the paper's no-depth
    ablation) with a warning, since plain images carry no depth; use ``midas`` with a ``network_d`` for estimated
    depth.

    Raises:
        FileNotFoundError: the option file or a weight file is missing.
        RuntimeError: ``device='cuda'`` without CUDA.
        ValueError: an ``SSRModel`` file with ``conditions.source: data`` whose sampling reads a kernel or depth
            (``network_g.amf_modalities``, ``sampler.consistency``) or a base image (residual formulation): plain
            images have none; an LR-only ablation runs.
    """
    if device == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda asked for but CUDA is not available; use --device cpu')
    opt = option_file(opt_path, device)
    opt.pop('datasets', None)
    if SVKRConfig.from_options(opt, str(opt_path)).depth == 'file':
        logger.warning('%s: svkr.depth: file needs a test set\'s depth maps; using depth: none (constant depth)',
                       opt_path)
        for block in ('svkr', 'conditions'):
            if block == 'svkr' or 'depth' in (opt.get(block) or {}):
                opt[block] = {**(opt.get(block) or {}), 'depth': 'none'}
    dev = torch.device(device)
    if opt['model_type'] == 'SSRModel':
        pipe = SSRPipeline.from_options(opt, dev, where=str(opt_path))
        if pipe.config.source != 'svkr':  # data: only the conditions sampling does not read can be missing
            needed = [name for name in ('kernel', 'depth') if pipe.needs(name)]
            if pipe.config.diffusion['formulation'] == 'residual':
                needed.append('base image (the blind path I^T)')
            if needed:
                raise ValueError(f'{opt_path}: conditions.source: data needs the ground-truth {" and ".join(needed)} '
                                 'that plain images do not have; use an SSRModel file with conditions.source: svkr')
        return ImagePipeline(pipe, dev)
    config = SVKRConfig.from_options(opt, str(opt_path))
    config.check_networks(opt, str(opt_path))
    nets = {'estimator': network_from_options(opt, 'network_e', dev) if 'network_e' in opt else None,
            'depth_net': network_from_options(opt, 'network_d', dev, load=False) if 'network_d' in opt else None}
    return ImagePipeline(blind_sr(config, network_from_options(opt, 'network_g', dev), **nets), dev)


# ----------------------------------------------------------------------------------------------------------------
# one image, whole or in tiles
def super_resolve_image(pipe: Callable[[Tensor], Mapping[str, Tensor | None]], img_rgb: np.ndarray, tile: int = 0,
                        overlap: int = 0, *, bf16: bool = False, keep_kernel: bool = True, keep_depth: bool = True):
    """Super-resolve one image, whole or in overlapping tiles.

    Args:
        pipe: ``lq (1, 3, h, w) -> {'sr', 'kernel', 'depth'}``, e.g. an :class:`ImagePipeline`.
        img_rgb: ``(H, W, 3)`` float32 RGB in [0, 1].
        tile: LR tile side in pixels; 0 (or an image no larger than a tile) runs the image whole.
        overlap: LR pixels shared by neighbouring tiles (Gaussian-blended); ``0 <= overlap < tile``.
        bf16: run under CUDA bfloat16 autocast.
        keep_kernel / keep_depth: stitch and return those fields (the kernel field is large: k*k per LR pixel).

    Returns:
        ``(sr, kernel, depth)``: SR ``(sH, sW, 3)`` float32 clipped to [0, 1]; the kernel field ``(k*k, H, W)`` or
        None (a kernel-unaware model, or ``keep_kernel=False``); the depth ``(H', W')`` or None.
    """
    from ssr.data.image_io import hwc_to_chw_tensor

    if img_rgb.ndim != 3 or img_rgb.shape[2] != 3:
        raise ValueError(f'img_rgb must be (H, W, 3), got shape {img_rgb.shape}')
    keep = {'sr': True, 'kernel': keep_kernel, 'depth': keep_depth}

    def run(lq: Tensor) -> dict[str, Tensor | None]:
        with torch.autocast('cuda', dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out = pipe(lq)
        return {name: out.get(name) if wanted else None for name, wanted in keep.items()}

    fields = tiled_fields(run, hwc_to_chw_tensor(img_rgb)[None], tile, overlap)
    sr, kernel, depth = (None if fields.get(k) is None else fields[k][0].detach().float().cpu().numpy() for k in keep)
    sr = np.clip(sr.transpose(1, 2, 0), 0.0, 1.0)
    depth = None if depth is None else depth.reshape(depth.shape[-2:])
    return np.ascontiguousarray(sr), kernel, depth


# ----------------------------------------------------------------------------------------------------------------
# files
@dataclass
class Settings:
    """What :func:`process_file` does with an image (the CLI flags)."""

    tile: int = 0
    overlap: int = 16
    bf16: bool = False
    save_kernel: bool = False
    save_depth: bool = False
    overwrite: bool = False
    suffix: str = '_SR'


def check_output_folder(out_dir: Path) -> None:
    """Fail before any model is loaded when ``out_dir`` cannot be created or written.

    Raises:
        ValueError: ``out_dir`` is a file, or it (or the nearest existing folder above it) is not writable.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f'-o {out_dir}: is a file, not a folder; give a folder for the SR images')
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f'-o {out_dir}: {probe} is not writable; choose another output folder or fix its '
                         'permissions')


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
        paths['depth_figure'] = base.with_name(base.name + '_depth_vis.png')
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


def _encode_outputs(paths: dict[str, Path], sr: np.ndarray, kernel, depth, alpha, gray: bool, sixteen: bool,
                    log: logging.Logger) -> dict[str, bytes]:
    import cv2

    from ssr.data.image_io import encode_depth_png
    from ssr.tools.figures import DEPTH_UNIT, VARIANCE_UNIT
    from ssr.utils.visualize import kernel_variance_map

    data = {}
    if 'sr' in paths:
        img = sr
        if gray:
            img = sr @ LUMA
        elif alpha is not None:
            up = cv2.resize(alpha, (sr.shape[1], sr.shape[0]), interpolation=cv2.INTER_CUBIC)
            img = np.concatenate([sr, np.clip(up, 0.0, 1.0)[..., None]], axis=2)
        data['sr'] = encode_png(img, sixteen)
    if ('kernel' in paths or 'kernel_field' in paths) and kernel is None:
        log.warning('the model estimates no kernel field: no %s written', paths.get('kernel'))
    elif 'kernel' in paths or 'kernel_field' in paths:
        if 'kernel' in paths:
            variance = kernel_variance_map(torch.from_numpy(kernel)).numpy()
            title = f'{paths["kernel"].stem.removesuffix("_kernel_var")}: estimated kernel variance'
            ok, buf = cv2.imencode('.png', _captioned(variance, 'viridis', VARIANCE_UNIT, title, 0.0, float(variance.max())))
            data['kernel'] = buf.tobytes()
        if 'kernel_field' in paths:
            stream = io.BytesIO()
            np.savez_compressed(stream, kernel=kernel.astype(np.float16))
            data['kernel_field'] = stream.getvalue()
    if 'depth' in paths or 'depth_figure' in paths:
        if depth is None:
            log.warning('the model estimates no depth: no %s written', paths.get('depth'))
        else:
            if 'depth' in paths:
                data['depth'] = encode_depth_png(depth)  # the data (16-bit), readable as dataroot_depth
            if 'depth_figure' in paths:
                stem = paths['depth_figure'].stem.removesuffix('_depth_vis')
                constant = float(depth.max() - depth.min()) == 0.0
                title = (f'{stem}: constant depth {float(depth.flat[0]):.2f} (no depth network; svkr.depth: none)'
                         if constant else f'{stem}: estimated depth')
                ok, buf = cv2.imencode('.png', _captioned(depth, 'magma', DEPTH_UNIT, title, 0.0, 1.0))
                data['depth_figure'] = buf.tobytes()
    return data


def _captioned(values: np.ndarray, cmap: str, unit: str, title: str, lo: float, hi: float) -> np.ndarray:
    """A map with a title and a colour bar in ``unit`` from ``lo`` to ``hi`` (matplotlib: kernel variance from 0, so
    a small spread does not look dramatic; depth over its whole [0, 1]), BGR uint8, at least 256 px high."""
    from ssr.tools.figures import map_figure

    return map_figure(values, cmap, lo, hi, unit, title, min(max(values.shape[0], 256), 768))


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


def process_file(pipe, source: Path, paths: dict[str, Path], settings: Settings,
                 log: logging.Logger = logger) -> str:
    """Super-resolve ``source`` into ``paths``; returns ``'written'`` or ``'skipped'`` (all outputs exist).

    Without ``settings.overwrite`` only missing outputs are written. Raises ``ValueError`` (undecodable or too
    small), ``OSError`` or a model error; the caller reports them.
    """
    todo = paths if settings.overwrite else {k: p for k, p in paths.items() if not p.exists()}
    if not todo:
        log.info('%s: outputs exist, skipped (use --overwrite to redo)', source)
        return 'skipped'
    rgb, alpha, gray, sixteen = read_image(source)
    sr, kernel, depth = super_resolve_image(pipe, rgb, settings.tile, settings.overlap, bf16=settings.bf16,
                                            keep_kernel='kernel' in todo or 'kernel_field' in todo,
                                            keep_depth='depth' in todo or 'depth_figure' in todo)
    _write_all(todo, _encode_outputs(todo, sr, kernel, depth, alpha, gray, sixteen, log))
    return 'written'


def collect_inputs(path: Path, log: logging.Logger = logger) -> list[tuple[Path, Path]]:
    """``(file, path relative to the input folder)`` of every image under ``path`` (a file gives itself); hidden
    files and non-image extensions are ignored (debug log)."""
    from ssr.data.image_io import IMAGE_EXTENSIONS

    if path.is_file():
        return [(path, Path(path.name))]
    found = []
    for p in sorted(path.rglob('*')):
        if not p.is_file() or p.name.startswith('.'):
            continue
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            log.debug('%s: not an image extension, ignored', p)
            continue
        found.append((p, p.relative_to(path)))
    return found


def process_inputs(pipe, inputs: list[tuple[Path, Path]], out_dir: Path, settings: Settings,
                   log: logging.Logger = logger, progress: bool = False) -> tuple[int, int, list[Path]]:
    """:func:`process_file` on every input; a bad file (undecodable, too small, an output name two inputs share, a
    model error) is logged with its path and the reason and skipped.

    Returns:
        ``(written, skipped, failed paths)``.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    failed, written, skipped, claimed = [], 0, 0, {}
    with logging_redirect_tqdm(), tqdm(total=len(inputs), unit='img', desc='SR', disable=not progress) as bar:
        for path, rel in inputs:
            paths = output_paths(path, out_dir, settings, rel)
            try:
                if paths['sr'] in claimed:
                    raise ValueError(f'{path}: output {paths["sr"]} is also the output of {claimed[paths["sr"]]}; '
                                     'rename one of them')
                claimed[paths['sr']] = path
                if process_file(pipe, path, paths, settings, log) == 'written':
                    written += 1
                else:
                    skipped += 1
            except Exception as exc:  # noqa: BLE001  (one bad image must not stop the run)
                reason = str(exc) if str(path) in str(exc) else f'{path}: {exc}'
                log.error('failed, skipped: %s', reason)
                failed.append(path)
            bar.update(1)
    return written, skipped, failed
