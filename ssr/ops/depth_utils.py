"""Depth map utilities: robust per-image normalisation and resizing to the LR grid.

Depth maps are ``(B, 1, H, W)`` relative inverse depth (near = large), DESIGN.md §3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssr.ops._checks import _check_depth

# The depth value networks see when no depth is used (``depth: none`` in an option file; the paper's no-depth
# ablation): a constant map of this value, halfway between far (0) and near (1) on the normalised inverse-depth scale.
CONSTANT_DEPTH = 0.5


def normalize_depth(depth: Tensor, low_pct: float = 2.0, high_pct: float = 98.0) -> Tensor:
    """Map each image's ``low_pct`` / ``high_pct`` percentiles to 0 / 1 and clamp, so a few outlier pixels (sky,
    specular highlights in MiDaS output) do not squash the range.

    Percentiles use the nearest rank ``1 + round(p / 100 * (N - 1))`` via ``torch.kthvalue`` (``torch.quantile``
    refuses inputs above 2^24 elements); 0 and 100 give the exact min / max.

    Args:
        depth: ``(B, 1, H, W)`` floating relative inverse depth, any range.
        low_pct: Lower percentile in [0, 100).
        high_pct: Upper percentile in (low_pct, 100].

    Returns:
        ``(B, 1, H, W)`` in [0, 1], same dtype; an image whose two percentiles coincide becomes all zeros.

    Raises:
        ValueError: On a wrong depth shape, a non-floating dtype or ``not 0 <= low_pct < high_pct <= 100``.
    """
    _check_depth(depth)
    if not depth.is_floating_point():
        raise ValueError(f'depth must be a floating tensor, got {depth.dtype}')
    if not 0 <= low_pct < high_pct <= 100:
        raise ValueError(f'percentiles must satisfy 0 <= low_pct < high_pct <= 100, got {(low_pct, high_pct)}')
    flat = depth.flatten(1)
    count = flat.shape[1]
    low = flat.kthvalue(1 + round(low_pct / 100 * (count - 1)), dim=1).values.view(-1, 1, 1, 1)
    high = flat.kthvalue(1 + round(high_pct / 100 * (count - 1)), dim=1).values.view(-1, 1, 1, 1)
    span = high - low
    valid = span > torch.finfo(depth.dtype).eps * high.abs().clamp_min(1)
    scaled = (depth - low) / torch.where(valid, span, torch.ones_like(span))
    return torch.where(valid, scaled.clamp(0, 1), torch.zeros_like(depth))


def depth_to_lr_grid(depth: Tensor, h: int, w: int) -> Tensor:
    """Average an HR depth map down to the LR grid of a kernel field (area interpolation, an exact block mean when
    ``H = s h`` and ``W = s w``).

    Args:
        depth: ``(B, 1, H, W)`` floating depth.
        h: LR height, >= 1.
        w: LR width, >= 1.

    Returns:
        ``(B, 1, h, w)`` depth, same dtype and range (a mean stays within the input's range).

    Raises:
        ValueError: On a wrong depth shape or ``h``, ``w`` < 1.
    """
    _check_depth(depth)
    if h < 1 or w < 1:
        raise ValueError(f'h and w must be >= 1, got {(h, w)}')
    return F.interpolate(depth, size=(h, w), mode='area')


def depth_dropout(depth: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Replace each image's depth map, with probability ``p``, by a constant map of a random level in [0, 1].

    Training with it (``train.depth_dropout``) teaches a depth-conditioned network that a flat map carries no
    information, so the same weights run with ``depth: none`` (a constant 0.5 map) when no depth network is at hand
    and use real depth when it is.

    Args:
        depth: ``(B, 1, H, W)`` floating depth in [0, 1].
        p: Probability in [0, 1] per image.
        generator: CPU generator for the draws (reproducible runs); the result lives on ``depth``'s device.

    Returns:
        ``(B, 1, H, W)``: ``depth`` with the dropped images replaced; ``depth`` itself when ``p == 0``.

    Raises:
        ValueError: On a wrong depth shape or ``p`` outside [0, 1].
    """
    _check_depth(depth)
    if not 0 <= p <= 1:
        raise ValueError(f'depth dropout probability must be in [0, 1], got {p}')
    if p == 0:
        return depth
    b = depth.shape[0]
    drop = (torch.rand(b, generator=generator) < p).view(b, 1, 1, 1).to(depth.device)
    level = torch.rand(b, generator=generator).view(b, 1, 1, 1).to(device=depth.device, dtype=depth.dtype)
    return torch.where(drop, level.expand_as(depth), depth)
