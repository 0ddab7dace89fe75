"""Sub-images: cut the HR images of a folder into overlapping crops (BasicSR's data preparation, without
hard-coded paths). CLI: ``scripts/extract_subimages.py``.

Policy:
    - Windows of ``crop_size`` start every ``step`` pixels along each axis; when the last window leaves more than
      ``thresh_size`` pixels uncovered, one more window is added flush with the border (as BasicSR does).
    - An axis shorter than ``crop_size`` gets one window covering the whole axis, so an image smaller than the crop
      gives one sub-image of the whole image (``small_images='whole'``, default); ``'skip'`` skips such images
      with a warning instead.
    - Nothing is mod-cropped: datasets crop to a multiple of the scale when they read.
    - Output is always 8-bit, 3-channel BGR PNG: grayscale is replicated, an alpha channel is dropped, and 16-bit
      samples are mapped to 8 bits (``round(v / 257)``, i.e. 0..65535 -> 0..255).
    - ``max_side=N`` first shrinks images whose longer side exceeds N (``cv2.INTER_AREA``). JPEG photos such as
      desktop wallpapers carry compression artefacts at full size; shrink them (by 2-4x) before using them as
      ground truth.
    - Sub-images are named ``<stem>_s001.png``, ``<stem>_s002.png``, ... in row-major window order.
    - A file that does not decode is reported (logging error with its path) and skipped; the others are still
      written and the failure is listed in :class:`ExtractResult` (the CLI then exits with 1).
    - The output folder is built as ``<output>.tmp`` beside the target and renamed when done.
"""
from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ssr.data.image_io import IMAGE_EXTENSIONS
from ssr.utils.paths import atomic_folder

__all__ = ['SMALL_IMAGE_POLICIES', 'ExtractResult', 'window_starts', 'to_bgr8', 'downscale_max_side', 'read_bgr8',
           'extract_one', 'list_folder_images', 'check_settings', 'extract_subimages']

logger = logging.getLogger(__name__)

SMALL_IMAGE_POLICIES = ('whole', 'skip')


@dataclass
class ExtractResult:
    """Outcome of :func:`extract_subimages`.

    Attributes:
        counts: source path -> number of sub-images written (0 for a skipped small image).
        failed: source path -> reason, for files that could not be read or written.
    """

    counts: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def window_starts(length: int, crop_size: int, step: int, thresh_size: int) -> list[tuple[int, int]]:
    """Start and size of the windows along one axis.

    Args:
        length: axis length in pixels.
        crop_size: window size in pixels.
        step: distance between window starts in pixels.
        thresh_size: a remainder of at most this many pixels after the last regular window is dropped.

    Returns:
        ``[(start, size), ...]``; a single ``(0, length)`` when ``length < crop_size``.
    """
    if length < crop_size:
        return [(0, length)]
    starts = list(range(0, length - crop_size + 1, step))
    if length - (starts[-1] + crop_size) > thresh_size:
        starts.append(length - crop_size)
    return [(s, crop_size) for s in starts]


def to_bgr8(img: np.ndarray, source: str) -> np.ndarray:
    """Convert a decoded image (``cv2.IMREAD_UNCHANGED``) to ``(H, W, 3)`` uint8 BGR.

    Args:
        img: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 / uint16, BGR(A) channel order.
        source: name used in error messages.

    Raises:
        ValueError: unsupported sample type or channel count.
    """
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f'{source}: unsupported sample type {img.dtype} (8- or 16-bit images only)')
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f'{source}: unsupported image shape {img.shape}')
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def downscale_max_side(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink ``img`` (INTER_AREA) so that its longer side is at most ``max_side``; ``None`` keeps it."""
    h, w = img.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return img
    ratio = max_side / max(h, w)
    size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def read_bgr8(path: Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 BGR (see :func:`to_bgr8`).

    Raises:
        ValueError: the file does not decode (the message names the path).
    """
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ValueError(f'{path}: not a decodable image (corrupt or not an image file)')
    return to_bgr8(img, str(path))


def extract_one(path: Path, out_dir: Path, *, crop_size: int, step: int, thresh_size: int, compression: int,
                max_side: int | None = None, small_images: str = 'whole') -> int:
    """Write the sub-images of one image; return how many were written (0 for a skipped small image)."""
    img = downscale_max_side(read_bgr8(path), max_side)
    h, w = img.shape[:2]
    if small_images == 'skip' and min(h, w) < crop_size:
        logger.warning('%s: %dx%d is smaller than --crop-size %d; skipped', path, w, h, crop_size)
        return 0
    index = 0
    for top, height in window_starts(h, crop_size, step, thresh_size):
        for left, width in window_starts(w, crop_size, step, thresh_size):
            index += 1
            patch = np.ascontiguousarray(img[top:top + height, left:left + width])
            ok, buf = cv2.imencode('.png', patch, [cv2.IMWRITE_PNG_COMPRESSION, compression])
            if not ok:
                raise ValueError(f'{path}: PNG encoding of sub-image {index} failed')
            buf.tofile(str(out_dir / f'{path.stem}_s{index:03d}.png'))
    return index


def list_folder_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (by extension, case-insensitive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def check_settings(crop_size: int, step: int, thresh_size: int, compression: int, max_side: int | None,
                   small_images: str, workers: int) -> None:
    """Raise ``ValueError`` naming the first bad setting."""
    if crop_size < 1 or step < 1:
        raise ValueError(f'crop_size {crop_size} and step {step} must be >= 1')
    if thresh_size < 0:
        raise ValueError(f'thresh_size {thresh_size} must be >= 0')
    if not 0 <= compression <= 9:
        raise ValueError(f'compression {compression} not in 0..9')
    if max_side is not None and max_side < 1:
        raise ValueError(f'max_side {max_side} must be >= 1')
    if small_images not in SMALL_IMAGE_POLICIES:
        raise ValueError(f'small_images {small_images!r} not in {SMALL_IMAGE_POLICIES}')
    if workers < 0:
        raise ValueError(f'workers {workers} must be >= 0')


def extract_subimages(input_dir: Path, output_dir: Path, *, crop_size: int = 480, step: int = 240,
                      thresh_size: int = 0, compression: int = 3, max_side: int | None = None,
                      small_images: str = 'whole', workers: int = 2, overwrite: bool = False,
                      progress: bool = False) -> ExtractResult:
    """Cut every image directly inside ``input_dir`` into sub-images written to ``output_dir``.

    Args:
        input_dir: folder of HR images (not searched recursively).
        output_dir: folder to create; built as ``<output_dir>.tmp`` and renamed at the end.
        crop_size: sub-image size in pixels.
        step: distance between sub-image origins in pixels.
        thresh_size: border remainder in pixels below which no extra border-flush window is added.
        compression: PNG compression level, 0..9.
        max_side: shrink images whose longer side exceeds this many pixels first; ``None`` keeps the size.
        small_images: ``'whole'`` writes an image smaller than the crop as one sub-image, ``'skip'`` skips it.
        workers: worker processes; 0 runs in this process.
        overwrite: replace an existing ``output_dir``.
        progress: show a tqdm bar.

    Returns:
        Per-file counts and failures; files that failed are absent from ``counts``.

    Raises:
        ValueError: a bad setting, no images in ``input_dir``, or two inputs with the same stem.
        FileExistsError: ``output_dir`` exists and ``overwrite`` is False.
    """
    check_settings(crop_size, step, thresh_size, compression, max_side, small_images, workers)
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f'{output_dir} exists; pass --overwrite to replace it')
    paths = list_folder_images(input_dir)
    if not paths:
        raise ValueError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in {input_dir}')
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:  # a.png and a.jpg would write the same a_s001.png
            raise ValueError(f'{stems[p.stem].name} and {p.name} share the stem {p.stem!r}; rename one of them')
        stems[p.stem] = p

    kwargs = dict(crop_size=crop_size, step=step, thresh_size=thresh_size, compression=compression,
                  max_side=max_side, small_images=small_images)
    result = ExtractResult()
    with atomic_folder(output_dir, create=True) as tmp_dir, \
            tqdm(total=len(paths), unit='img', desc='extract', disable=not progress) as bar:
        if workers == 0:
            for p in paths:
                _record(result, p, lambda p=p: extract_one(p, tmp_dir, **kwargs))
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(extract_one, p, tmp_dir, **kwargs): p for p in paths}
                for future in as_completed(futures):
                    _record(result, futures[future], future.result)
                    bar.update(1)
    result.counts = dict(sorted(result.counts.items()))
    return result


def _record(result: ExtractResult, path: Path, run) -> None:
    """Call ``run`` (or fetch a worker's result) and file its count or its exception under ``path``."""
    try:
        result.counts[str(path)] = run()
    except Exception as e:  # a worker's exception surfaces here, with the file it belongs to
        result.failed[str(path)] = f'{type(e).__name__}: {e}'
        logger.error('%s: skipped (%s)', path, e)
