"""Losses on kernel fields: a direct field loss and the LR re-degradation consistency loss."""
from __future__ import annotations

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor, nn

from ssr.ops.sv_blur import sv_blur_downsample

FIELD_CRITERIA = ('l1', 'mse', 'charbonnier')


def _criterion(name: str, eps: float):
    if name == 'l1':
        return lambda a, b: (a - b).abs()
    if name == 'mse':
        return lambda a, b: (a - b).square()
    if name == 'charbonnier':
        return lambda a, b: torch.sqrt((a - b).square() + eps * eps)
    raise ValueError(f'criterion {name!r} not in {FIELD_CRITERIA}')


@LOSS_REGISTRY.register()
class KernelFieldLoss(nn.Module):
    """Distance between an estimated and a ground-truth kernel field.

    Kernel taps are small (a 21x21 kernel's taps average 1/441), so the per-tap distance is summed over the k*k
    taps of each pixel and averaged over pixels and batch: the loss of one pixel is then comparable across kernel
    sizes and to image losses.

    Args:
        loss_weight: multiplier.
        criterion: ``l1`` | ``mse`` | ``charbonnier``.
        eps: Charbonnier epsilon.
    """

    def __init__(self, loss_weight: float = 1.0, criterion: str = 'l1', eps: float = 1e-6):
        super().__init__()
        self.loss_weight, self.distance = float(loss_weight), _criterion(criterion, eps)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Args: pred, target: (B, k*k, h, w) fields. Returns: scalar."""
        if pred.shape != target.shape:
            raise ValueError(f'kernel fields differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}')
        return self.loss_weight * self.distance(pred, target).sum(1).mean()


@LOSS_REGISTRY.register()
class LRConsistencyLoss(nn.Module):
    """Re-degradation consistency: blur + subsample the HR image with the estimated field, compare with an LR.

    ``L = criterion(G_K_est(HR), LR_ref)`` with ``G_K`` the SV blur + s-fold subsampling of paper Eq. 1. Use the
    clean reference ``G_K_gt(HR)`` when noise or JPEG were added to the input LR.

    Args:
        loss_weight: multiplier.
        scale: s.
        criterion: ``l1`` | ``mse`` | ``charbonnier``.
    """

    def __init__(self, loss_weight: float = 1.0, scale: int = 4, criterion: str = 'l1', eps: float = 1e-6):
        super().__init__()
        self.loss_weight, self.scale, self.distance = float(loss_weight), int(scale), _criterion(criterion, eps)

    def forward(self, kernel: Tensor, hr: Tensor, lr_ref: Tensor) -> Tensor:
        """Args: kernel (B, k*k, h, w); hr (B, C, s*h, s*w); lr_ref (B, C, h, w). Returns: scalar."""
        return self.loss_weight * self.distance(sv_blur_downsample(hr, kernel, self.scale), lr_ref).mean()
