"""Argument checks and the seeded uniform draw shared by the modules of :mod:`ssr.ops` (private)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

Number = float | int


def _check_positive(name: str, value: Tensor | Number) -> None:
    """Raise ``ValueError`` unless every entry of ``value`` is > 0 (NaN fails too)."""
    value = torch.as_tensor(value)
    if value.numel() and not bool((value > 0).all()):
        bad = value[~(value > 0)].flatten()[0].item()
        raise ValueError(f'{name} must be > 0, got {bad}')


def _check_non_negative(name: str, value: Tensor | Number) -> None:
    """Raise ``ValueError`` unless every entry of ``value`` is >= 0 (NaN fails too)."""
    value = torch.as_tensor(value)
    if value.numel() and not bool((value >= 0).all()):
        bad = value[~(value >= 0)].flatten()[0].item()
        raise ValueError(f'{name} must be >= 0, got {bad}')


def _check_range(name: str, value_range: Sequence[float], low: float = -math.inf) -> None:
    """Raise ``ValueError`` unless ``value_range`` is ``(lo, hi)`` with ``low <= lo <= hi``."""
    if len(value_range) != 2 or not low <= value_range[0] <= value_range[1]:
        raise ValueError(f'{name} must be (lo, hi) with {low} <= lo <= hi, got {tuple(value_range)}')


def _uniform(shape: tuple[int, ...], value_range: Sequence[float], generator: torch.Generator | None) -> Tensor:
    """Uniform draws on the generator's device (CPU without one), so results do not depend on the target device."""
    device = generator.device if generator is not None else torch.device('cpu')
    low, high = value_range
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float32) * (high - low) + low


def _check_depth(depth: Tensor) -> None:
    if not isinstance(depth, Tensor) or depth.dim() != 4 or depth.shape[1] != 1:
        shape = tuple(depth.shape) if isinstance(depth, Tensor) else type(depth).__name__
        raise ValueError(f'depth must be a (B, 1, H, W) tensor, got {shape}')
