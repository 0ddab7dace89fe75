"""Synthetic relative inverse depth maps for training and tests without a depth network.

Three scene kinds, chosen per sample:

- ``plane``: a ground plane seen by a pinhole camera. For a plane ``n . X = c`` the inverse depth ``1 / Z`` is an
  affine function of the image coordinates, so it is a tilted ramp, clipped at 0 beyond the horizon (far / sky),
  growing downwards (near ground at the bottom of the image); the camera roll tilts it.
- ``gradient``: a linear ramp in a random direction plus a smooth random field (3 x 3 control grid, bicubic).
- ``blobs``: a weak downward ramp as background with 1 to 5 Gaussian blobs added in front (objects nearer than it).

Every map is normalised per image to [0, 1] with its exact min / max (near = 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ssr.ops.depth_utils import normalize_depth
from ssr.ops._checks import _uniform

DEPTH_KINDS: tuple[str, ...] = ('plane', 'gradient', 'blobs')
_MAX_BLOBS = 5


def _plane(rows: Tensor, cols: Tensor, draws: dict[str, Tensor]) -> Tensor:
    horizon, roll = draws['horizon'][:, None, None], draws['roll'][:, None, None]
    return (torch.cos(roll) * (rows - horizon) + torch.sin(roll) * (cols - 0.5)).clamp_min(0)


def _gradient(rows: Tensor, cols: Tensor, draws: dict[str, Tensor]) -> Tensor:
    direction = draws['direction'][:, None, None]
    ramp = torch.cos(direction) * cols + torch.sin(direction) * rows
    size = (rows.shape[-2], cols.shape[-1])
    smooth = F.interpolate(draws['control'], size=size, mode='bicubic', align_corners=True)[:, 0]
    return ramp + draws['roughness'][:, None, None] * smooth


def _blobs(rows: Tensor, cols: Tensor, draws: dict[str, Tensor]) -> Tensor:
    centre_y, centre_x = draws['centre_y'][..., None, None], draws['centre_x'][..., None, None]  # (b, n, 1, 1)
    dist2 = (rows[:, None] - centre_y).square() + (cols[:, None] - centre_x).square()
    bumps = draws['amplitude'][..., None, None] * torch.exp(-0.5 * dist2 / draws['radius'][..., None, None].square())
    return draws['background'][:, None, None] * rows + bumps.sum(dim=1)


_BUILDERS = {'plane': _plane, 'gradient': _gradient, 'blobs': _blobs}


def _draw(batch: int, generator: torch.Generator | None) -> dict[str, Tensor]:
    """Draw every kind's parameters for every sample (a fixed number of draws, so samples stay independent)."""
    blobs = (batch, _MAX_BLOBS)
    count = _uniform((batch, 1), (1, _MAX_BLOBS + 1), generator).floor()
    present = torch.arange(_MAX_BLOBS, device=count.device) < count
    return {
        # Horizon at most at 60 % of the height, so some ground is always visible; roll up to +-20 degrees.
        'horizon': _uniform((batch,), (-0.3, 0.6), generator),
        'roll': _uniform((batch,), (-math.radians(20), math.radians(20)), generator),
        'direction': _uniform((batch,), (0.0, 2 * math.pi), generator),
        'control': _uniform((batch, 1, 3, 3), (-1.0, 1.0), generator),
        'roughness': _uniform((batch,), (0.1, 0.6), generator),
        'background': _uniform((batch,), (0.0, 0.5), generator),
        'centre_y': _uniform(blobs, (0.0, 1.0), generator),
        'centre_x': _uniform(blobs, (0.0, 1.0), generator),
        'radius': _uniform(blobs, (0.05, 0.3), generator),
        'amplitude': _uniform(blobs, (0.3, 1.0), generator) * present,
    }


def synthetic_depth(batch: int, height: int, width: int, generator: torch.Generator | None = None,
                    kinds: Sequence[str] = DEPTH_KINDS, *, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> Tensor:
    """Random synthetic depth maps, one scene kind per sample (uniform over ``kinds``).

    Args:
        batch: B.
        height: H, >= 1.
        width: W, >= 1.
        generator: Source of randomness; draws happen on its device (CPU without one).
        kinds: Scene kinds to choose from, names from ``DEPTH_KINDS``.
        dtype: Result dtype (floating).
        device: Result device.

    Returns:
        ``(B, 1, H, W)`` relative inverse depth in [0, 1], each image spanning [0, 1] unless constant (then 0).

    Raises:
        ValueError: On an unknown or empty ``kinds`` or a size < 1.
    """
    unknown = [kind for kind in kinds if kind not in DEPTH_KINDS]
    if unknown or not kinds:
        raise ValueError(f'kinds {list(kinds)} has unknown names {unknown}; valid: {DEPTH_KINDS}')
    if batch < 0 or height < 1 or width < 1:
        raise ValueError(f'batch must be >= 0 and height, width >= 1, got {(batch, height, width)}')
    choice = (_uniform((batch,), (0, len(kinds)), generator).floor().long().clamp_max(len(kinds) - 1)).cpu()
    draws = {k: v.to(device=device, dtype=dtype) for k, v in _draw(batch, generator).items()}
    rows = torch.linspace(0, 1, height, dtype=dtype, device=device).view(1, height, 1)
    cols = torch.linspace(0, 1, width, dtype=dtype, device=device).view(1, 1, width)

    depth = torch.empty(batch, 1, height, width, dtype=dtype, device=device)
    for index, kind in enumerate(kinds):  # one vectorised call per kind
        selected = (choice == index).nonzero().flatten().to(depth.device)
        if selected.numel():
            subset = {k: v[selected] for k, v in draws.items()}
            depth[selected, 0] = _BUILDERS[kind](rows, cols, subset)
    return normalize_depth(depth, 0.0, 100.0)
