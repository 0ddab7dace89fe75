"""Kernel-field error metrics: MSE and PSNR of an estimated versus a ground-truth field."""
from __future__ import annotations

import torch
from torch import Tensor


def kernel_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared tap error per image. Args: (B, k*k, h, w) fields. Returns: (B,)."""
    if pred.shape != target.shape:
        raise ValueError(f'kernel fields differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}')
    return (pred.float() - target.float()).square().flatten(1).mean(1)


def kernel_psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR of a field per image, the peak being the ground truth's largest tap (MANet / KernelGAN style).

    Returns: (B,) in dB.
    """
    peak = target.float().flatten(1).amax(1)
    return 10 * torch.log10(peak.square() / kernel_mse(pred, target).clamp_min(1e-20))
