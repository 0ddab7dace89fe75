"""Gaussian / Poisson noise: identities, statistics, gray noise, determinism, the sampler and its option checks."""
from __future__ import annotations

import pytest
import torch

from ssr.ops.noise import (NOISE_OPT_DEFAULTS, NoiseParams, add_gaussian_noise, add_poisson_noise, apply_noise,
                            poisson_noise_level, sample_noise_params)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def image(batch: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=gen(seed))


# ---------------------------------------------------------------------------------------------------------------------
# Gaussian
# ---------------------------------------------------------------------------------------------------------------------
def test_zero_sigma_is_identity():
    img = image()
    assert torch.equal(add_gaussian_noise(img, torch.zeros(2), generator=gen(1)), img)


def test_gaussian_std_matches_sigma_on_a_constant_image():
    img = torch.full((4, 3, 256, 256), 0.5)
    sigma = torch.tensor([0.0, 0.01, 0.05, 0.1])
    noise = add_gaussian_noise(img, sigma, generator=gen(2), clip=False) - img
    std = noise.std(dim=(1, 2, 3))
    assert std[0].item() == 0.0
    # 196,608 samples per image: the std's relative standard error is 1 / sqrt(2n) = 0.16 %.
    assert torch.allclose(std[1:], sigma[1:], rtol=0.01)
    assert noise[1:].mean(dim=(1, 2, 3)).abs().max().item() < 3 * 0.1 / 196608**0.5


def test_gray_noise_is_identical_across_channels():
    img = image()
    noise = add_gaussian_noise(img, 0.05, torch.tensor([True, False]), gen(3), clip=False) - img
    assert torch.allclose(noise[0, 0], noise[0, 1], atol=1e-6) and torch.allclose(noise[0, 0], noise[0, 2], atol=1e-6)
    assert not torch.allclose(noise[1, 0], noise[1, 1], atol=1e-3)


def test_seeded_generator_is_deterministic():
    img = image()
    a = add_gaussian_noise(img, 0.1, generator=gen(4))
    assert torch.equal(a, add_gaussian_noise(img, 0.1, generator=gen(4)))
    assert not torch.equal(a, add_gaussian_noise(img, 0.1, generator=gen(5)))


def test_injected_noise_is_used_as_given():
    img, z = image(), torch.randn(2, 3, 32, 32, generator=gen(6))
    out = add_gaussian_noise(img, torch.tensor([0.02, 0.03]), noise=z, clip=False)
    assert torch.allclose(out, img + z * torch.tensor([0.02, 0.03]).view(2, 1, 1, 1))


def test_clip_and_rounds_keep_8bit_range():
    out = add_gaussian_noise(image(), 0.3, generator=gen(7), rounds=True)
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------------
# Poisson
# ---------------------------------------------------------------------------------------------------------------------
def test_poisson_variance_and_reported_level():
    img = torch.full((2, 3, 256, 256), 128 / 255)
    scale = torch.tensor([1.0, 2.0])
    noise = add_poisson_noise(img, scale, generator=gen(8), clip=False) - img
    level = poisson_noise_level(img, scale)
    # Var = scale^2 * q / levels with q = 128 / 255 and levels = 256.
    expected = scale * (128 / 255 / 256)**0.5
    assert torch.allclose(level, expected, rtol=1e-5)
    assert torch.allclose(noise.std(dim=(1, 2, 3)), expected, rtol=0.02)


def test_poisson_gray_noise_is_identical_across_channels():
    img = image(seed=9)
    noise = add_poisson_noise(img, 1.0, torch.tensor([True, False]), gen(10), clip=False) - img
    assert torch.allclose(noise[0, 0], noise[0, 1], atol=1e-6) and torch.allclose(noise[0, 0], noise[0, 2], atol=1e-6)
    assert not torch.allclose(noise[1, 0], noise[1, 1], atol=1e-3)


def test_poisson_zero_scale_is_identity():
    img = image(seed=11)
    assert torch.equal(add_poisson_noise(img, 0.0, generator=gen(12)), img)


# ---------------------------------------------------------------------------------------------------------------------
# Sampler and apply
# ---------------------------------------------------------------------------------------------------------------------
def test_sampler_is_deterministic_and_respects_ranges():
    opt = {'gaussian_prob': 0.5, 'poisson_prob': 0.5, 'gaussian_sigma_range': [2, 20], 'poisson_scale_range': [0.1, 1]}
    a = sample_noise_params(256, opt, gen(13))
    b = sample_noise_params(256, opt, gen(13))
    assert all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(b).values()))
    gauss, poisson = a.gaussian_sigma > 0, a.poisson_scale > 0
    assert not bool((gauss & poisson).any()) and bool((gauss | poisson).all())
    assert 0.3 < gauss.float().mean().item() < 0.7
    assert a.gaussian_sigma[gauss].min().item() >= 2 / 255 and a.gaussian_sigma.max().item() <= 20 / 255
    assert a.poisson_scale[poisson].min().item() >= 0.1 and a.poisson_scale.max().item() <= 1.0
    assert a.gray.dtype == torch.bool and 0.2 < a.gray.float().mean().item() < 0.6  # default gray_prob 0.4


def test_no_noise_options_give_identity_and_zero_level():
    params = sample_noise_params(3, {'gaussian_prob': 0.0, 'poisson_prob': 0.0}, gen(14))
    img = image(batch=3)
    out, level = apply_noise(img, params, gen(15))
    assert torch.equal(out, img) and torch.equal(level, torch.zeros(3))


def test_apply_noise_reports_sigma_for_gaussian_and_expected_std_for_poisson():
    img = torch.full((2, 3, 64, 64), 0.25)
    params = NoiseParams(gaussian_sigma=torch.tensor([0.04, 0.0]), poisson_scale=torch.tensor([0.0, 1.5]),
                         gray=torch.tensor([False, True]))
    out, level = apply_noise(img, params, gen(16))
    assert out.shape == img.shape and out.min().item() >= 0 and out.max().item() <= 1
    assert level[0].item() == pytest.approx(0.04)
    assert level[1].item() == pytest.approx(poisson_noise_level(img[1:], 1.5, True).item())


def test_defaults_are_valid():
    params = sample_noise_params(4, None, gen(17))
    assert params.gaussian_sigma.shape == params.poisson_scale.shape == params.gray.shape == (4,)
    assert set(NOISE_OPT_DEFAULTS) == {'gaussian_prob', 'gaussian_sigma_range', 'poisson_prob', 'poisson_scale_range',
                                       'gray_prob'}


BAD_OPTIONS = [
    ({'gausian_prob': 0.5}, r"unknown noise option\(s\) \['gausian_prob'\]", 'misspelt-key'),
    ({'gaussian_prob': 1.5}, r"'gaussian_prob' must be a probability in \[0, 1\], got 1.5", 'prob-above-one'),
    ({'gray_prob': -0.1}, r"'gray_prob' must be a probability", 'negative-prob'),
    ({'gaussian_prob': 0.7, 'poisson_prob': 0.6}, r"'gaussian_prob' \+ 'poisson_prob' = 1.3 > 1", 'probs-sum'),
    ({'gaussian_sigma_range': [30, 1]}, r"'gaussian_sigma_range' must be \[low, high\] .* got \[30, 1\]", 'reversed'),
    ({'gaussian_sigma_range': [1, 300]}, r"'gaussian_sigma_range' .* high <= 255", 'sigma-above-255'),
    ({'poisson_scale_range': [-1, 2]}, r"'poisson_scale_range' must be \[low, high\]", 'negative-scale'),
    ({'poisson_scale_range': 0.5}, r"'poisson_scale_range' must be \[low, high\] .* got 0.5", 'scalar-range'),
]


@pytest.mark.parametrize(('opt', 'match'), [case[:2] for case in BAD_OPTIONS], ids=[case[2] for case in BAD_OPTIONS])
def test_bad_noise_options_raise(opt, match):
    with pytest.raises(ValueError, match=match):
        sample_noise_params(2, opt, gen(18))


BAD_ARGS = [
    (lambda: add_gaussian_noise(image(), torch.tensor([0.1, -0.1])), r'sigma must be >= 0', 'negative-sigma'),
    (lambda: add_gaussian_noise(image(), torch.zeros(3)), r'sigma must be a float or shape \(2,\)', 'sigma-shape'),
    (lambda: add_gaussian_noise(image(), 0.1, torch.tensor([1, 0])), r'gray must be bool', 'gray-int'),
    (lambda: add_gaussian_noise(image(), 0.1, noise=torch.zeros(2, 1, 32, 32)), r'noise shape', 'noise-shape'),
    (lambda: add_poisson_noise(image(), 1.0, levels=0), r'levels must be > 0', 'zero-levels'),
    (lambda: add_poisson_noise(torch.rand(1, 2, 8, 8), 1.0, True), r'1 or 3 channels', 'gray-2-channels'),
    (lambda: add_gaussian_noise(torch.rand(3, 8, 8), 0.1), r'img must be \(B, C, H, W\)', 'img-3d'),
    (lambda: sample_noise_params(0), r'batch must be a positive int, got 0', 'zero-batch'),
]


@pytest.mark.parametrize(('call', 'match'), [case[:2] for case in BAD_ARGS], ids=[case[2] for case in BAD_ARGS])
def test_bad_noise_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
