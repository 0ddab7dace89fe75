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
from ssr.metrics.perceptual import calculate_stlpips  # noqa: F401  (registers ST-LPIPS)

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
