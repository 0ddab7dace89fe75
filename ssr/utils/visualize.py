"""Figures of kernel fields, depth maps, SVKR iterations and method crops, as uint8 BGR arrays (OpenCV order).

Paper Fig. 8 shows a kernel field as a heatmap of each pixel's kernel variance; :func:`kernel_variance_map` computes
it as the trace of the kernel's covariance (var_x + var_y, HR pixels^2).
"""
from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from torch import Tensor

from ssr.ops.kernels import kernel_moments

def kernel_variance_map(field: Tensor) -> Tensor:
    """Per-pixel kernel variance (trace of the covariance) of a field.

    Args:
        field: (k*k, h, w) or (B, k*k, h, w) kernel field.

    Returns:
        (h, w) or (B, h, w) float tensor, HR pixels^2.
    """
    squeeze = field.dim() == 3
    field = field[None] if squeeze else field
    b, kk, h, w = field.shape
    k = int(round(kk ** 0.5))
    if k * k != kk:
        raise ValueError(f'field must have k*k channels, got {kk}')
    kernels = field.float().permute(0, 2, 3, 1).reshape(b, h, w, k, k)
    cov = kernel_moments(kernels)[1]
    var = cov[..., 0, 0] + cov[..., 1, 1]
    return var[0] if squeeze else var


def resize_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)


def label(img: np.ndarray, text: str, bar: int = 18) -> np.ndarray:
    """``img`` with a white caption bar of ``bar`` pixels on top."""
    out = np.full((img.shape[0] + bar, img.shape[1], 3), 255, np.uint8)
    out[bar:] = img if img.ndim == 3 else img[..., None]
    cv2.putText(out, text, (3, bar - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def crops_side_by_side(images: Mapping[str, np.ndarray], box: tuple[int, int, int, int], zoom: int = 2) -> np.ndarray:
    """The same crop ``box = (x, y, w, h)`` of several same-size BGR images, enlarged ``zoom`` times, labelled."""
    x, y, w, h = box
    panels = []
    for name, img in images.items():
        if y + h > img.shape[0] or x + w > img.shape[1]:
            raise ValueError(f'crop {box} lies outside {name} ({img.shape[1]}x{img.shape[0]})')
        crop = img[y:y + h, x:x + w]
        crop = crop if crop.ndim == 3 else np.repeat(crop[..., None], 3, 2)
        panels.append(label(resize_nearest(crop, h * zoom, w * zoom), name))
    return np.concatenate(panels, 1)


def write_png(path, img: np.ndarray) -> None:
    """Write a uint8 BGR image as PNG atomically."""
    from pathlib import Path

    path = Path(path)
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise ValueError(f'{path}: could not encode PNG')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)
