"""JPEG compression of image batches (the last step of the degradation, after blur, subsampling and noise).

Two codecs:

- ``'cv2'`` (default): OpenCV's libjpeg encoder/decoder, one image at a time on the CPU (GPU tensors are copied to
  the CPU and back). This is the real codec that produced the JPEG files SR models meet in practice.
- ``'diff'``: BasicSR's batched ``DiffJPEG`` (``basicsr.utils.diffjpeg``), which runs on the input's device. Its
  output differs slightly from libjpeg (BasicSR's own docstring says so); use it for speed on the GPU.

Shapes: B batch, C channels (1 or 3), H, W image size. Images are float RGB in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ['JPEG_METHODS', 'jpeg_compress', 'sample_jpeg_quality']

JPEG_METHODS = ('cv2', 'diff')


def _check_quality(quality: Tensor | Sequence[int] | int, batch: int) -> Tensor:
    """Returns quality as a (B,) int64 CPU tensor, or raises ValueError."""
    q = torch.as_tensor(quality).cpu()
    if q.dim() == 0:
        q = q.expand(batch)
    if tuple(q.shape) != (batch,):
        raise ValueError(f'quality must be an int or shape ({batch},), got shape {tuple(q.shape)}')
    if q.is_floating_point() and not bool((q == q.round()).all()):
        raise ValueError(f'quality must hold integers, got {q.tolist()}')
    q = q.long()
    if bool(((q < 1) | (q > 100)).any()):
        raise ValueError(f'quality must be in [1, 100], got {q.tolist()}')
    return q


def _cv2_roundtrip(img_rgb: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, C) uint8 RGB (or (H, W, 1) gray) -> same after a libjpeg encode/decode at ``quality``."""
    gray = img_rgb.shape[2] == 1
    # OpenCV expects BGR channel order for 3-channel images.
    src = np.ascontiguousarray(img_rgb[..., 0] if gray else img_rgb[..., ::-1])
    ok, buf = cv2.imencode('.jpg', src, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError(f'cv2.imencode failed for an image of shape {img_rgb.shape} at quality {quality}')
    dec = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    return dec[..., None] if gray else dec[..., ::-1]


def _jpeg_cv2(img: Tensor, quality: Tensor) -> Tensor:
    # Quantise to 8 bit the way BasicSR's tensor2img does (clamp, * 255, round).
    arr = (img.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([_cv2_roundtrip(arr[i], q) for i, q in enumerate(quality.tolist())])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=img.device, dtype=img.dtype) / 255.0


def _jpeg_diff(img: Tensor, quality: Tensor) -> Tensor:
    try:
        from basicsr.utils.diffjpeg import DiffJPEG
    except ImportError as e:
        raise ImportError("jpeg_compress(method='diff') needs BasicSR (pip install basicsr); "
                          "use method='cv2' without it") from e
    if img.shape[1] != 3:
        raise ValueError(f"method='diff' needs 3-channel RGB images, got shape {tuple(img.shape)}")
    jpeger = DiffJPEG(differentiable=False).to(device=img.device, dtype=img.dtype)
    # DiffJPEG overwrites its quality tensor in place with float scale factors: pass a fresh float copy.
    return jpeger(img.clamp(0, 1), quality=quality.to(device=img.device, dtype=img.dtype).clone())


def jpeg_compress(img: Tensor,
                  quality: Tensor | Sequence[int] | int,
                  *,
                  mask: Tensor | None = None,
                  method: Literal['cv2', 'diff'] = 'cv2') -> Tensor:
    """Compresses and decompresses each image with its own JPEG quality.

    Args:
        img: (B, C, H, W) float RGB (C = 3) or gray (C = 1) image in [0, 1], any device. Values are clamped to
            [0, 1] and, for 'cv2', quantised to 8 bit before encoding.
        quality: (B,) or scalar integer JPEG quality in [1, 100] (libjpeg scale).
        mask: optional (B,) bool; images where it is False are returned unchanged (see :func:`sample_jpeg_quality`).
        method: 'cv2' (libjpeg via OpenCV, per image on the CPU) or 'diff' (BasicSR ``DiffJPEG``, batched on the
            input's device, RGB only).

    Returns:
        (B, C, H, W) image in [0, 1], same dtype and device as ``img`` ('cv2': multiples of 1/255).

    Raises:
        ValueError: on a bad shape, quality, mask or method.
        ImportError: for 'diff' without BasicSR.
    """
    if img.dim() != 4 or img.shape[1] not in (1, 3):
        raise ValueError(f'img must be (B, 1 or 3, H, W), got shape {tuple(img.shape)}')
    if method not in JPEG_METHODS:
        raise ValueError(f'method {method!r} not in {JPEG_METHODS}')
    b = img.shape[0]
    quality = _check_quality(quality, b)
    if mask is not None:
        mask = torch.as_tensor(mask, device=img.device)
        if mask.dtype != torch.bool or tuple(mask.shape) != (b,):
            raise ValueError(f'mask must be a ({b},) bool tensor, got {mask.dtype} of shape {tuple(mask.shape)}')
        if not bool(mask.any()):
            return img
    out = _jpeg_cv2(img, quality) if method == 'cv2' else _jpeg_diff(img, quality)
    if mask is not None:
        out = torch.where(mask.view(-1, 1, 1, 1), out, img)
    return out


def sample_jpeg_quality(batch: int,
                        prob: float,
                        quality_range: Sequence[int],
                        generator: torch.Generator | None = None,
                        *,
                        device: torch.device | str = 'cpu') -> tuple[Tensor, Tensor]:
    """Draws which images get JPEG and at which quality.

    Args:
        batch: number of images B >= 1.
        prob: probability in [0, 1] that an image is compressed.
        quality_range: [low, high] integer qualities, 1 <= low <= high <= 100, sampled uniformly inclusive
            (Real-ESRGAN uses [30, 95]).
        generator: generator on ``device``. Two (B,) uniform vectors are always drawn, in a fixed order.
        device: device of the returned tensors.

    Returns:
        ``(quality, mask)``: quality (B,) int64 in ``quality_range`` (100 where ``mask`` is False, as a reminder that
        those images are meant to be left alone); mask (B,) bool, True where JPEG applies. Pass both to
        :func:`jpeg_compress`.

    Raises:
        ValueError: naming the bad argument.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f'batch must be a positive int, got {batch!r}')
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
        raise ValueError(f'jpeg prob must be in [0, 1], got {prob!r}')
    ok = (isinstance(quality_range, Sequence) and len(quality_range) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in quality_range))
    if not ok or not 1 <= quality_range[0] <= quality_range[1] <= 100:
        raise ValueError(f'jpeg quality_range must be [low, high] ints with 1 <= low <= high <= 100, '
                         f'got {quality_range!r}')
    u_apply, u_quality = torch.rand(2, batch, generator=generator, device=device)
    low, high = quality_range
    quality = (low + (u_quality * (high - low + 1)).floor().long()).clamp(max=high)
    mask = u_apply < prob
    return torch.where(mask, quality, torch.full_like(quality, 100)), mask
