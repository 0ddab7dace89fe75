"""consistent_projection: CG on (G^T G + lam I) x = G^T y + lam x0 cuts the LR residual, leaves a consistent image
alone, stops at the discrepancy principle under noise; the MAD noise estimate; argument errors."""
from __future__ import annotations

import math

import pytest
import torch

from ssr.ops.consistency import consistent_projection, estimate_noise_sigma, lr_residual
from ssr.ops.kernel_field import kernel_field_from_params, sample_smooth_params
from ssr.ops.sv_blur import sv_blur_downsample

S, K, H = 4, 11, 16  # scale, kernel size, LR side


def _random_field(seed: int, dtype=torch.float64) -> torch.Tensor:
    """(2, K*K, H, H): an independent random positive kernel per LR pixel, each summing to 1."""
    field = torch.rand(2, K * K, H, H, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return field / field.sum(1, keepdim=True)


def _smooth_field(seed: int) -> torch.Tensor:
    """(2, K*K, H, H): smoothly varying anisotropic Gaussians (the SV test sets' kind of field)."""
    p = sample_smooth_params(2, H, H, (0.2, 3.0), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return kernel_field_from_params(p['sigma1'], p['sigma2'], p['theta'], K, S)


def _smooth_image(seed: int, size: int = S * H) -> torch.Tensor:
    """(2, 3, size, size) in [0, 1]: bilinear upsampling of an 8x8 random image (natural-image-like spectrum)."""
    coarse = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode='bilinear', align_corners=False)


@pytest.mark.parametrize('make_field', [_random_field, _smooth_field])
def test_residual_falls_tenfold_in_ten_iterations(make_field):
    kernel = make_field(0)
    lr = sv_blur_downsample(_smooth_image(1), kernel, S)
    x0 = torch.rand(2, 3, S * H, S * H, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x, info = consistent_projection(x0, lr, kernel, S, weight=1e-4, iters=10)
    assert torch.all(info.iterations == 10)
    assert torch.all(info.residual * 10 <= info.initial_residual), (info.initial_residual / info.residual).tolist()
    torch.testing.assert_close(info.residual, lr_residual(x, lr, kernel, S))  # the tracked residual is the true one
    torch.testing.assert_close(info.initial_residual, lr_residual(x0, lr, kernel, S))


def test_more_weight_keeps_closer_to_the_estimate():
    kernel = _smooth_field(3)
    lr = sv_blur_downsample(_smooth_image(4), kernel, S)
    x0 = _smooth_image(5)
    moves = [(consistent_projection(x0, lr, kernel, S, weight=w, iters=10)[0] - x0).norm() for w in (1e-4, 1e-2, 1.0)]
    assert moves[0] > moves[1] > moves[2] > 0


@pytest.mark.parametrize('sigma', [None, 0.01, 'auto'])
def test_consistent_image_is_left_unchanged(sigma):
    kernel = _random_field(6)
    x0 = _smooth_image(7)
    lr = sv_blur_downsample(x0, kernel, S)
    x, info = consistent_projection(x0, lr, kernel, S, weight=1e-3, iters=10, sigma=sigma)
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-6)
    assert torch.all(info.iterations == 0)


def test_float32_consistent_image_is_left_unchanged():
    kernel = _random_field(8, torch.float32)
    x0 = _smooth_image(9).float()
    lr = sv_blur_downsample(x0, kernel, S)
    x, _ = consistent_projection(x0, lr, kernel, S, weight=1e-3, iters=10)
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-6)


@pytest.mark.parametrize('make_field', [_random_field, _smooth_field])
def test_noisy_lr_stops_at_the_noise_level(make_field):
    """With y = G x_true + N(0, sigma^2), CG stops at the first iterate with ||G x - y|| <= tau sigma sqrt(n).

    Bounds: <= tau (the rule) and >= 0.5 tau, because near the noise level one CG iteration lowers the residual by
    well under 2x on these fields (measured 0.76-0.99 tau, 4-5 iterations); far below the iteration cap; and far
    above the residual that unstopped CG reaches by fitting the noise (measured 0.02-0.04 of the noise level).
    """
    sigma, tau = 0.02, 1.0
    g = torch.Generator().manual_seed(10)
    kernel = make_field(11)
    clean = sv_blur_downsample(_smooth_image(12), kernel, S)
    lr = clean + sigma * torch.randn(clean.shape, generator=g, dtype=clean.dtype)
    x0 = torch.rand(2, 3, S * H, S * H, generator=g, dtype=torch.float64)
    x, info = consistent_projection(x0, lr, kernel, S, weight=1e-4, iters=100, sigma=sigma, tau=tau)
    level = sigma * math.sqrt(lr[0].numel())
    ratio = info.residual / level
    assert torch.all((0.5 * tau <= ratio) & (ratio <= tau)), ratio.tolist()
    assert torch.all((info.iterations >= 1) & (info.iterations <= 20)), info.iterations.tolist()
    _, unstopped = consistent_projection(x0, lr, kernel, S, weight=1e-4, iters=100)
    assert torch.all(unstopped.residual < 0.3 * level)


def test_noise_estimate_recovers_white_noise_on_a_smooth_image():
    img = _smooth_image(13, size=128)
    for sigma in (0.01, 0.05):
        noisy = img + sigma * torch.randn(img.shape, generator=torch.Generator().manual_seed(14), dtype=img.dtype)
        est = estimate_noise_sigma(noisy)
        assert est.shape == (2, ) and torch.all((est - sigma).abs() < 0.1 * sigma), est.tolist()
    assert torch.all(estimate_noise_sigma(img) < 2e-3)  # the smooth image itself barely registers


def test_auto_sigma_matches_the_estimate():
    kernel = _smooth_field(15)
    lr = sv_blur_downsample(_smooth_image(16), kernel, S)
    lr = lr + 0.03 * torch.randn(lr.shape, generator=torch.Generator().manual_seed(17), dtype=lr.dtype)
    x0 = _smooth_image(18)
    _, info = consistent_projection(x0, lr, kernel, S, iters=30, sigma='auto')
    torch.testing.assert_close(info.sigma, estimate_noise_sigma(lr))
    assert torch.all(info.residual <= info.threshold)


def test_bad_arguments_raise():
    kernel, x0 = _random_field(0), _smooth_image(0)
    lr = sv_blur_downsample(x0, kernel, S)
    for kwargs, match in (({'weight': -1.0}, 'weight must be >= 0'), ({'iters': 1.5}, 'iters must be an int'),
                          ({'tau': 0.0}, 'tau must be > 0'), ({'sigma': 'mad'}, "sigma must be a number"),
                          ({'sigma': -0.1}, 'sigma must be >= 0')):
        with pytest.raises(ValueError, match=match):
            consistent_projection(x0, lr, kernel, S, **kwargs)
    with pytest.raises(ValueError, match='same B and C'):
        consistent_projection(x0[:1], lr, kernel, S)
    with pytest.raises(ValueError, match='hr_size|does not match'):
        consistent_projection(x0[..., :-4, :], lr, kernel, S)
    with pytest.raises(ValueError, match='h, w >= 2'):
        estimate_noise_sigma(torch.rand(1, 3, 1, 5))
