"""Tests for ``ssr.ops.kernels``: analytic facts (sums, symmetry, moments) and BasicSR's Gaussian formula."""

import math

import numpy as np
import pytest
import torch

from ssr.ops.kernels import (KERNEL_TYPES, covariance_to_gaussian_params, delta_kernel, gaussian_covariance,
                              gaussian_kernels, generalized_gaussian_kernels, isotropic_gaussian_kernels,
                              kernel_moments, kernel_params_from_moments, motion_kernels, plateau_kernels,
                              random_mixed_kernels)


def _basicsr_bivariate_gaussian(kernel_size: int, sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """BasicSR's ``bivariate_Gaussian`` (degradations.py: sigma_matrix2 -> mesh_grid -> pdf2), written from its
    formula: Sigma = U diag(sig_x^2, sig_y^2) U^T, U = [[cos, -sin], [sin, cos]], grid (xx = column, yy = row)
    over [-K // 2 + 1, K // 2], k = exp(-0.5 g^T Sigma^-1 g) / sum."""
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv_sigma = np.linalg.inv(rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T)
    axis = np.arange(-kernel_size // 2 + 1.0, kernel_size // 2 + 1.0)
    xx, yy = np.meshgrid(axis, axis)
    grid = np.stack([xx, yy], axis=-1)
    kernel = np.exp(-0.5 * np.sum((grid @ inv_sigma) * grid, axis=-1))
    return kernel / kernel.sum()


# ---------------------------------------------------------------------------------------------------------------------
# Sums, symmetry, reference formula
# ---------------------------------------------------------------------------------------------------------------------
_SIGMA1 = torch.tensor([0.3, 1.0, 2.5, 3.0])
_SIGMA2 = torch.tensor([0.3, 0.6, 2.0, 1.0])
_THETA = torch.tensor([0.0, 0.4, -1.2, 3.0])


@pytest.mark.parametrize('build', [
    lambda s: gaussian_kernels(_SIGMA1, _SIGMA2, _THETA, 21, s),
    lambda s: isotropic_gaussian_kernels(_SIGMA1, 21, s),
    lambda s: generalized_gaussian_kernels(_SIGMA1, _SIGMA2, _THETA, torch.tensor([0.5, 1.0, 2.0, 4.0]), 21, s),
    lambda s: plateau_kernels(_SIGMA1, _SIGMA2, _THETA, torch.tensor([0.5, 1.0, 1.5, 2.0]), 21, s),
    lambda s: motion_kernels(torch.tensor([0.0, 3.0, 7.5, 12.0]), _THETA, 21, s),
], ids=['gaussian', 'isotropic', 'generalized', 'plateau', 'motion'])
@pytest.mark.parametrize('scale', [1, 2, 3, 4])
def test_kernels_sum_to_one_and_are_non_negative(build, scale):
    kernels = build(scale)
    assert kernels.shape == (4, 21, 21)
    assert kernels.dtype == torch.float32
    assert (kernels >= 0).all()
    torch.testing.assert_close(kernels.sum((-2, -1)), torch.ones(4), atol=1e-5, rtol=0)


def test_parameters_broadcast_over_leading_shape():
    kernels = gaussian_kernels(torch.full((2, 3), 1.5), 1.0, torch.zeros(1, 3), kernel_size=7, scale=2)
    assert kernels.shape == (2, 3, 7, 7)


@pytest.mark.parametrize('sigma', [0.4, 1.0, 2.7])
def test_isotropic_kernel_is_symmetric_for_scale_one(sigma):
    kernel = isotropic_gaussian_kernels(sigma, 21, 1, dtype=torch.float64)
    torch.testing.assert_close(kernel, kernel.flip(0), rtol=0, atol=1e-15)
    torch.testing.assert_close(kernel, kernel.flip(1), rtol=0, atol=1e-15)
    torch.testing.assert_close(kernel, kernel.T, rtol=0, atol=1e-15)


@pytest.mark.parametrize('sig_x, sig_y, theta', [(1.0, 1.0, 0.0), (3.0, 1.0, 0.0), (2.5, 0.7, 0.5),
                                                  (0.8, 2.2, -1.1), (2.0, 1.2, 2.9)])
def test_gaussian_matches_basicsr_formula_at_scale_one(sig_x, sig_y, theta):
    expected = torch.from_numpy(_basicsr_bivariate_gaussian(21, sig_x, sig_y, theta))
    kernel = gaussian_kernels(sig_x, sig_y, theta, 21, 1, dtype=torch.float64)
    torch.testing.assert_close(kernel, expected, rtol=0, atol=1e-12)


def test_dtype_and_device_follow_tensor_inputs():
    kernel = gaussian_kernels(torch.tensor(1.0, dtype=torch.float64), 1.0, 0.0, 5, 1)
    assert kernel.dtype == torch.float64
    assert gaussian_kernels(1.0, 1.0, 0.0, 5, 1).dtype == torch.float32


def test_very_narrow_kernel_stays_finite():
    kernel = gaussian_kernels(1e-3, 1e-3, 0.0, 21, 4)
    assert torch.isfinite(kernel).all()
    torch.testing.assert_close(kernel.sum(), torch.tensor(1.0))


# ---------------------------------------------------------------------------------------------------------------------
# Moments and the theta convention
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('sigma1, sigma2, theta, scale', [
    (0.8, 0.8, 0.0, 1), (1.5, 0.8, 0.3, 1), (3.0, 1.0, 1.2, 1),
    (2.0, 1.0, -0.7, 2), (3.0, 3.0, 0.0, 2),
    (2.5, 1.2, 0.9, 3), (3.0, 2.0, 2.5, 3),
    (1.0, 0.8, 0.0, 4), (2.5, 1.0, 0.4, 4), (3.0, 1.5, -1.0, 4), (3.0, 3.0, 0.0, 4),
])
def test_gaussian_moments_match_parameters(sigma1, sigma2, theta, scale):
    """Centroid at ((s-1)/2, (s-1)/2) and covariance R diag(s1^2, s2^2) R^T within 2 % (truncation by the 21 x 21
    window and sampling stay below that for 0.8 <= sigma <= 3)."""
    kernel = gaussian_kernels(sigma1, sigma2, theta, 21, scale, dtype=torch.float64)
    centroid, cov = kernel_moments(kernel)
    centre = (scale - 1) / 2
    torch.testing.assert_close(centroid, torch.tensor([centre, centre], dtype=torch.float64), rtol=0, atol=0.02)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    expected = torch.from_numpy(rot @ np.diag([sigma1**2, sigma2**2]) @ rot.T)
    torch.testing.assert_close(cov, expected, rtol=0, atol=0.02 * sigma1**2)


def test_theta_zero_puts_sigma1_along_columns():
    kernel = gaussian_kernels(3.0, 1.0, 0.0, 21, 1)
    _, cov = kernel_moments(kernel)
    assert cov[0, 0] > 8 * cov[1, 1]  # var_x (columns) = 9 vs var_y (rows) = 1
    assert kernel[10, 13] > kernel[13, 10]  # three columns right beats three rows down


def test_theta_quarter_turn_points_sigma1_down_right():
    """theta = pi/4 with x = column, y = row (downwards): the long axis runs from top-left to bottom-right, so
    cov_xy = (s1^2 - s2^2) / 2 > 0 and the kernel is larger at (+2, +2) than at (+2, -2)."""
    kernel = gaussian_kernels(3.0, 1.0, math.pi / 4, 21, 1, dtype=torch.float64)
    _, cov = kernel_moments(kernel)
    hand_built = torch.tensor([[5.0, 4.0], [4.0, 5.0]], dtype=torch.float64)  # ((9+1)/2, (9-1)/2)
    torch.testing.assert_close(cov, hand_built, rtol=0, atol=0.05)
    assert kernel[12, 12] > 10 * kernel[12, 8]


def test_covariance_round_trip_recovers_parameters():
    gen = torch.Generator().manual_seed(3)
    sigma2 = 0.2 + 2 * torch.rand(1000, generator=gen, dtype=torch.float64)
    sigma1 = sigma2 + 0.05 + 2 * torch.rand(1000, generator=gen, dtype=torch.float64)
    theta = (torch.rand(1000, generator=gen, dtype=torch.float64) - 0.5) * math.pi * 0.999
    s1, s2, th = covariance_to_gaussian_params(gaussian_covariance(sigma1, sigma2, theta))
    torch.testing.assert_close(s1, sigma1)
    torch.testing.assert_close(s2, sigma2)
    torch.testing.assert_close(th, theta)


def test_covariance_to_params_canonicalises_swapped_axes():
    s1, s2, th = covariance_to_gaussian_params(gaussian_covariance(1.0, 2.0, 0.0))
    torch.testing.assert_close((s1, s2, th), (torch.tensor(2.0), torch.tensor(1.0), torch.tensor(math.pi / 2)))


def test_params_from_moments_of_a_moderate_gaussian():
    s1, s2, th = kernel_params_from_moments(gaussian_kernels(2.0, 1.0, 0.5, 21, 4, dtype=torch.float64))
    torch.testing.assert_close(torch.stack([s1, s2, th]), torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64),
                               rtol=0, atol=0.01)


# ---------------------------------------------------------------------------------------------------------------------
# Generalised Gaussian, plateau, motion, delta
# ---------------------------------------------------------------------------------------------------------------------
def test_generalized_with_beta_one_is_the_gaussian():
    args = (torch.tensor([0.7, 2.0]), torch.tensor([0.5, 1.3]), torch.tensor([0.2, -2.0]))
    torch.testing.assert_close(generalized_gaussian_kernels(*args, 1.0, 21, 4), gaussian_kernels(*args, 21, 4))


def test_generalized_with_beta_above_one_has_a_flatter_top():
    gaussian = gaussian_kernels(2.0, 2.0, 0.0, 21, 1)
    flat = generalized_gaussian_kernels(2.0, 2.0, 0.0, 2.0, 21, 1)
    # One tap from the centre q = 1/4 and q^2 < q, so relative to its peak the flat kernel is higher there.
    assert flat[10, 11] / flat[10, 10] > gaussian[10, 11] / gaussian[10, 10]


@pytest.mark.parametrize('beta', [0.5, 1.0, 2.0])
def test_plateau_has_the_gaussian_level_sets(beta):
    """Both are decreasing functions of the same quadratic form, so they order the taps identically."""
    gaussian = gaussian_kernels(2.5, 1.0, 0.7, 21, 3, dtype=torch.float64).flatten()
    plateau = plateau_kernels(2.5, 1.0, 0.7, beta, 21, 3, dtype=torch.float64).flatten()
    order = torch.argsort(gaussian, descending=True)
    assert (plateau[order].diff() <= 1e-15).all()
    assert (plateau > 0).all()  # heavy tails never vanish


@pytest.mark.parametrize('angle', [0.0, 0.5, math.pi / 2, 2.2, -0.9])
def test_motion_kernel_principal_axis_follows_angle(angle):
    sigma1, sigma2, theta = kernel_params_from_moments(motion_kernels(9.0, angle, 21, 1, dtype=torch.float64))
    difference = (theta - angle + math.pi / 2) % math.pi - math.pi / 2  # axis angles are defined modulo pi
    assert abs(difference) < math.radians(3)
    assert sigma1 > 3 * sigma2


@pytest.mark.parametrize('scale', [1, 2, 3, 4])
def test_motion_kernel_is_centred(scale):
    centroid, _ = kernel_moments(motion_kernels(torch.tensor([0.0, 6.0]), torch.tensor([0.3, 1.9]), 21, scale))
    torch.testing.assert_close(centroid, torch.full((2, 2), (scale - 1) / 2), rtol=0, atol=1e-4)


def test_delta_kernel_is_one_hot_at_offset():
    kernel = delta_kernel(7, offset=(1, -2))
    assert kernel.sum() == 1 and kernel[4, 1] == 1


# ---------------------------------------------------------------------------------------------------------------------
# Sampler
# ---------------------------------------------------------------------------------------------------------------------
def _sample(seed: int, **kwargs):
    return random_mixed_kernels(64, kernel_list=KERNEL_TYPES, kernel_prob=[1.0] * len(KERNEL_TYPES),
                                generator=torch.Generator().manual_seed(seed), **kwargs)


def test_sampler_is_reproducible_and_seed_dependent():
    kernels, params = _sample(0)
    again, params_again = _sample(0)
    other, _ = _sample(1)
    assert torch.equal(kernels, again)
    assert all(torch.equal(params[k], params_again[k]) for k in params)
    assert not torch.equal(kernels, other)


def test_sampler_kernels_match_their_parameters():
    kernels, params = _sample(5, kernel_size=15, scale=2)
    assert kernels.shape == (64, 15, 15)
    torch.testing.assert_close(kernels.sum((-2, -1)), torch.ones(64), atol=1e-5, rtol=0)
    names = [KERNEL_TYPES[i] for i in params['kernel_type']]
    for index, name in enumerate(names[:12]):
        p = {k: v[index] for k, v in params.items()}
        if name == 'motion':
            expected = motion_kernels(p['length'], p['angle'], 15, 2)
        elif name.startswith('generalized'):
            expected = generalized_gaussian_kernels(p['sigma1'], p['sigma2'], p['theta'], p['beta'], 15, 2)
        elif name.startswith('plateau'):
            expected = plateau_kernels(p['sigma1'], p['sigma2'], p['theta'], p['beta'], 15, 2)
        else:
            expected = gaussian_kernels(p['sigma1'], p['sigma2'], p['theta'], 15, 2)
        torch.testing.assert_close(kernels[index], expected, msg=name)


def test_sampler_iso_types_are_isotropic_and_all_types_occur():
    _, params = _sample(2)
    assert set(params['kernel_type'].tolist()) == set(range(len(KERNEL_TYPES)))
    iso = torch.tensor([KERNEL_TYPES[i] in ('iso', 'generalized_iso', 'plateau_iso') for i in params['kernel_type']])
    assert torch.equal(params['sigma1'][iso], params['sigma2'][iso])
    gaussian = torch.tensor([KERNEL_TYPES[i] in ('iso', 'aniso') for i in params['kernel_type']])
    assert (params['beta'][gaussian] == 1).all()


def test_sampler_respects_ranges():
    _, params = random_mixed_kernels(256, ['aniso'], [1.0], sigma_range=(0.5, 1.5), rotation_range=(0.0, 1.0),
                                     generator=torch.Generator().manual_seed(0))
    for key in ('sigma1', 'sigma2'):
        assert params[key].min() >= 0.5 and params[key].max() <= 1.5
    assert params['theta'].min() >= 0 and params['theta'].max() <= 1


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('call, match', [
    # kernel size and scale
    (lambda: gaussian_kernels(1.0, 1.0, 0.0, kernel_size=20), 'kernel_size must be an odd int >= 3, got 20'),
    (lambda: gaussian_kernels(1.0, 1.0, 0.0, kernel_size=1), 'got 1'),
    (lambda: gaussian_kernels(1.0, 1.0, 0.0, kernel_size=21.0), 'got 21.0'),
    (lambda: gaussian_kernels(1.0, 1.0, 0.0, scale=0), 'scale must be >= 1, got 0'),
    (lambda: gaussian_kernels(1.0, 1.0, 0.0, kernel_size=3, scale=3), 'too small for scale 3'),
    # parameters
    (lambda: gaussian_kernels(0.0, 1.0, 0.0), 'sigma1 must be > 0, got 0.0'),
    (lambda: gaussian_kernels(1.0, torch.tensor([1.0, -2.0]), 0.0), 'sigma2 must be > 0, got -2.0'),
    (lambda: isotropic_gaussian_kernels(float('nan')), 'sigma must be > 0, got nan'),
    (lambda: generalized_gaussian_kernels(1.0, 1.0, 0.0, 0.0), 'beta must be > 0, got 0.0'),
    (lambda: plateau_kernels(1.0, 1.0, 0.0, -1.0), 'beta must be > 0, got -1.0'),
    (lambda: motion_kernels(-1.0, 0.0), 'length must be >= 0, got -1.0'),
    (lambda: delta_kernel(5, offset=(3, 0)), r'offset must be two ints in \[-2, 2\], got \(3, 0\)'),
    (lambda: covariance_to_gaussian_params(torch.ones(3, 3)), r'cov must have shape \(\.\.\., 2, 2\)'),
    (lambda: kernel_moments(torch.ones(4, 6)), r'\(\.\.\., K, K\) with odd K, got \(4, 6\)'),
    # sampler
    (lambda: random_mixed_kernels(2, ['iso', 'box'], [0.5, 0.5]), r"unknown names \['box'\]; valid: \('iso'"),
    (lambda: random_mixed_kernels(2, ['iso', 'aniso'], [1.0]), r'kernel_prob \[1.0\] must be 2 non-negative'),
    (lambda: random_mixed_kernels(2, ['iso'], [-1.0]), 'non-negative numbers'),
    (lambda: random_mixed_kernels(2, ['iso'], [1.0], sigma_range=(0.0, 1.0)), r'sigma_range must be \(lo, hi\)'),
    (lambda: random_mixed_kernels(2, ['iso'], [1.0], sigma_range=(2.0, 1.0)), r'got \(2.0, 1.0\)'),
], ids=['even-size', 'size-one', 'float-size', 'scale-zero', 'centre-outside', 'sigma1-zero', 'sigma2-negative',
        'sigma-nan', 'betag-zero', 'betap-negative', 'length-negative', 'delta-offset', 'cov-shape', 'moments-shape',
        'unknown-kernel', 'prob-length', 'prob-negative', 'sigma-range-zero', 'sigma-range-reversed'])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# spread_kernels (the deviated kernels of the paper's Fig. 8) --------------------------------------------------------
@pytest.mark.parametrize('factor', [0.75, 1.25, 1.5])
def test_spread_kernels_scales_gaussian_sigmas(factor):
    from ssr.ops.kernels import spread_kernels

    sigma1 = torch.tensor([1.5, 2.0, 1.2], dtype=torch.float64)
    sigma2 = torch.tensor([1.5, 1.1, 1.0], dtype=torch.float64)
    theta = torch.tensor([0.0, 0.6, -1.0], dtype=torch.float64)
    out = spread_kernels(gaussian_kernels(sigma1, sigma2, theta, 31, 4), factor)
    exact = gaussian_kernels(sigma1 * factor, sigma2 * factor, theta, 31, 4)
    assert torch.allclose(out.sum((-2, -1)), torch.ones(3, dtype=torch.float64))
    assert (out >= 0).all()
    # taps within 3 % of the peak, the fitted sigmas within 5 % (bicubic resampling of sigma ~1 kernels), theta and
    # centre kept
    assert ((out - exact).abs().amax((-2, -1)) / exact.amax((-2, -1)) < 0.03).all()
    s1, s2, th = kernel_params_from_moments(out)
    assert torch.allclose(s1, sigma1 * factor, rtol=0.05) and torch.allclose(s2, sigma2 * factor, rtol=0.05)
    assert torch.allclose(kernel_moments(out)[0], kernel_moments(exact)[0], atol=0.02)
    assert abs(math.cos(2 * (th[1] - theta[1]))) > 0.99  # anisotropic kernel keeps its orientation


def test_spread_kernels_identity_and_shape_of_the_batch():
    from ssr.ops.kernels import spread_kernels

    k = gaussian_kernels(torch.rand(2, 3) + 1, torch.rand(2, 3) + 1, torch.rand(2, 3), 15, 4)
    assert spread_kernels(k, 1.0) is k
    assert spread_kernels(k, 1.3).shape == (2, 3, 15, 15)


@pytest.mark.parametrize('factor', [0.0, -0.5, float('nan')])
def test_spread_kernels_rejects_a_factor_that_is_not_positive(factor):
    from ssr.ops.kernels import spread_kernels

    with pytest.raises(ValueError, match='factor must be > 0'):
        spread_kernels(gaussian_kernels(1.0, 1.0, 0.0, 9, 4), factor)


def test_spread_kernels_rejects_even_kernels():
    from ssr.ops.kernels import spread_kernels

    with pytest.raises(ValueError, match='odd K'):
        spread_kernels(torch.ones(2, 8, 8) / 64, 1.2)


def test_kernels_have_no_denormal_weights():
    # denormal taps make every multiply that reads them tens of times slower on x86; they carry no weight
    kernels, _ = random_mixed_kernels(64, kernel_list=KERNEL_TYPES, kernel_prob=[1.0] * len(KERNEL_TYPES),
                                      sigma_range=(0.2, 4.0), generator=torch.Generator().manual_seed(3))
    info = torch.finfo(kernels.dtype)
    assert not ((kernels > 0) & (kernels < info.tiny / info.eps)).any()
    torch.testing.assert_close(kernels.sum((-2, -1)), torch.ones(64), rtol=0, atol=1e-6)
