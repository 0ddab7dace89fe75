"""Spatial feature transform (SFT): per-pixel affine modulation of features by a condition map.

SFT comes from SFTGAN (Wang et al., CVPR 2018) and is used with kernel codes by SFTMD / IKC and MANet, and with depth
features by SSR's Depth-Aware Block (paper §3.2). Here the scale and shift are computed from the concatenation of the
features and the condition (as in SFTMD / MANet, see ``shared/reference/README.md``), so the modulation can depend
on the local content as well as on the condition. Unlike diffusers' ``SpatialNorm`` the features are not normalised
first: NBSR modulates a pretrained RRDB trunk, whose statistics a normalisation would change.

Shapes: B batch, C = ``feat_ch``, D = ``cond_ch``, (H, W) feature size, (H', W') condition size.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ['SFTLayer', 'resize_to']


def resize_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Resizes a map to ``size``: area averaging when both sides shrink, bilinear otherwise, no-op when equal.

    Args:
        x: (B, C, H', W') map.
        size: target (H, W).

    Returns:
        (B, C, H, W) map in ``x``'s dtype.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.interpolate(x, size=size, mode='area')
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


class SFTLayer(nn.Module):
    """``out = feat * (1 + scale) + shift`` with scale and shift predicted from ``concat(feat, cond)``.

    Layers: a shared 3x3 conv (C + D -> ``hidden_ch``) with LeakyReLU(0.2), then two 1x1 convs
    (``hidden_ch`` -> C) for ``scale`` and ``shift``. The condition is resized to the feature size with
    :func:`resize_to`.

    Args:
        feat_ch: C, channels of the modulated features.
        cond_ch: D, channels of the condition.
        hidden_ch: width of the shared hidden layer.
        zero_init: start the scale and shift convs at zero, so that the layer is exactly the identity until trained
            (used to add conditioning to a pretrained network without changing its output at step 0).

    Raises:
        ValueError: if a channel count is not positive.
    """

    def __init__(self, *, feat_ch: int, cond_ch: int, hidden_ch: int = 32, zero_init: bool = False) -> None:
        super().__init__()
        for name, value in (('feat_ch', feat_ch), ('cond_ch', cond_ch), ('hidden_ch', hidden_ch)):
            if value < 1:
                raise ValueError(f'SFTLayer: {name} must be >= 1, got {value}')
        self.feat_ch, self.cond_ch = feat_ch, cond_ch
        self.shared = nn.Conv2d(feat_ch + cond_ch, hidden_ch, 3, 1, 1)
        self.scale = nn.Conv2d(hidden_ch, feat_ch, 1)
        self.shift = nn.Conv2d(hidden_ch, feat_ch, 1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

        nn.init.kaiming_normal_(self.shared.weight, a=0.2, nonlinearity='leaky_relu')
        nn.init.zeros_(self.shared.bias)
        with torch.no_grad():
            for conv in (self.scale, self.shift):
                nn.init.kaiming_normal_(conv.weight)
                # x0.1: the modulation starts close to the identity but already depends on the condition.
                conv.weight.mul_(0.0 if zero_init else 0.1)
                nn.init.zeros_(conv.bias)

    def forward(self, feat: Tensor, cond: Tensor) -> Tensor:
        """Modulates ``feat`` by ``cond``.

        Args:
            feat: (B, C, H, W) features.
            cond: (B, D, H', W') condition, any spatial size (resized to (H, W)).

        Returns:
            (B, C, H, W) modulated features.

        Raises:
            ValueError: on a channel or batch mismatch.
        """
        if feat.dim() != 4 or feat.shape[1] != self.feat_ch:
            raise ValueError(f'SFTLayer: feat must be (B, {self.feat_ch}, H, W), got {tuple(feat.shape)}')
        if cond.dim() != 4 or cond.shape[1] != self.cond_ch or cond.shape[0] != feat.shape[0]:
            raise ValueError(f"SFTLayer: cond must be ({feat.shape[0]}, {self.cond_ch}, H', W'), "
                             f'got {tuple(cond.shape)}')
        cond = resize_to(cond.to(feat.dtype), feat.shape[-2:])
        hidden = self.act(self.shared(torch.cat((feat, cond), dim=1)))
        return feat * (1 + self.scale(hidden)) + self.shift(hidden)
