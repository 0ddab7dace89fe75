"""Spatially Variant Kernel Refinement (SVKR, paper Algorithm 1) as a reusable component.

Notation (paper -> code)::

    LR      lq        (B, 3, h, w)    low-resolution input in [0, 1]
    DE      depth_fn  image -> (B, 1, H', W') relative inverse depth in [0, 1] (any size; consumers resize it)
    KE      kernel_fn (lq, depth) -> (B, k*k, h, w) kernel field, sums to 1 over dim 1
    NBSR    sr_fn     (lq, kernel) -> (B, 3, s*h, s*w) SR image
    T       iterations (paper: 3)
    gamma   gamma (paper: 0.9), Eq. 2: K = gamma * K' + (1 - gamma) * K_prev

    D^0 = DE(LR);  K^0 = KE(LR, D^0);  I^0 = NBSR(LR, K^0)
    for t = 0 .. T-1:  D^{t+1} = DE(I^t);  K' = KE(LR, D^{t+1});  K^{t+1} = gamma K' + (1 - gamma) K^t;
                       I^{t+1} = NBSR(LR, K^{t+1})
    return D^T, K^T, I^T

A convex blend of two fields whose kernels sum to 1 sums to 1, so K^t stays a kernel field. With T = 0 SVKR is the
plain two-stage pipeline (estimate once, then non-blind SR); with gamma = 1 the history is ignored.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

DepthFn = Callable[[Tensor], Tensor]
KernelFn = Callable[[Tensor, Tensor], Tensor]
SRFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class SVKROutput:
    """Result of :class:`SVKR`.

    Attributes:
        depth: D^T, (B, 1, H', W') in [0, 1].
        kernel: K^T, (B, k*k, h, w).
        sr: I^T, (B, 3, s*h, s*w).
        iterates: when requested, ``[{'depth': D^t, 'kernel': K^t, 'sr': I^t} for t in 0..T]`` (for figures).
    """

    depth: Tensor
    kernel: Tensor
    sr: Tensor
    iterates: list[dict[str, Tensor]] = field(default_factory=list)


class SVKR:
    """Algorithm 1 over three callables (networks or any functions with the signatures above).

    Args:
        depth_fn: DE; receives LR first, then each SR iterate.
        kernel_fn: KE.
        sr_fn: NBSR.
        iterations: T >= 0.
        gamma: update rate in [0, 1].

    Raises:
        ValueError: ``iterations`` < 0 or ``gamma`` outside [0, 1].
    """

    def __init__(self, depth_fn: DepthFn, kernel_fn: KernelFn, sr_fn: SRFn, iterations: int = 3, gamma: float = 0.9):
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f'svkr.iterations must be an int >= 0, got {iterations!r}')
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f'svkr.gamma must be in [0, 1], got {gamma!r}')
        self.depth_fn, self.kernel_fn, self.sr_fn = depth_fn, kernel_fn, sr_fn
        self.iterations, self.gamma = iterations, float(gamma)

    def __call__(self, lq: Tensor, return_iterates: bool = False) -> SVKROutput:
        """Run T refinement rounds on ``lq`` (B, 3, h, w)."""
        depth = self.depth_fn(lq)
        kernel = self.kernel_fn(lq, depth)
        sr = self.sr_fn(lq, kernel)
        iterates = [{'depth': depth, 'kernel': kernel, 'sr': sr}] if return_iterates else []
        for _ in range(self.iterations):
            depth = self.depth_fn(sr)
            kernel = torch.lerp(kernel, self.kernel_fn(lq, depth), self.gamma)  # Eq. 2
            sr = self.sr_fn(lq, kernel)
            if return_iterates:
                iterates.append({'depth': depth, 'kernel': kernel, 'sr': sr})
        return SVKROutput(depth=depth, kernel=kernel, sr=sr, iterates=iterates)
