"""DCLS's training degradation and kernel target: its random kernels and the *reformulated* LR-space kernel.

DCLS (Luo et al., CVPR 2022; megvii-research/DCLS-SR, ``codes/utils/deg_utils.py`` ``SRMDPreprocessing`` and
``codes/utils/dcls_utils.py``) blurs an HR image with one kernel *centred* at index k // 2 (reflect padding), then
downsamples it with MATLAB bicubic ``imresize(1/s)``. Its estimator is trained towards the kernel ``k_LR`` that maps
the bicubic-downsampled clean HR onto the bicubic-downsampled blurred HR, ``LR_blurred ~ k_LR * LR_clean``, found by
division in the Fourier domain (:func:`reformulated_kernel`). The functions here follow those definitions; the code is
ssr's own.

Notation: B images, C channels, (h, w) LR size, k the kernel size (odd), sigmas are standard deviations in HR pixels,
theta the angle of sigma1's axis, (x, y) = (column, row) offsets from the kernel centre.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ssr.ops.kernels import gaussian_kernels

__all__ = ['dcls_random_kernels', 'dcls_stable_kernels', 'reformulated_kernel', 'sparsify_kernel']


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def dcls_random_kernels(batch: int, kernel_size: int = 21, sig_min: float = 0.2, sig_max: float = 4.0,
                        rate_iso: float = 1.0, random_disturb: bool = False,
                        generator: torch.Generator | None = None) -> Tensor:
    """DCLS's random training kernels (``random_batch_kernel``), centred at k // 2.

    ``rate_iso == 1``: isotropic, sigma ~ U[sig_min, sig_max]. Otherwise sigma_x, sigma_y ~ U[sig_min, sig_max] along
    an angle ~ U[-pi, pi], and each kernel is made isotropic (sigma_y = sigma_x, angle 0) with probability
    ``rate_iso``. ``random_disturb`` multiplies every tap by 1 + U[0, 0.25] before normalising.

    Args:
        batch: B >= 1.
        kernel_size: k, odd >= 3.
        sig_min, sig_max: std range, 0 < sig_min <= sig_max.
        rate_iso: probability of an isotropic kernel in [0, 1] (1 = all isotropic).
        random_disturb: the multiplicative tap noise of DCLS setting 2.
        generator: the only source of randomness (CPU).

    Returns:
        (B, k, k) float32 kernels, each summing to 1.

    Raises:
        ValueError: an even or too small ``kernel_size``, a bad sigma range or ``rate_iso`` outside [0, 1].
    """
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f'kernel_size must be odd and >= 3, got {kernel_size}')
    if not 0 < sig_min <= sig_max:
        raise ValueError(f'need 0 < sig_min <= sig_max, got {sig_min}, {sig_max}')
    if not 0 <= rate_iso <= 1:
        raise ValueError(f'rate_iso must be in [0, 1], got {rate_iso}')
    if rate_iso == 1:
        sigma1 = _uniform((batch,), sig_min, sig_max, generator)
        sigma2, theta = sigma1, torch.zeros(batch, dtype=torch.float64)
    else:
        sigma1 = _uniform((batch,), sig_min, sig_max, generator)
        sigma2 = _uniform((batch,), sig_min, sig_max, generator)
        theta = _uniform((batch,), -math.pi, math.pi, generator)
        iso = torch.rand(batch, generator=generator, dtype=torch.float64) < rate_iso
        sigma2 = torch.where(iso, sigma1, sigma2)
        theta = torch.where(iso, torch.zeros_like(theta), theta)
    kernels = gaussian_kernels(sigma1, sigma2, theta, kernel_size, scale=1)  # scale 1: centre at k // 2
    if random_disturb:
        kernels = kernels * (1 + 0.25 * torch.rand(kernels.shape, generator=generator, dtype=kernels.dtype))
        kernels = kernels / kernels.sum((-2, -1), keepdim=True)
    return kernels.float()


def dcls_stable_kernels(batch: int, kernel_size: int = 21, sig: float = 2.6) -> Tensor:
    """DCLS's fixed kernel (``stable_batch_kernel``, ``random_kernel: false``): isotropic std ``sig``, centred at
    k // 2; (B, k, k) float32 summing to 1."""
    if sig <= 0:
        raise ValueError(f'sig must be > 0, got {sig}')
    sigma = torch.full((batch,), float(sig), dtype=torch.float64)
    return gaussian_kernels(sigma, sigma, torch.zeros(batch, dtype=torch.float64), kernel_size, scale=1).float()


def sparsify_kernel(kernel: Tensor, keep: int = 40) -> Tensor:
    """DCLS's ``zeroize_negligible_val``: subtract 0.75 x the (keep + 1)-th largest tap of each kernel, clip to
    [0, 1], add 1e-20 at tap (k // 2 + 1, k // 2 + 1) (the official index, one past the centre) and normalise.

    Args:
        kernel: (B, 1, k, k).
        keep: the n of the official code.

    Returns:
        (B, 1, k, k) summing to 1.
    """
    b, _, k, _ = kernel.shape
    if not 0 <= keep < k * k:
        raise ValueError(f'keep must be in [0, {k * k}), got {keep}')
    floor = 0.75 * kernel.flatten(1).sort(dim=1).values[:, -keep - 1]
    out = (kernel - floor.view(b, 1, 1, 1)).clamp(0, 1)
    centre = min(k // 2 + 1, k - 1)
    out[:, :, centre, centre] += 1e-20
    return out / out.sum((2, 3), keepdim=True)


def reformulated_kernel(lr_blurred: Tensor, lr_clean: Tensor, kernel_size: int, eps: float = 1e-20,
                        keep: int = 40) -> Tensor:
    """DCLS's kernel target (``CorrectionLoss``): the LR-space kernel with ``lr_blurred ~ k_LR * lr_clean``.

    Per channel, ``K = F(lr_blurred) conj(F(lr_clean)) / (|F(lr_clean)|^2 + eps)`` (``normkernel_to_downkernel``),
    its inverse transform cropped circularly to the k x k taps around offset 0 (tap k // 2 + d holds offset d); the
    channels' kernels are averaged, taps where their product is not positive are set to 0, and the result is
    :func:`sparsify_kernel`-ed.

    Args:
        lr_blurred: (B, C, h, w) bicubic-downsampled blurred HR (before noise), float.
        lr_clean: (B, C, h, w) bicubic-downsampled clean HR.
        kernel_size: k, odd, <= min(h, w).
        eps: regulariser of the division (1e-20 in DCLS's model).
        keep: see :func:`sparsify_kernel`.

    Returns:
        (B, 1, k, k) float32 kernels centred at k // 2, each summing to 1.

    Raises:
        ValueError: shapes that differ or are too small for the kernel.
    """
    if lr_blurred.shape != lr_clean.shape or lr_blurred.dim() != 4:
        raise ValueError(f'lr_blurred and lr_clean must be equal (B, C, h, w) tensors, got '
                         f'{tuple(lr_blurred.shape)} and {tuple(lr_clean.shape)}')
    h, w = lr_blurred.shape[-2:]
    if kernel_size % 2 == 0 or kernel_size > min(h, w):
        raise ValueError(f'kernel_size must be odd and <= the LR side {min(h, w)}, got {kernel_size}')
    blur_f = torch.fft.fft2(lr_blurred.float())
    clean_f = torch.fft.fft2(lr_clean.float())
    psf = torch.fft.ifft2(blur_f * clean_f.conj() / (clean_f.real.square() + clean_f.imag.square() + eps)).real
    r = kernel_size // 2
    offsets = torch.arange(-r, r + 1, device=psf.device)
    per_channel = psf[..., offsets % h, :][..., offsets % w]  # (B, C, k, k): tap r + d holds offset d
    mask = per_channel.prod(dim=1, keepdim=True) > 0
    return sparsify_kernel(per_channel.mean(dim=1, keepdim=True) * mask, keep)
