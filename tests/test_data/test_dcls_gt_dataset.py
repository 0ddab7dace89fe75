"""``DCLSGTDataset``: HR images degraded as DCLS degrades them, with the reformulated kernel as ``kernel_lr``."""
from __future__ import annotations

import pytest
import torch
from basicsr.utils.matlab_functions import imresize

from ssr.data.dcls_gt_dataset import DCLSGTDataset
from ssr.ops.dcls_degradation import dcls_stable_kernels, reformulated_kernel
from ssr.ops.sv_blur import uniform_blur_downsample


def _opt(root, **extra):
    return {'name': 'tiny', 'phase': 'train', 'dataroot_gt': str(root), 'scale': 4, 'kernel_size': 11, **extra}


def test_a_fixed_kernel_test_sample_is_the_official_recipe(paired_folder):
    ds = DCLSGTDataset(_opt(paired_folder / 'hr', degradation={'random_kernel': False, 'sig': 1.8}))
    sample = ds[0]
    gt = sample['gt']
    blurred = uniform_blur_downsample(gt[None], dcls_stable_kernels(1, 11, 1.8), 1)[0]  # reflect pad + conv
    torch.testing.assert_close(sample['lq'], imresize(blurred, 1 / 4).float())
    torch.testing.assert_close(sample['kernel_lr'], reformulated_kernel(imresize(blurred, 0.25)[None],
                                                                       imresize(gt, 0.25)[None], 11)[0])
    assert sample['lq'].shape == (3, 16, 16) and sample['kernel_lr'].shape == (1, 11, 11)
    torch.testing.assert_close(sample['kernel_lr'].sum(), torch.tensor(1.0))


def test_training_samples_are_random_crops_reproducible_per_epoch(paired_folder):
    ds = DCLSGTDataset(_opt(paired_folder / 'hr', gt_size=48, use_hflip=True, use_rot=True,
                            degradation={'rate_iso': 0.0, 'sig_min': 0.6, 'sig_max': 5.0, 'noise': True,
                                         'noise_high': 0.05}))
    first, again = ds[1], ds[1]
    assert first['gt'].shape == (3, 48, 48) and first['lq'].shape == (3, 12, 12)
    assert torch.equal(first['lq'], again['lq']) and torch.equal(first['kernel_lr'], again['kernel_lr'])
    ds.set_epoch(1)
    assert not torch.equal(ds[1]['lq'], first['lq'])
    assert 0 <= first['lq'].min() and first['lq'].max() <= 1  # noise is clipped as DCLS clips it


@pytest.mark.parametrize('extra, match', [
    ({'degradation': {'ksize': 11}}, 'unknown key'),
    ({'degradation': {'sig_min': 2.0, 'sig_max': 1.0}}, 'sig_min <= sig_max'),
    ({'gt_size': 40}, 'smaller than the kernel'),
    ({'gt_size': 50}, 'multiple of the scale'),
])
def test_bad_options_name_the_set(paired_folder, extra, match):
    with pytest.raises(ValueError, match=match) as info:
        DCLSGTDataset(_opt(paired_folder / 'hr', **extra))
    assert 'datasets.train (tiny)' in str(info.value)
