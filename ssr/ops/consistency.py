"""Kernel-consistent projection of an HR estimate onto agreement with its LR, with a noise-aware stop.

With G the SV blur + s-fold subsampling of :func:`~ssr.ops.sv_blur.sv_blur_downsample` for a kernel field K, an
estimate x0 (e.g. a diffusion sampler's predicted clean image) and the observed LR y, :func:`consistent_projection`
approximately solves::

    x* = argmin_x ||G x - y||^2 + lam ||x - x0||^2,   i.e.   (G^T G + lam I) x = G^T y + lam x0

by conjugate gradients (CG) started at x0, with the exact adjoint :func:`~ssr.ops.sv_blur.sv_blur_downsample_adjoint`
for G^T. Every CG iterate stays in ``x0 + range(G^T)``, so for ``lam -> 0`` CG converges to the orthogonal
projection of x0 onto ``{x : G x = y}`` (the smallest change of x0 that fits y exactly, DDNM's range-null-space split
for a spatially variant operator); ``lam > 0`` trades agreement for closeness to x0.

Noise-aware stop (Morozov's discrepancy principle): with LR noise of standard deviation sigma, a consistent x has
``||G x - y|| ~ sigma sqrt(n)`` (n = C*h*w LR values per image); fitting below that fits the noise. CG therefore stops
for an image as soon as ``||G x - y|| <= tau * sigma * sqrt(n)`` (checked before every iteration, so an image that
already satisfies it is returned unchanged). ``sigma='auto'`` estimates sigma from y by :func:`estimate_noise_sigma`.

Shapes: B batch, C channels (3), (h, w) LR, (H, W) = (s*h, s*w) HR; kernel field (B, k*k, h, w) on the LR grid as in
:mod:`ssr.ops.sv_blur`. Images in [0, 1] (not clamped here).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ssr.ops.sv_blur import sv_blur_downsample, sv_blur_downsample_adjoint

__all__ = ['MAD_TO_SIGMA', 'ConsistencyInfo', 'consistent_projection', 'estimate_noise_sigma', 'lr_residual']

MAD_TO_SIGMA = 0.6745  # median(|N(0, 1)|): sigma = median(|w|) / 0.6745 for Gaussian w (Donoho & Johnstone 1994)


@dataclass
class ConsistencyInfo:
    """What :func:`consistent_projection` did, per image.

    Attributes:
        iterations: (B,) int64, CG iterations run (0 when x0 already met the stop rule).
        initial_residual: (B,) ``||G x0 - y||``.
        residual: (B,) ``||G x - y||`` of the returned x.
        threshold: (B,) ``tau * sigma * sqrt(n)``, or ``None`` without a stop rule (``sigma=None``).
        sigma: (B,) the noise level used (given or estimated), or ``None``.
    """

    iterations: Tensor
    initial_residual: Tensor
    residual: Tensor
    threshold: Tensor | None
    sigma: Tensor | None


def estimate_noise_sigma(img: Tensor) -> Tensor:
    """Robust (MAD) estimate of additive white noise per image from the finest diagonal Haar wavelet band.

    The HH coefficient of each 2x2 block, ``(a - b - c + d) / 2``, is orthonormal (white noise of std sigma stays
    sigma) and nearly free of smooth image content; ``sigma = median(|HH|) / 0.6745`` over all channels and blocks
    (Donoho & Johnstone 1994). Texture and JPEG blocking raise the estimate a little, which only makes the stop rule
    more cautious.

    Args:
        img: (B, C, h, w) image with h, w >= 2 (an odd last row / column is dropped).

    Returns:
        (B,) sigma in the image's units (for [0, 1] images: 0.01 = 2.55 / 255).

    Raises:
        ValueError: on a non-4D input or one smaller than 2x2.
    """
    if img.dim() != 4 or min(img.shape[-2:]) < 2:
        raise ValueError(f'estimate_noise_sigma: expected a (B, C, h, w) image with h, w >= 2, got {tuple(img.shape)}')
    h, w = img.shape[-2] // 2 * 2, img.shape[-1] // 2 * 2
    x = img[..., :h, :w]
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return hh.abs().flatten(1).median(dim=1).values / MAD_TO_SIGMA


def lr_residual(x: Tensor, lr: Tensor, kernel: Tensor, scale: int, padding: str = 'reflect') -> Tensor:
    """(B,) ``||G x - y||`` per image: the LR residual of an HR image x (B, C, H, W) under the kernel field."""
    return (sv_blur_downsample(x, kernel, scale, padding=padding) - lr).flatten(1).norm(dim=1)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1)


def _per_image(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


def _resolve_sigma(sigma: float | Tensor | str | None, lr: Tensor) -> Tensor | None:
    if sigma is None:
        return None
    if isinstance(sigma, str):
        if sigma != 'auto':
            raise ValueError(f"consistent_projection: sigma must be a number, a (B,) tensor, 'auto' or None, "
                             f'got {sigma!r}')
        return estimate_noise_sigma(lr)
    out = torch.as_tensor(sigma, dtype=lr.dtype, device=lr.device).flatten()
    if out.numel() == 1:
        out = out.expand(lr.shape[0])
    if out.numel() != lr.shape[0] or not bool((out >= 0).all()):
        raise ValueError(f'consistent_projection: sigma must be >= 0, one value or one per image (B = {lr.shape[0]}), '
                         f'got {sigma!r}')
    return out


def consistent_projection(x0: Tensor, lr: Tensor, kernel: Tensor, scale: int, weight: float = 1e-3, iters: int = 10,
                          sigma: float | Tensor | Literal['auto'] | None = None, tau: float = 1.0, *,
                          padding: Literal['reflect', 'replicate', 'zeros'] = 'reflect'
                          ) -> tuple[Tensor, ConsistencyInfo]:
    """Moves x0 towards agreement with the LR under the kernel field by at most ``iters`` CG iterations.

    Solves ``(G^T G + weight I) x = G^T lr + weight x0`` from ``x = x0`` (see the module docstring), each image of the
    batch with its own step sizes and its own stop.

    Args:
        x0: (B, C, H, W) HR estimate, float (typically in [0, 1]).
        lr: (B, C, h, w) observed LR y, same dtype and device; H = scale * h, W = scale * w.
        kernel: (B, k*k, h, w) kernel field of G (K^T of SVKR, or the data's), same dtype and device.
        scale: s.
        weight: lam >= 0, the pull towards x0 (0: projection onto ``G x = y`` in the limit).
        iters: maximum CG iterations, >= 0 (each costs one G and one G^T).
        sigma: LR noise std (images in [0, 1]): a number or (B,) tensor, ``'auto'`` (:func:`estimate_noise_sigma` of
            ``lr``), or ``None`` (no stop rule: all ``iters`` run, or until CG has converged).
        tau: > 0, the discrepancy factor: stop once ``||G x - y|| <= tau * sigma * sqrt(C*h*w)``.
        padding: border handling of G, as in :func:`~ssr.ops.sv_blur.sv_blur_downsample`.

    Returns:
        ``(x, info)``: x (B, C, H, W) in x0's dtype (not clamped), and :class:`ConsistencyInfo`.

    Raises:
        ValueError: on mismatched shapes (via the SV-blur checks), ``weight < 0``, ``iters < 0``, ``tau <= 0`` or a
            bad ``sigma``.
    """
    if not weight >= 0:
        raise ValueError(f'consistent_projection: weight must be >= 0, got {weight}')
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 0:
        raise ValueError(f'consistent_projection: iters must be an int >= 0, got {iters!r}')
    if not tau > 0:
        raise ValueError(f'consistent_projection: tau must be > 0, got {tau}')
    if x0.dim() != 4 or lr.dim() != 4 or x0.shape[:2] != lr.shape[:2]:
        raise ValueError(f'consistent_projection: x0 {tuple(x0.shape)} and lr {tuple(lr.shape)} must be (B, C, H, W) '
                         f'and (B, C, h, w) with the same B and C')
    hr_size = tuple(x0.shape[-2:])

    def forward(v: Tensor) -> Tensor:
        return sv_blur_downsample(v, kernel, scale, padding=padding)

    def adjoint(v: Tensor) -> Tensor:
        return sv_blur_downsample_adjoint(v, kernel, scale, hr_size, padding=padding)

    sig = _resolve_sigma(sigma, lr)
    threshold = None if sig is None else tau * sig * math.sqrt(lr[0].numel())
    x = x0.clone()
    r_lr = forward(x) - lr                     # G x - y, updated alongside x
    res = initial = r_lr.flatten(1).norm(dim=1)
    r = -adjoint(r_lr)                         # b - M x0 = G^T (y - G x0); the lam terms cancel at x = x0
    p = r.clone()
    rs = _dot(r, r)
    # CG has converged for an image once its normal-equation residual is at rounding level of G^T y
    floor = (torch.finfo(x.dtype).eps * adjoint(lr).flatten(1).norm(dim=1))**2
    count = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    for _ in range(iters):
        active = rs > floor
        if threshold is not None:
            active &= res > threshold
        if not bool(active.any()):
            break
        gp = forward(p)
        mp = adjoint(gp) + weight * p
        pmp = _dot(p, mp)
        active &= pmp > 0
        alpha = torch.where(active, rs / torch.where(active, pmp, torch.ones_like(pmp)), torch.zeros_like(pmp))
        x.add_(_per_image(alpha) * p)
        r_lr.add_(_per_image(alpha) * gp)
        r.sub_(_per_image(alpha) * mp)
        rs_new = _dot(r, r)
        beta = torch.where(active, rs_new / torch.where(active, rs, torch.ones_like(rs)), torch.zeros_like(rs))
        p = torch.where(_per_image(active), r + _per_image(beta) * p, p)
        rs = torch.where(active, rs_new, rs)
        res = r_lr.flatten(1).norm(dim=1)
        count += active.long()
    info = ConsistencyInfo(iterations=count, initial_residual=initial, residual=res, threshold=threshold, sigma=sig)
    return x, info
