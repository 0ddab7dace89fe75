"""Latent tiling: windows, tile origins, exactness on local operators, and tiled sampling in SSRModel."""
from __future__ import annotations

import math

import pytest
import torch

from ssr.archs.amf_unet_arch import AMFUNetOutput
from ssr.archs.first_stage import PixelUnshuffleStage
from ssr.pipelines.tiling import gaussian_window, tile_origins, tiled_decode, tiled_denoise
from tests.test_models.test_ssr_model import batch, build, sample, tiny_opt


def test_gaussian_window_is_symmetric_with_unit_peak():
    win = gaussian_window(9, 6)
    assert win.shape == (9, 6) and win.max() <= 1 and win.min() > 0
    assert torch.equal(win, win.flip(0)) and torch.equal(win, win.flip(1))
    assert win[4].max() == pytest.approx(math.exp(-0.5 * (0.5 / 1.5)**2))  # width 6: centre at 2.5, sigma 1.5


@pytest.mark.parametrize('length, tile, overlap, multiple, expected', [
    (8, 16, 4, 2, [0]),
    (16, 16, 4, 2, [0]),
    (16, 8, 4, 2, [0, 4, 8]),
    (20, 8, 2, 2, [0, 6, 12]),
    (22, 8, 2, 2, [0, 6, 12, 14]),
], ids=['shorter', 'equal', 'overlap_half', 'exact_fit', 'last_aligned_to_end'])
def test_tile_origins(length, tile, overlap, multiple, expected):
    assert tile_origins(length, tile, overlap, multiple) == expected


@pytest.mark.parametrize('length, tile, overlap, multiple, match', [
    (16, 7, 2, 2, 'multiples of 2'),
    (16, 8, 8, 2, 'overlap 8'),
    (16, 8, -2, 2, 'overlap -2'),
], ids=['odd_tile', 'overlap_equals_tile', 'negative_overlap'])
def test_tile_origins_rejects(length, tile, overlap, multiple, match):
    with pytest.raises(ValueError, match=match):
        tile_origins(length, tile, overlap, multiple)


def test_tiled_denoise_is_exact_for_a_pointwise_network():
    """A per-pixel 'UNet' sees the same values in every tile, so blending returns it up to rounding."""

    def unet(z_t, t, z_lr, features):
        assert features[0][1].shape[-1] * 2 == z_t.shape[-1]  # level 1 cropped at stride 2
        return AMFUNetOutput(sample=torch.tanh(z_t) * z_lr, features=features)

    g = torch.Generator().manual_seed(0)
    z, z_lr = torch.randn(1, 4, 12, 20, generator=g), torch.randn(1, 4, 12, 20, generator=g)
    features = [[torch.zeros(1, 2, 12, 20), torch.zeros(1, 2, 6, 10)]]
    out = tiled_denoise(unet, z, torch.tensor(5), z_lr, features, tile=8, overlap=4, multiple=2)
    torch.testing.assert_close(out, torch.tanh(z) * z_lr, rtol=0, atol=1e-6)


def test_tiled_decode_of_pixel_unshuffle_is_exact():
    stage = PixelUnshuffleStage(4)
    z = torch.randn(2, 48, 10, 13, generator=torch.Generator().manual_seed(1))
    out = tiled_decode(stage.decode, z, tile=4, overlap=2, downscale=4)
    torch.testing.assert_close(out, stage.decode(z), rtol=0, atol=1e-6)


def test_tiled_sampling_smaller_than_one_tile_equals_untiled():
    data = batch(size=8)  # latent 8 x 8 < tile 16
    plain = build(tiny_opt(is_train=False))
    tiled = build(tiny_opt(is_train=False, sampler={'tile': {'size': 16, 'overlap': 4}}))
    assert torch.equal(sample(tiled, data, 0), sample(plain, data, 0))


def test_tiled_sampling_of_a_larger_image_is_close_to_untiled():
    """Latent 16 x 16 in 2 x 2 tiles of 12 (overlap 4 requested, 8 actual), 3 DDIM steps from start_step 2 (noised
    bicubic latent): measured PSNR 26.9 dB between tiled and untiled SR, while the untiled SR is at 7.7 dB from the
    ground truth (untrained tiny UNet). The gap comes from the UNet's global parts (GroupNorm statistics, attention
    at level 1), which see a tile instead of the whole latent; from pure noise (start_step: ~) the random UNet's
    differences are amplified by 1 / sqrt(alpha_bar_T) and the measured PSNR falls to 17.4 dB."""
    data = batch(size=16)
    start = {'start_step': 2, 'start_from': 'bicubic'}
    plain = sample(build(tiny_opt(is_train=False, sampler=start)), data, 0)
    tiled = sample(build(tiny_opt(is_train=False, sampler={**start, 'tile': {'size': 12, 'overlap': 4}})), data, 0)
    assert tiled.shape == plain.shape == (2, 3, 64, 64) and torch.isfinite(tiled).all()
    psnr = -10 * torch.log10(torch.mean((tiled - plain)**2)).item()
    assert psnr > 22


@pytest.mark.parametrize('tile, match', [({'size': 7, 'overlap': 2}, 'multiples of 2'),
                                         ({'size': 8, 'overlap': 8}, 'overlap 8')],
                         ids=['size_not_multiple', 'overlap_not_below_size'])
def test_model_rejects_bad_tiles(tile, match):
    with pytest.raises(ValueError, match=match):
        build(tiny_opt(is_train=False, sampler={'tile': tile}))
