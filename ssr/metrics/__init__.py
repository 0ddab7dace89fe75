"""ssr metrics, registered explicitly in BasicSR's ``METRIC_REGISTRY`` (BasicSR does not scan metric files).

BasicSR calls a metric as ``fn(img=..., img2=..., **options)``; the kernel metrics read ``img`` / ``img2`` as the
estimated and the ground-truth kernel fields.
"""
from __future__ import annotations

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from ssr.metrics.depth_error import depth_abs_rel
from ssr.metrics.kernel_error import kernel_mse, kernel_psnr
from ssr.metrics.lpips_metric import calculate_lpips  # noqa: F401  (registers LPIPS)
from ssr.metrics.no_reference import calculate_clipiqa, calculate_musiq  # noqa: F401  (registers MUSIQ, CLIP-IQA)
from ssr.metrics.st_lpips import calculate_stlpips  # noqa: F401  (registers ST-LPIPS)

__all__ = ['calculate_kernel_mse', 'calculate_kernel_psnr', 'calculate_depth_abs_rel', 'depth_abs_rel', 'kernel_mse',
           'kernel_psnr']


def _batched(field) -> torch.Tensor:
    field = torch.as_tensor(np.asarray(field) if not isinstance(field, torch.Tensor) else field)
    return field[None] if field.dim() == 3 else field


@METRIC_REGISTRY.register()
def calculate_kernel_mse(img, img2, **kwargs) -> float:
    """Mean squared tap error. Args: img, img2: estimated / true fields, (k*k, h, w) or (B, k*k, h, w)."""
    return float(kernel_mse(_batched(img), _batched(img2)).mean())


@METRIC_REGISTRY.register()
def calculate_kernel_psnr(img, img2, **kwargs) -> float:
    """Kernel PSNR in dB (peak = largest true tap). Args: img, img2: estimated / true fields."""
    return float(kernel_psnr(_batched(img), _batched(img2)).mean())


@METRIC_REGISTRY.register()
def calculate_depth_abs_rel(img, img2, min_depth: float = 1e-3, **kwargs) -> float:
    """AbsRel of an estimated depth map ``img`` against ``img2`` after scale / shift alignment.

    Args: img, img2: (H, W), (B, H, W) or (B, 1, H, W) arrays or tensors.
    """
    def as_batch(depth) -> torch.Tensor:
        depth = torch.as_tensor(np.asarray(depth) if not isinstance(depth, torch.Tensor) else depth).float()
        return depth.reshape(-1, 1, *depth.shape[-2:])

    return float(depth_abs_rel(as_batch(img), as_batch(img2), min_depth).mean())


@METRIC_REGISTRY.register()
def calculate_niqe_or_nan(img, crop_border: int = 0, input_order: str = 'HWC', convert_to: str = 'y',
                          **kwargs) -> float:
    """basicsr's NIQE (lower is better), or NaN with a warning where NIQE is undefined: fewer than 2 x 2 blocks of
    96 px after cropping, or an image so flat that its feature covariance is singular (an untrained network's
    output). One such image then shows as ``nan`` in a table instead of aborting the whole evaluation.

    Args: img: (H, W, 3) uint8 BGR in [0, 255]; crop_border, input_order, convert_to: as basicsr's calculate_niqe.
    """
    import warnings

    from basicsr.metrics.niqe import calculate_niqe

    h, w = np.asarray(img).shape[:2]
    if min(h, w) - 2 * crop_border < 2 * 96:
        warnings.warn(f'NIQE is undefined for a {h}x{w} image with crop_border {crop_border} '
                      f'(needs 2 x 2 blocks of 96 px): NaN', RuntimeWarning, stacklevel=2)
        return float('nan')
    with np.errstate(all='ignore'), warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        try:
            value = float(calculate_niqe(img, crop_border, input_order=input_order, convert_to=convert_to))
        except np.linalg.LinAlgError:
            value = float('nan')
    if not np.isfinite(value):
        warnings.warn(f'NIQE is undefined for this {h}x{w} image (singular feature covariance): NaN',
                      RuntimeWarning, stacklevel=2)
        return float('nan')
    return value
