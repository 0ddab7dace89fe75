"""Colour correction: AdaIN statistics, wavelet identity, and removal of a constant colour shift."""
from __future__ import annotations

import pytest
import torch

from ssr.ops.color_correction import adain_color_fix, wavelet_color_fix, wavelet_decompose
from tests.test_models.test_ssr_model import batch, build, sample, tiny_opt


def images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 24, 20, generator=g), torch.rand(2, 3, 24, 20, generator=g) * 0.5 + 0.2


def test_adain_matches_per_channel_mean_and_std():
    sr, ref = images()
    out = adain_color_fix(sr, ref)
    torch.testing.assert_close(out.mean((-2, -1)), ref.mean((-2, -1)), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.std((-2, -1)), ref.std((-2, -1)), rtol=0, atol=1e-4)


def test_wavelet_of_identical_images_returns_them():
    _, ref = images()
    torch.testing.assert_close(wavelet_color_fix(ref, ref), ref, rtol=0, atol=1e-6)


def test_wavelet_bands_sum_to_the_image_and_blur_keeps_constants():
    high, low = wavelet_decompose(torch.full((1, 3, 16, 16), 0.3), levels=5)
    torch.testing.assert_close(low, torch.full_like(low, 0.3), rtol=0, atol=1e-6)
    assert high.abs().max() < 1e-6


@pytest.mark.parametrize('fix', [adain_color_fix, wavelet_color_fix], ids=['adain', 'wavelet'])
def test_constant_colour_shift_is_removed(fix):
    _, ref = images(1)
    shifted = ref + torch.tensor([0.1, -0.05, 0.2]).view(1, 3, 1, 1)
    torch.testing.assert_close(fix(shifted, ref), ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize('fix, args, match', [
    (adain_color_fix, (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9)), 'one shape'),
    (wavelet_color_fix, (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), 0), 'levels'),
], ids=['adain_shape_mismatch', 'wavelet_zero_levels'])
def test_rejects(fix, args, match):
    with pytest.raises(ValueError, match=match):
        fix(*args)


@pytest.mark.parametrize('kind', ['adain', 'wavelet'])
def test_model_color_fix_moves_the_output_towards_the_lr_colours(kind):
    data = batch(size=8)
    plain = sample(build(tiny_opt(is_train=False)), data, 0)
    fixed = sample(build(tiny_opt(is_train=False, sampler={'color_fix': kind})), data, 0)
    ref = torch.nn.functional.interpolate(data['lq'], scale_factor=4, mode='bicubic').clamp(0, 1)
    assert fixed.shape == plain.shape and 0 <= fixed.min() and fixed.max() <= 1
    err = lambda x: (x.mean((-2, -1)) - ref.mean((-2, -1))).abs().mean()  # noqa: E731
    assert err(fixed) < err(plain)


def test_model_rejects_unknown_color_fix():
    with pytest.raises(ValueError, match='histogram'):
        build(tiny_opt(is_train=False, sampler={'color_fix': 'histogram'}))
