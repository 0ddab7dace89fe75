"""The writer of fixed spatially variant test sets, the twin of :class:`~ssr.data.sv_paired_dataset.SVPairedDataset`.

Layout of a set (``SVPairedDataset`` reads it with ``dataroot: <folder>``; folder names from ``TESTSET_FOLDERS``)::

    <folder>/HR/<name>.png       HR mod-cropped to a multiple of the scale (the composite for layered_depth)
    <folder>/LR/<name>.png       degraded LR (SV blur + s-fold subsampling [+ noise] [+ JPEG])
    <folder>/kernel/<name>.npz   'kernel': (k*k, h, w) float16 field on the LR grid
    <folder>/depth/<name>.png    16-bit depth (relative inverse depth, 0..1 -> 0..65535) at HR size
    <folder>/protocol.json       every setting, and per image its seed, kernel family, noise level, JPEG quality

Each image's generator is seeded from ``(seed, crc32(name))`` (:func:`image_seed`), so a set is reproducible and an
image's degradation does not depend on which other images are in the folder.
"""
from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssr.data.sv_paired_dataset import TESTSET_FOLDERS
from ssr.utils.paths import atomic_folder

__all__ = ['MODES', 'GAUSSIAN8_SIGMAS', 'PROTOCOL_FILE', 'SVTestSetConfig', 'degradation_options', 'image_seed',
           'read_testset_inputs', 'write_sv_testset', 'generate_sv_testset']

MODES = {
    # DCLS "Gaussian8": 8 isotropic widths evenly spaced in [1.8, 3.2] (x4), one per image
    'gaussian8': {'modes': ['gaussian8']},
    'aniso': {'modes': ['uniform'], 'kernel_list': ['aniso'], 'kernel_prob': [1.0]},
    'sv_random': {'modes': ['random']},
    'sv_depth': {'modes': ['depth']},
    # layered scenes: each image behind crops of other images of the set, thin-lens defocus per layer (the depth
    # is content-aligned: its edges are the occlusion edges; see ssr.ops.layered_scene)
    'layered_depth': {'modes': ['depth']},
}
LAYERED_NUM_LAYERS = (2, 4)
GAUSSIAN8_SIGMAS = {2: [0.8, 1.6], 3: [1.35, 2.4], 4: [1.8, 3.2]}  # std range in HR pixels per scale
PROTOCOL_FILE = 'protocol.json'
logger = logging.getLogger(__name__)


@dataclass
class SVTestSetConfig:
    """Settings of one test set (all stored in ``protocol.json``).

    Attributes:
        mode: kernel family, one of ``MODES``.
        scale: subsampling factor s.
        kernel_size: k, taps per side, odd.
        sigma_range: Gaussian std range in HR pixels for the ``aniso`` / ``sv_*`` modes.
        noise: Gaussian noise std in 0-255 units applied to every image; 0 = none.
        jpeg: JPEG quality 1-100 for every image; 0 = none.
        depth_dir: depth maps named like the images (16-bit PNG / ``.npy``, HR size); None = synthetic depth.
        max_side: downscale (INTER_AREA) images whose longer side exceeds this many pixels; 0 = off.
        seed: base seed.
        device: torch device of the degradation.
    """

    mode: str = 'sv_depth'
    scale: int = 4
    kernel_size: int = 21
    sigma_range: tuple[float, float] = (0.2, 4.0)
    noise: float = 0.0
    jpeg: int = 0
    depth_dir: str | None = None
    max_side: int = 0
    seed: int = 0
    device: str = 'cpu'


def degradation_options(config: SVTestSetConfig) -> dict:
    """The ``degradation`` option block of :class:`~ssr.data.degradation.SVDegradation` equivalent to ``config``.

    Raises:
        ValueError: an unknown mode, ``gaussian8`` at a scale without its sigma range, or a JPEG quality out of range.
    """
    if config.mode not in MODES:
        raise ValueError(f'mode {config.mode!r} not in {sorted(MODES)}')
    kernel = dict(MODES[config.mode], sigma_range=list(config.sigma_range))
    if config.mode == 'gaussian8':
        if config.scale not in GAUSSIAN8_SIGMAS:
            raise ValueError(f'--mode gaussian8 is defined for scales {sorted(GAUSSIAN8_SIGMAS)}, not {config.scale}')
        kernel['gaussian8_sigmas'] = GAUSSIAN8_SIGMAS[config.scale]
    opt = {'kernel_size': config.kernel_size, 'kernel': kernel}
    if config.noise > 0:
        opt['noise'] = {'gaussian_prob': 1.0, 'poisson_prob': 0.0, 'gray_prob': 0.0,
                        'gaussian_sigma_range': [config.noise, config.noise]}
    if config.jpeg:
        if not 1 <= config.jpeg <= 100:
            raise ValueError(f'--jpeg must be in [1, 100], got {config.jpeg}')
        opt['jpeg'] = {'prob': 1.0, 'quality_range': [config.jpeg, config.jpeg]}
    return opt


def image_seed(seed: int, name: str) -> int:
    """The generator seed of image ``name`` in a set with base seed ``seed`` (independent of the other images)."""
    return (seed * 0x9E3779B1 + zlib.crc32(name.encode('utf-8'))) % (2 ** 63)


def read_testset_inputs(input_dir: str | Path,
                        config: SVTestSetConfig) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """Decode every input image (and its depth map) before anything is written.

    Returns:
        ``[(name, hr (H, W, 3) float32 RGB in [0, 1], depth (H, W) float32 in [0, 1] or None)]``, HR and depth
        mod-cropped to a multiple of the scale.

    Raises:
        ValueError: the first bad file (undecodable, too small, a name used twice) named.
        FileNotFoundError: the folder, or a depth map in ``config.depth_dir``, is missing.
    """
    import cv2

    from ssr.data.image_io import decode_depth, decode_image, list_images

    items, names = [], set()
    s, r = config.scale, config.kernel_size // 2
    for path in list_images(input_dir):
        if path.stem in names:
            raise ValueError(f'{path}: two inputs share the name {path.stem!r}')
        names.add(path.stem)
        img = decode_image(path.read_bytes(), str(path))
        if config.max_side and max(img.shape[:2]) > config.max_side:
            f = config.max_side / max(img.shape[:2])
            img = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA)
        h, w = (img.shape[0] // s) * s, (img.shape[1] // s) * s
        if h // s < 1 or w // s < 1 or h <= r or w <= r:
            raise ValueError(f'{path}: {img.shape[0]}x{img.shape[1]} is too small for scale {s} and '
                             f'kernel size {config.kernel_size}')
        depth = None
        if config.depth_dir:
            candidates = [Path(config.depth_dir) / f'{path.stem}{ext}' for ext in ('.png', '.npy')]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise FileNotFoundError(f'--depth-dir {config.depth_dir!r} has no depth map for {path.name}')
            depth = decode_depth(found.read_bytes(), str(found))
            if depth.shape != img.shape[:2]:
                depth = cv2.resize(depth, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
            depth = depth[:h, :w]
        items.append((path.stem, img[:h, :w], depth))
    return items


def _layered_scene(items: list, index: int, generator, device: str):
    """Image ``index`` as the background and same-size random crops of other images (upscaled when smaller) in
    front; :func:`ssr.ops.layered_scene.compose_layered_scene` with ``LAYERED_NUM_LAYERS``."""
    import cv2
    import torch

    from ssr.ops.layered_scene import compose_layered_scene

    background = items[index][1]
    h, w = background.shape[:2]
    low, high = LAYERED_NUM_LAYERS
    others = [i for i in range(len(items)) if i != index]
    photos = [background]
    for pick in torch.randint(0, len(others), (high - 1,), generator=generator, device=generator.device).tolist():
        photo = items[others[pick]][1]
        grow = max(h / photo.shape[0], w / photo.shape[1], 1.0)
        if grow > 1:
            size = (max(w, round(photo.shape[1] * grow)), max(h, round(photo.shape[0] * grow)))
            photo = cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC).clip(0, 1)
        top = int(torch.randint(0, photo.shape[0] - h + 1, (1,), generator=generator, device=generator.device))
        left = int(torch.randint(0, photo.shape[1] - w + 1, (1,), generator=generator, device=generator.device))
        photos.append(photo[top:top + h, left:left + w])
    stack = torch.from_numpy(np.stack(photos).transpose(0, 3, 1, 2).copy())[None].to(device)
    return compose_layered_scene(stack, generator, min_layers=low)


def write_sv_testset(input_dir: str | Path, target: Path, config: SVTestSetConfig, progress: bool = False) -> dict:
    """Degrade every image of ``input_dir`` and write the set into ``target`` (a folder that must not exist).

    Returns:
        The protocol (also written to ``target/protocol.json``).
    """
    import torch
    from tqdm import tqdm

    from ssr.data.degradation import SVDegradation
    from ssr.data.image_io import encode_depth_png, write_image

    opt = degradation_options(config)
    degrade = SVDegradation(opt, config.scale, source='generate_sv_testset')
    items = read_testset_inputs(input_dir, config)
    folders = {key: target / sub for key, sub in TESTSET_FOLDERS.items()}
    for folder in folders.values():
        folder.mkdir(parents=True)
    protocol = {'mode': config.mode, 'scale': config.scale, 'kernel_size': config.kernel_size, 'seed': config.seed,
                'depth': 'file' if config.depth_dir else 'synthetic', 'degradation': opt, 'images': {}}
    if config.mode == 'layered_depth':
        if config.depth_dir:
            raise ValueError('--mode layered_depth makes its own depth; drop --depth-dir')
        if len(items) < 2:
            raise ValueError(f'--mode layered_depth needs at least 2 images in {input_dir} (the front layers are '
                             f'crops of the other images), found {len(items)}')
        protocol['depth'] = 'layered'
    for index, (name, img, depth) in enumerate(tqdm(items, total=len(items), unit='img', desc='degrade',
                                                    disable=not progress)):
        seed = image_seed(config.seed, name)
        g = torch.Generator(device=config.device).manual_seed(seed)
        gt = torch.from_numpy(img.transpose(2, 0, 1).copy())[None].to(config.device)
        if config.mode == 'layered_depth':
            scene = _layered_scene(items, index, g, config.device)
            out = degrade.degrade_layered(scene, g)
            img = scene.image[0].permute(1, 2, 0).cpu().numpy()
        else:
            d = None if depth is None else torch.from_numpy(depth)[None, None].to(config.device)
            out = degrade(gt, d, g)
        write_image(folders['dataroot_gt'] / f'{name}.png', img)
        write_image(folders['dataroot_lq'] / f'{name}.png', out['lq'][0].permute(1, 2, 0).cpu().numpy())
        np.savez_compressed(folders['dataroot_kernel'] / f'{name}.npz',
                            kernel=out['kernel'][0].cpu().numpy().astype(np.float16))
        (folders['dataroot_depth'] / f'{name}.png').write_bytes(encode_depth_png(out['depth'][0, 0].cpu().numpy()))
        protocol['images'][name] = {
            'seed': seed, 'hr_size': list(img.shape[:2]), 'lr_size': list(out['lq'].shape[-2:]),
            'kernel_family': 'layered' if int(out['mode'][0]) < 0 else degrade.modes[int(out['mode'][0])], 'noise_level': float(out['noise_level'][0]),
            'jpeg_quality': int(out['jpeg_quality'][0])}
    (target / PROTOCOL_FILE).write_text(json.dumps(protocol, indent=2), encoding='utf-8')
    return protocol


def generate_sv_testset(input_dir: str | Path, output: str | Path, config: SVTestSetConfig, *,
                        overwrite: bool = False, progress: bool = False) -> dict:
    """Write a test set to ``output`` atomically: built in ``.<output>.tmp`` beside it, renamed when complete.

    Returns:
        The protocol.

    Raises:
        FileExistsError: ``output`` exists and ``overwrite`` is False.
        ValueError, OSError: a bad setting or input file; nothing is left behind.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f'{output} exists; pass --overwrite to replace it')
    with atomic_folder(output, output.with_name(f'.{output.name}.tmp')) as tmp:
        protocol = write_sv_testset(input_dir, tmp, config, progress)
    logger.info('wrote %d images (%s, x%d) to %s', len(protocol['images']), config.mode, config.scale, output)
    return protocol
