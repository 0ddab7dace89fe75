"""DCLS's kernels and reformulated kernel target (``ssr.ops.dcls_degradation``), checked against the official
definitions written out here from DCLS's ``random_batch_kernel`` / ``normkernel_to_downkernel`` formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssr.ops.dcls_degradation import dcls_random_kernels, dcls_stable_kernels, reformulated_kernel, sparsify_kernel


def _official_aniso(sx: float, sy: float, radians: float, k: int) -> np.ndarray:
    """exp(-0.5 xy^T (U D U^T)^-1 xy) on DCLS's grid (arange(-k//2 + 1, k//2 + 1)), normalised."""
    ax = np.arange(-k // 2 + 1.0, k // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    u = np.array([[math.cos(radians), -math.sin(radians)], [math.sin(radians), math.cos(radians)]])
    inv = np.linalg.inv(u @ np.diag([sx**2, sy**2]) @ u.T)
    xy = np.stack([xx, yy], -1)
    kernel = np.exp(-0.5 * np.einsum('...i,ij,...j->...', xy, inv, xy))
    return kernel / kernel.sum()


def test_random_kernels_follow_the_official_formula_and_draw_order():
    gen = torch.Generator().manual_seed(3)
    kernels = dcls_random_kernels(4, 11, 0.6, 5.0, rate_iso=0.0, generator=gen)
    gen = torch.Generator().manual_seed(3)  # the same draws in the documented order: sigma_x, sigma_y, angle, iso
    sx = 0.6 + 4.4 * torch.rand(4, generator=gen, dtype=torch.float64)
    sy = 0.6 + 4.4 * torch.rand(4, generator=gen, dtype=torch.float64)
    angle = -math.pi + 2 * math.pi * torch.rand(4, generator=gen, dtype=torch.float64)
    for i in range(4):
        expected = _official_aniso(float(sx[i]), float(sy[i]), float(angle[i]), 11)
        np.testing.assert_allclose(kernels[i].numpy(), expected, rtol=0, atol=1e-7)


def test_isotropic_kernels_and_the_iso_rate():
    iso = dcls_random_kernels(8, 11, 0.2, 4.0, rate_iso=1.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(iso, iso.transpose(-2, -1))  # isotropic: symmetric
    torch.testing.assert_close(iso, iso.flip(-1))
    mixed = dcls_random_kernels(400, 11, 0.6, 5.0, rate_iso=0.5, generator=torch.Generator().manual_seed(1))
    symmetric = (mixed - mixed.transpose(-2, -1)).abs().flatten(1).amax(1) < 1e-7
    assert 0.4 < symmetric.float().mean() < 0.6


def test_random_disturb_scales_taps_by_at_most_a_quarter():
    plain = dcls_random_kernels(6, 11, 0.6, 5.0, 0.0, generator=torch.Generator().manual_seed(2))
    noisy = dcls_random_kernels(6, 11, 0.6, 5.0, 0.0, True, generator=torch.Generator().manual_seed(2))
    ratio = (noisy / plain).flatten(1)
    assert (ratio.amax(1) / ratio.amin(1) <= 1.25 + 1e-4).all() and (ratio.amax(1) / ratio.amin(1) > 1.1).all()
    torch.testing.assert_close(noisy.sum((-2, -1)), torch.ones(6))


def test_stable_kernel_is_the_fixed_isotropic_gaussian():
    kernel = dcls_stable_kernels(2, 11, 2.6)
    np.testing.assert_allclose(kernel[1].numpy(), _official_aniso(2.6, 2.6, 0.0, 11), atol=1e-7)


def test_sparsify_keeps_the_largest_taps_above_three_quarters_of_the_next():
    kernel = torch.zeros(1, 1, 5, 5)
    kernel[0, 0, 2, 2], kernel[0, 0, 2, 3], kernel[0, 0, 1, 2] = 0.5, 0.3, 0.2
    out = sparsify_kernel(kernel, keep=2)  # floor = 0.75 * the 3rd largest (0.2) = 0.15
    expected = torch.zeros(1, 1, 5, 5)
    expected[0, 0, 2, 2], expected[0, 0, 2, 3], expected[0, 0, 1, 2] = 0.35, 0.15, 0.05
    torch.testing.assert_close(out, expected / 0.55)


def test_reformulated_kernel_recovers_a_circular_lr_kernel():
    gen = torch.Generator().manual_seed(4)
    clean = torch.rand(2, 3, 24, 20, generator=gen)
    small = torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.5, 0.15], [0.0, 0.15, 0.0]])
    psf = torch.zeros(24, 20)  # the kernel around offset 0, circularly
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            psf[dy % 24, dx % 20] = small[dy + 1, dx + 1]
    blurred = torch.fft.ifft2(torch.fft.fft2(clean) * torch.fft.fft2(psf)).real
    out = reformulated_kernel(blurred, clean, 7)
    expected = torch.zeros(2, 1, 7, 7)
    expected[:, 0, 2:5, 2:5] = small
    assert out.shape == (2, 1, 7, 7)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize('call, match', [
    (lambda: dcls_random_kernels(1, 10), 'odd'),
    (lambda: dcls_random_kernels(1, 11, 3.0, 1.0), 'sig_min <= sig_max'),
    (lambda: dcls_random_kernels(1, 11, rate_iso=1.5), 'rate_iso'),
    (lambda: reformulated_kernel(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), 5), 'equal'),
    (lambda: reformulated_kernel(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), 9), 'LR side'),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
