"""Image and depth decoding with one documented policy for odd files, plus HWC-numpy <-> CHW-tensor conversions.

Policy (datasets and scripts share it):
    - 8-bit images are scaled by 1/255, 16-bit by 1/65535 (BasicSR's ``imfrombytes`` divides 16-bit data by 255);
    - grayscale is replicated to three channels; an alpha channel is dropped (composited on nothing);
    - a file that does not decode raises ``ValueError`` naming the file.
Depth maps are single-channel: 16-bit PNG (0..65535 -> 0..1), 8-bit PNG (0..255 -> 0..1) or ``.npy`` float in [0, 1].
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def decode_image(content: bytes, source: str) -> np.ndarray:
    """Decode file bytes to ``(H, W, 3)`` float32 RGB in [0, 1] following the module policy.

    Raises:
        ValueError: the bytes are not a decodable image (the message names ``source``).
    """
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED) if content else None
    if img is None:
        raise ValueError(f'{source}: not a decodable image (corrupt or not an image file)')
    if img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.0
    elif img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    else:
        raise ValueError(f'{source}: unsupported sample type {img.dtype} (8- or 16-bit images only)')
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[..., :3]
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., ::-1])  # BGR -> RGB


def decode_depth(content: bytes, source: str) -> np.ndarray:
    """Decode a depth map (16- / 8-bit PNG or ``.npy``) to ``(H, W)`` float32 in [0, 1]."""
    if source.endswith('.npy'):
        import io

        depth = np.load(io.BytesIO(content), allow_pickle=False).astype(np.float32)
    else:
        raw = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED) if content else None
        if raw is None:
            raise ValueError(f'{source}: not a decodable depth map')
        scale = {np.dtype(np.uint16): 65535.0, np.dtype(np.uint8): 255.0}.get(raw.dtype)
        if scale is None:
            raise ValueError(f'{source}: unsupported depth sample type {raw.dtype}')
        depth = raw.astype(np.float32) / scale
    if depth.ndim == 3:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise ValueError(f'{source}: depth must be a single-channel map, got shape {depth.shape}')
    return np.clip(depth, 0.0, 1.0)


def encode_depth_png(depth: np.ndarray) -> bytes:
    """``(H, W)`` float depth in [0, 1] -> 16-bit PNG bytes (0..1 -> 0..65535)."""
    data = np.round(np.clip(depth, 0.0, 1.0) * 65535.0).astype(np.uint16)
    ok, buf = cv2.imencode('.png', data)
    if not ok:
        raise ValueError('could not encode depth as 16-bit PNG')
    return buf.tobytes()


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Write ``(H, W, 3)`` float RGB in [0, 1] as an 8-bit image atomically (temporary file, then rename)."""
    path = Path(path)
    data = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)[..., ::-1]
    ok, buf = cv2.imencode(path.suffix or '.png', data)
    if not ok:
        raise ValueError(f'{path}: could not encode image')
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)


def hwc_to_chw_tensor(img: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` numpy -> ``(C, H, W)`` float32 tensor (no copy of the values' range)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder (recursively, sorted); other files are ignored.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'image folder {str(folder)!r} does not exist')
    files = sorted(p for p in folder.rglob('*') if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f'image folder {str(folder)!r} holds no image file ({", ".join(IMAGE_EXTENSIONS)})')
    return files
