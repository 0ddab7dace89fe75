"""Tests for ``ssr.ops.kernel_field``: building fields, smooth random parameters and the depth defocus model."""

import math

import pytest
import torch

from ssr.ops.kernel_field import (depth_to_kernel_params, kernel_field_from_params, sample_depth_kernel_params,
                                   sample_smooth_params, uniform_kernel_field)
from ssr.ops.kernels import covariance_to_gaussian_params, gaussian_covariance, gaussian_kernels


def _random_params(batch: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sigma1 = 0.3 + 2.7 * torch.rand(batch, h, w, generator=gen)
    sigma2 = 0.3 + 2.7 * torch.rand(batch, h, w, generator=gen)
    theta = math.pi * torch.rand(batch, h, w, generator=gen)
    return sigma1, sigma2, theta


def _neighbour_step(field: torch.Tensor) -> float:
    """Largest change of any tap between horizontally or vertically adjacent pixels of ``(B, C, h, w)``."""
    return max(field.diff(dim=-1).abs().max().item(), field.diff(dim=-2).abs().max().item())


# ---------------------------------------------------------------------------------------------------------------------
# Building fields
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('max_chunk_elements', [None, 1000, 9 * 9 * 40, 2**30],
                         ids=['default', 'sub-row', 'whole-images', 'single-block'])
@pytest.mark.parametrize('scale', [1, 4])
def test_field_matches_per_pixel_kernels(max_chunk_elements, scale):
    sigma1, sigma2, theta = _random_params(3, 5, 8)
    field = kernel_field_from_params(sigma1, sigma2, theta, 9, scale, max_chunk_elements=max_chunk_elements)
    assert field.shape == (3, 81, 5, 8)
    expected = gaussian_kernels(sigma1, sigma2, theta, 9, scale).flatten(-2).permute(0, 3, 1, 2)  # row-major taps
    torch.testing.assert_close(field, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(field.sum(1), torch.ones(3, 5, 8), rtol=0, atol=1e-5)


def test_field_written_into_out_equals_a_new_field():
    sigma1, sigma2, theta = _random_params(3, 5, 6, seed=4)
    batch_field = torch.full((5, 81, 5, 6), -1.0)
    returned = kernel_field_from_params(sigma1, sigma2, theta, 9, 2, out=batch_field[1:4])
    assert returned.data_ptr() == batch_field[1].data_ptr()
    assert torch.equal(batch_field[1:4], kernel_field_from_params(sigma1, sigma2, theta, 9, 2))
    assert (batch_field[0] == -1).all() and (batch_field[4] == -1).all()  # rows outside `out` untouched


@pytest.mark.parametrize('out', [torch.empty(3, 81, 5, 5), torch.empty(3, 81, 5, 6, dtype=torch.float64),
                                 torch.empty(3, 81, 6, 5).transpose(2, 3)], ids=['shape', 'dtype', 'strided'])
def test_field_rejects_an_out_that_does_not_fit(out):
    sigma1, sigma2, theta = _random_params(3, 5, 6, seed=4)
    with pytest.raises(ValueError, match='out must be a contiguous'):
        kernel_field_from_params(sigma1, sigma2, theta, 9, 2, out=out)


def test_field_keeps_narrow_kernels_finite():
    sigma = torch.full((1, 2, 2), 1e-3)
    field = kernel_field_from_params(sigma, sigma, torch.zeros(1, 2, 2), 21, 4)
    assert torch.isfinite(field).all()
    torch.testing.assert_close(field.sum(1), torch.ones(1, 2, 2))



def test_field_mixes_narrow_and_wide_kernels_in_one_block():
    # the stabiliser is the best of the four taps nearest the centre, and the exact maximum only for pixels whose
    # kernel is so narrow that this is below -80: both kinds in one block give each pixel its own kernel
    sigma1, sigma2, theta = _random_params(2, 3, 4, seed=5)
    sigma1[0, 0, :2], sigma2[0, 0, :2] = 0.02, 0.01  # m < -80 at x4
    field = kernel_field_from_params(sigma1, sigma2, theta, 9, 4)
    expected = gaussian_kernels(sigma1.double(), sigma2.double(), theta.double(), 9, 4).flatten(-2).permute(0, 3, 1, 2)
    torch.testing.assert_close(field.double(), expected, rtol=1e-5, atol=1e-7)
    assert torch.isfinite(field).all()
    for chunk in (81, 81 * 5):  # one pixel per block, blocks that split the rows
        torch.testing.assert_close(kernel_field_from_params(sigma1, sigma2, theta, 9, 4, max_chunk_elements=chunk),
                                   field, rtol=0, atol=1e-7)


def test_field_has_no_denormal_weights():
    sigma1, sigma2, theta = _random_params(2, 4, 4, seed=6)
    field = kernel_field_from_params(0.1 * sigma1, 0.1 * sigma2, theta, 21, 4)
    assert not ((field > 0) & (field < torch.finfo(field.dtype).tiny)).any()

def test_field_follows_parameter_dtype():
    sigma1, sigma2, theta = (p.double() for p in _random_params(1, 2, 3))
    assert kernel_field_from_params(sigma1, sigma2, theta, 5, 2).dtype == torch.float64


def test_uniform_field_is_a_view_of_the_kernels():
    kernels = gaussian_kernels(torch.tensor([1.0, 2.0]), 1.0, 0.3, 7, 2)
    field = uniform_kernel_field(kernels, 4, 6)
    assert field.shape == (2, 49, 4, 6)
    assert field.data_ptr() == kernels.data_ptr()
    torch.testing.assert_close(field[:, :, 3, 5], kernels.flatten(1))


# ---------------------------------------------------------------------------------------------------------------------
# Smooth random parameters
# ---------------------------------------------------------------------------------------------------------------------
def _smooth(seed: int, **kwargs) -> dict[str, torch.Tensor]:
    return sample_smooth_params(4, 32, 40, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_smooth_params_are_in_range():
    params = _smooth(0, sigma_range=(0.5, 2.5), anisotropy_range=(0.4, 0.9))
    assert all(p.shape == (4, 32, 40) for p in params.values())
    assert params['sigma1'].min() >= 0.5 and params['sigma1'].max() <= 2.5
    assert (params['sigma2'] <= params['sigma1'] * (1 + 1e-6)).all()
    assert (params['sigma2'] >= 0.4 * params['sigma1'] * (1 - 1e-6)).all()
    assert params['theta'].min() > -math.pi / 2 - 1e-6 and params['theta'].max() <= math.pi / 2 + 1e-6


def test_smooth_params_are_smooth():
    """With 4 control points over 32 rows, sigma1 moves at most about (hi - lo) * 1.5 / (31 / 3) per pixel."""
    params = _smooth(1, sigma_range=(0.2, 3.0))
    steps = params['sigma1'].diff(dim=-1).abs().max(), params['sigma1'].diff(dim=-2).abs().max()
    assert max(steps) < 2.8 * 1.5 * 3 / 31


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_smooth_covariance_field_is_continuous(seed):
    """The same seed draws the same control grid at any size, so a continuous field's neighbour steps shrink in
    proportion to 1 / size; a theta wrap-around (a 90-degree flip of an elongated kernel) would not shrink."""
    def covariance_step(size: int) -> float:
        params = sample_smooth_params(2, size, size, generator=torch.Generator().manual_seed(seed))
        cov = gaussian_covariance(params['sigma1'], params['sigma2'], params['theta'])
        return _neighbour_step(cov.flatten(-2).permute(0, 3, 1, 2))

    assert covariance_step(32) > 3 * covariance_step(128)


def test_smooth_params_are_reproducible_and_seed_dependent():
    first, again, other = _smooth(7), _smooth(7), _smooth(8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first['sigma1'], other['sigma1'])


def test_single_control_point_gives_uniform_field():
    params = sample_smooth_params(2, 6, 5, generator=torch.Generator().manual_seed(0), grid=1)
    for value in params.values():
        torch.testing.assert_close(value, value[:, :1, :1].expand_as(value))


# ---------------------------------------------------------------------------------------------------------------------
# Depth-driven defocus and motion
# ---------------------------------------------------------------------------------------------------------------------
def _ramp_depth(width: int = 11) -> torch.Tensor:
    return torch.linspace(0, 1, width).view(1, 1, 1, width).expand(2, 1, 3, width).contiguous()


def test_defocus_is_sigma_min_at_focus_and_sigma_max_farthest_away():
    depth = _ramp_depth()  # column j has depth j / 10
    params = depth_to_kernel_params(depth, focus=torch.tensor([0.3, 1.0]), sigma_min=0.5, sigma_max=2.5)
    torch.testing.assert_close(params['sigma1'][0, :, 3], torch.full((3,), 0.5))
    torch.testing.assert_close(params['sigma1'][0, :, 10], torch.full((3,), 2.5))  # |1 - 0.3| = max(f, 1 - f)
    torch.testing.assert_close(params['sigma1'][1, :, 0], torch.full((3,), 2.5))
    torch.testing.assert_close(params['sigma2'], params['sigma1'])  # anisotropy 1, no motion


def test_defocus_grows_monotonically_with_distance_from_focus():
    depth = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    params = depth_to_kernel_params(depth, focus=0.4, sigma_min=0.3, sigma_max=3.0, anisotropy=0.5, theta=0.2)
    order = torch.argsort((depth - 0.4).abs().flatten())
    assert (params['sigma1'].flatten()[order].diff() >= -1e-6).all()
    torch.testing.assert_close(params['sigma2'], 0.5 * params['sigma1'])
    torch.testing.assert_close(params['theta'], torch.full_like(params['theta'], 0.2))


def test_motion_adds_variance_along_its_angle_only():
    depth = _ramp_depth()
    kwargs = {'focus': 0.5, 'sigma_min': 0.5, 'sigma_max': 2.0, 'anisotropy': 0.6, 'theta': 1.0}
    angle = 0.4
    still = depth_to_kernel_params(depth, **kwargs)
    moving = depth_to_kernel_params(depth, **kwargs, motion_sigma=torch.tensor([1.5, 0.0]), motion_angle=angle)
    cov_still = gaussian_covariance(still['sigma1'], still['sigma2'], still['theta'])
    cov_moving = gaussian_covariance(moving['sigma1'], moving['sigma2'], moving['theta'])
    along = torch.tensor([math.cos(angle), math.sin(angle)])
    across = torch.tensor([-math.sin(angle), math.cos(angle)])
    var_along = torch.einsum('i,...ij,j->...', along, cov_moving - cov_still, along)
    var_across = torch.einsum('i,...ij,j->...', across, cov_moving - cov_still, across)
    torch.testing.assert_close(var_along[0], torch.full((3, 11), 1.5**2))
    torch.testing.assert_close(var_across, torch.zeros(2, 3, 11), rtol=0, atol=1e-5)
    torch.testing.assert_close(var_along[1], torch.zeros(3, 11), rtol=0, atol=1e-5)  # image 2 has no motion


def test_per_pixel_theta_is_used():
    depth = _ramp_depth()
    theta = torch.linspace(-1.0, 1.0, 2 * 3 * 11).view(2, 3, 11)
    params = depth_to_kernel_params(depth, focus=0.0, sigma_min=1.0, sigma_max=2.0, anisotropy=0.5, theta=theta)
    torch.testing.assert_close(params['theta'], theta)


def test_eigen_round_trip_on_random_covariances():
    gen = torch.Generator().manual_seed(11)
    factor = torch.randn(500, 2, 2, generator=gen, dtype=torch.float64)
    cov = factor @ factor.transpose(-1, -2) + 0.01 * torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(gaussian_covariance(*covariance_to_gaussian_params(cov)), cov)


def test_sampled_depth_params_are_reproducible_and_bounded():
    depth = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    kwargs = {'sigma_range': (0.4, 2.0), 'motion_prob': 0.5, 'motion_sigma_range': (0.5, 1.0)}
    params, settings = sample_depth_kernel_params(depth, generator=torch.Generator().manual_seed(1), **kwargs)
    again, _ = sample_depth_kernel_params(depth, generator=torch.Generator().manual_seed(1), **kwargs)
    other, _ = sample_depth_kernel_params(depth, generator=torch.Generator().manual_seed(2), **kwargs)
    assert all(torch.equal(params[k], again[k]) for k in params)
    assert not torch.equal(params['sigma1'], other['sigma1'])
    assert all(v.shape == (6,) for v in settings.values())
    assert (settings['sigma_min'] <= settings['sigma_max']).all()
    upper = torch.sqrt(settings['sigma_max']**2 + settings['motion_sigma']**2).view(6, 1, 1)
    assert (params['sigma1'] <= upper + 1e-5).all() and (params['sigma2'] >= 0.4 * 0.5 - 1e-5).all()


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------------
_DEPTH = torch.rand(2, 1, 4, 4)
_MAP = torch.ones(2, 4, 4)


@pytest.mark.parametrize('call, match', [
    # field building
    (lambda: kernel_field_from_params(_MAP, _MAP, torch.ones(2, 4)), r'theta must be a \(B, h, w\) tensor'),
    (lambda: kernel_field_from_params(_MAP, _MAP, torch.ones(2, 4, 5)), 'shapes differ'),
    (lambda: kernel_field_from_params(_MAP * 0, _MAP, _MAP), 'sigma1 must be > 0, got 0.0'),
    (lambda: kernel_field_from_params(_MAP, _MAP, _MAP, kernel_size=8), 'odd int >= 3, got 8'),
    (lambda: uniform_kernel_field(torch.ones(3, 5), 2, 2), r'kernels must have shape \(B, K, K\)'),
    # smooth sampler
    (lambda: sample_smooth_params(1, 4, 4, anisotropy_range=(0.5, 1.5)), r'anisotropy_range must lie in \(0, 1\]'),
    (lambda: sample_smooth_params(1, 4, 4, sigma_range=(-1.0, 1.0)), 'sigma_range must be'),
    (lambda: sample_smooth_params(1, 4, 4, grid=0), 'grid=0'),
    # defocus model
    (lambda: depth_to_kernel_params(_DEPTH[:, 0], 0.5, 1.0, 2.0), r'depth must be a \(B, 1, H, W\) tensor'),
    (lambda: depth_to_kernel_params(_DEPTH.expand(2, 2, 4, 4), 0.5, 1.0, 2.0), r'got \(2, 2, 4, 4\)'),
    (lambda: depth_to_kernel_params(_DEPTH, 0.5, 1.0, 2.0, anisotropy=0.0), r'anisotropy must lie in \(0, 1\]'),
    (lambda: depth_to_kernel_params(_DEPTH, 0.5, 1.0, 2.0, anisotropy=1.2), r'got \[1.2'),
    (lambda: depth_to_kernel_params(_DEPTH, 1.5, 1.0, 2.0), r'focus must lie in \[0, 1\], got \[1.5\]'),
    (lambda: depth_to_kernel_params(_DEPTH, 0.5, 0.0, 2.0), 'sigma_min must be > 0, got 0.0'),
    (lambda: depth_to_kernel_params(_DEPTH, 0.5, 2.0, 1.0), 'sigma_max must be >= sigma_min'),
    (lambda: depth_to_kernel_params(_DEPTH, 0.5, 1.0, 2.0, motion_sigma=-1.0), 'motion_sigma must be >= 0'),
    (lambda: depth_to_kernel_params(_DEPTH, torch.ones(3) * 0.5, 1.0, 2.0), r'focus must be .* got shape \(3,\)'),
    (lambda: sample_depth_kernel_params(_DEPTH, motion_prob=2.0), r'motion_prob must lie in \[0, 1\], got 2.0'),
    (lambda: sample_depth_kernel_params(_DEPTH, anisotropy_range=(0.0, 1.0)), 'anisotropy_range must be'),
    (lambda: sample_depth_kernel_params(_DEPTH[0]), r'depth must be a \(B, 1, H, W\) tensor, got \(1, 4, 4\)'),
], ids=['field-theta-shape', 'field-shape-mismatch', 'field-sigma-zero', 'field-even-size', 'uniform-shape',
        'smooth-anisotropy', 'smooth-sigma-range', 'smooth-grid', 'depth-3d', 'depth-2-channels',
        'anisotropy-zero', 'anisotropy-above-one', 'focus-out-of-range', 'sigma-min-zero', 'sigma-max-below-min',
        'motion-negative', 'focus-wrong-batch', 'motion-prob', 'sample-anisotropy', 'sample-depth-shape'])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_spread_kernel_field_matches_the_field_of_scaled_sigmas():
    from ssr.ops.kernel_field import spread_kernel_field

    torch.manual_seed(0)
    sigma1 = 1.2 + torch.rand(2, 3, 4, dtype=torch.float64)
    sigma2 = 1.0 + 0.2 * torch.rand(2, 3, 4, dtype=torch.float64)
    theta = torch.rand(2, 3, 4, dtype=torch.float64)
    field = kernel_field_from_params(sigma1, sigma2, theta, 25, 4)
    out = spread_kernel_field(field, 1.25, chunk=5)  # chunks smaller than the 24 kernels
    exact = kernel_field_from_params(sigma1 * 1.25, sigma2 * 1.25, theta, 25, 4)
    assert out.shape == field.shape
    assert torch.allclose(out.sum(1), torch.ones(2, 3, 4, dtype=torch.float64))
    assert ((out - exact).abs().amax(1) / exact.amax(1) < 0.03).all()
    assert spread_kernel_field(field, 1) is field


@pytest.mark.parametrize('shape', [(1, 80, 2, 2), (1, 81, 2), (1, 64, 2, 2)])
def test_spread_kernel_field_rejects_a_bad_shape(shape):
    from ssr.ops.kernel_field import spread_kernel_field

    with pytest.raises(ValueError, match='odd K'):
        spread_kernel_field(torch.ones(shape), 1.2)


def test_spread_kernel_field_rejects_a_bad_factor():
    from ssr.ops.kernel_field import spread_kernel_field

    with pytest.raises(ValueError, match='factor must be > 0'):
        spread_kernel_field(torch.ones(1, 9, 2, 2) / 9, 0)
