"""MMSRGTDataset: MANet's mode: GT sets, degraded on the fly with fixed, seeded kernel / noise / JPEG settings."""
from __future__ import annotations

import pytest
import torch

from ssr.data.mmsr_gt_dataset import MMSRGTDataset
from ssr.ops.sv_blur import sv_blur_downsample


def _dataset(folder, **opt):
    return MMSRGTDataset({'name': 'gt', 'phase': 'test', 'dataroot_gt': str(folder / 'hr'), 'scale': 4,
                          'kernel_size': 11, **opt})


@pytest.mark.parametrize('convention', ['mmsr', 'ssr'])
def test_lr_is_the_returned_field_applied_to_gt_then_quantised(paired_folder, convention):
    from ssr.ops.mmsr_kernels import ssr_field_to_manet

    ds = _dataset(paired_folder, kernel={'sig1': 4.0, 'sig2': 1.0, 'theta': 0.3, 'rate_iso': 0, 'sv_mode': 2},
                  convention=convention)
    sample = ds[1]
    assert sample['lq'].shape == (3, 16, 16) and sample['gt'].shape == (3, 64, 64)
    assert sample['kernel'].shape == (121, 16, 16)
    torch.testing.assert_close(sample['kernel'].sum(0), torch.ones(16, 16))
    field, padding = sample['kernel'][None], 'reflect'
    if convention == 'mmsr':  # MANet's grid: its kernel layout and replicate padding
        field, padding = ssr_field_to_manet(field, 4), 'replicate'
    blurred = sv_blur_downsample(sample['gt'][None], field, 4, padding=padding)
    expected = (blurred.clamp(0, 1) * 255).round() / 255
    torch.testing.assert_close(sample['lq'], expected[0], rtol=0, atol=1e-6)
    assert len(ds) == 4 and sample['gt_path'].endswith('.png')


def test_samples_are_reproducible_and_noise_and_jpeg_apply(paired_folder):
    clean = _dataset(paired_folder, kernel={'sig': 2.0})[0]['lq']
    noisy = _dataset(paired_folder, kernel={'sig': 2.0}, noise_level=15, jpeg_quality=40)
    a, b = noisy[0]['lq'], noisy[0]['lq']
    assert torch.equal(a, b)
    assert 0.02 < (a - clean).abs().mean() < 0.2  # 15/255 noise plus JPEG, not a different image


@pytest.mark.parametrize(('opt', 'match'), [
    ({'kernel': {'sigma': 2}}, r"kernel: unknown key\(s\) \['sigma'\]"),
    ({'kernel': {'sv_mode': 3}}, 'needs rate_iso: 0'),
    ({'kernel_size': 10}, 'kernel_size must be odd'),
    ({'jpeg_quality': 0}, 'jpeg_quality in'),
])
def test_bad_options_name_the_key(paired_folder, opt, match):
    with pytest.raises(ValueError, match=match):
        _dataset(paired_folder, **opt)


def test_mmsr_convention_is_manets_synthesis(paired_folder):
    """MANet's own recipe, written from its definitions: an isotropic Gaussian on the (k - s + 1)^2 grid in the
    top-left corner of the k x k array, replicate padding, correlation, [0::s]."""
    import torch.nn.functional as F

    k, s, sigma = 11, 4, 1.7
    n = k - s + 1
    c = (n - 1) / 2.0
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float64) - c, torch.arange(n, dtype=torch.float64) - c,
                            indexing='ij')
    kernel = torch.zeros(k, k, dtype=torch.float64)
    kernel[:n, :n] = torch.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))
    kernel /= kernel.sum()
    sample = _dataset(paired_folder, kernel={'sig': sigma})[2]
    hr = sample['gt'][None].double()
    padded = F.pad(hr, (k // 2,) * 4, mode='replicate')
    blurred = F.conv2d(padded.view(3, 1, *padded.shape[-2:]), kernel.view(1, 1, k, k)).view(1, 3, *hr.shape[-2:])
    expected = ((blurred[..., ::s, ::s].clamp(0, 1) * 255).round() / 255).float()[0]
    diff = (sample['lq'] - expected).abs()
    assert diff.max() <= 1 / 255 + 1e-6 and (diff > 1e-6).float().mean() < 0.02  # at most a rounding step, rarely


def test_training_mode_crops_draws_random_kernels_and_follows_the_epoch(paired_folder):
    ds = _dataset(paired_folder, gt_size=32, use_hflip=True, use_rot=True,
                  random_kernel={'sig_min': 0.7, 'sig_max': 10.0, 'rate_iso': 0.3}, noise_high=15, jpeg_low=70)
    a = ds[0]
    assert a['gt'].shape == (3, 32, 32) and a['lq'].shape == (3, 8, 8) and a['kernel'].shape == (121, 8, 8)
    assert torch.equal(ds[0]['lq'], a['lq'])  # the same sample twice
    kernels = {tuple(ds[i]['kernel'][:, 0, 0].tolist()[:5]) for i in range(4)}
    assert len(kernels) == 4  # one kernel per sample
    ds.set_epoch(1)
    assert not torch.equal(ds[0]['gt'], a['gt']) or not torch.equal(ds[0]['kernel'], a['kernel'])


def test_random_training_kernels_follow_manets_distribution():
    import math

    from ssr.ops.mmsr_kernels import random_mmsr_kernel_spec

    g = torch.Generator().manual_seed(0)
    specs = [random_mmsr_kernel_spec(0.7, 10.0, 0.3, g) for _ in range(400)]
    iso = [s for s in specs if s.rate_iso == 1.0]
    aniso = [s for s in specs if s.rate_iso == 0.0]
    assert 80 < len(iso) < 160  # rate_iso 0.3
    assert all(0.7 <= s.sig <= 10.0 for s in iso)
    assert all(0.7 <= s.sig2 <= s.sig1 <= 10.0 and 0 <= s.theta < math.pi for s in aniso)
