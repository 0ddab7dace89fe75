"""Depth error of relative (inverse) depth maps: AbsRel after least-squares scale / shift alignment.

Monocular depth (MiDaS) is known only up to scale and shift, so the estimate d is first aligned to the ground truth
g by the (s, t) minimising ||s d + t - g||^2 over valid pixels (MiDaS's evaluation protocol), then
``AbsRel = mean(|s d + t - g| / g)`` over pixels where g > ``min_depth``.
"""
from __future__ import annotations

import torch
from torch import Tensor


def align_scale_shift(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``s * pred + t`` with (s, t) the least-squares fit to ``target`` on ``mask``. Shapes: (B, ...)."""
    b = pred.shape[0]
    p, g, m = pred.reshape(b, -1).double(), target.reshape(b, -1).double(), mask.reshape(b, -1).double()
    n = m.sum(1).clamp_min(1)
    mean_p, mean_g = (p * m).sum(1) / n, (g * m).sum(1) / n
    var_p = (((p - mean_p[:, None]) ** 2) * m).sum(1)
    cov = ((p - mean_p[:, None]) * (g - mean_g[:, None]) * m).sum(1)
    scale = torch.where(var_p > 0, cov / var_p.clamp_min(1e-20), torch.zeros_like(var_p))
    shift = mean_g - scale * mean_p
    return (scale[:, None] * p + shift[:, None]).reshape(pred.shape).to(pred.dtype)


def depth_abs_rel(pred: Tensor, target: Tensor, min_depth: float = 1e-3) -> Tensor:
    """AbsRel per image after alignment.

    Args:
        pred, target: (B, 1, H, W) or (B, H, W) depth maps of the same shape (target > 0 where valid).
        min_depth: pixels with ``target <= min_depth`` are ignored.

    Returns:
        (B,) AbsRel.

    Raises:
        ValueError: on a shape mismatch or an image without valid pixels.
    """
    if pred.shape != target.shape:
        raise ValueError(f'depth maps differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}')
    mask = target > min_depth
    if not mask.flatten(1).any(1).all():
        raise ValueError(f'an image has no ground-truth depth above min_depth={min_depth}')
    aligned = align_scale_shift(pred.float(), target.float(), mask)
    err = ((aligned - target).abs() / target.clamp_min(min_depth)) * mask
    return err.flatten(1).sum(1) / mask.flatten(1).sum(1)
