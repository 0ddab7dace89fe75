"""IKCGTDataset: IKC's training degradation (random isotropic kernel, reflect blur, 8-bit PIL bicubic)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ssr.data.ikc_gt_dataset import IKCGTDataset, ikc_bicubic_downsample


@pytest.fixture
def hr_folder(tmp_path):
    from skimage import data

    image = data.astronaut()
    for i in range(3):
        Image.fromarray(image[40 * i:40 * i + 100, 50 * i:50 * i + 90]).save(tmp_path / f'{i}.png')
    return tmp_path


def test_downsampling_is_ikcs_per_channel_pil_bicubic_of_truncated_bytes():
    image = torch.rand(3, 36, 28, generator=torch.Generator().manual_seed(0))
    ours = ikc_bicubic_downsample(image, 4)
    # IKC's b_CPUVar_Bicubic: each channel as an 8-bit 'L' image (x.mul(255).byte()), PIL bicubic, / 255
    ref = torch.stack([torch.from_numpy(np.array(Image.fromarray(c.mul(255).byte().numpy()).resize(
        (7, 9), Image.BICUBIC))).float() / 255 for c in image])
    assert ours.shape == (3, 9, 7) and torch.equal(ours, ref)
    assert torch.equal(ikc_bicubic_downsample(image[:1], 4), ref[:1])


def test_samples_follow_ikcs_recipe_and_are_seeded(hr_folder):
    opt = {'name': 't', 'dataroot_gt': str(hr_folder), 'scale': 4, 'kernel_size': 11, 'sig_min': 0.5, 'sig_max': 2.0,
           'gt_size': 48, 'use_hflip': True, 'use_rot': True}
    ds = IKCGTDataset(opt)
    sample = ds[1]
    gt, lq, kernel = sample['gt'], sample['lq'], sample['kernel_hr']
    assert gt.shape == (3, 48, 48) and lq.shape == (3, 12, 12) and kernel.shape == (1, 11, 11)
    assert torch.allclose(kernel.sum(), torch.tensor(1.0)) and torch.equal(kernel[0], kernel[0].T)  # isotropic
    assert kernel[0].argmax() == 5 * 11 + 5  # centred at k // 2
    # IKC's BatchBlur (ReflectionPad2d(k // 2) + conv2d), then its bicubic
    blurred = F.conv2d(F.pad(gt[None], (5,) * 4, mode='reflect'), kernel[None].expand(3, 1, 11, 11), groups=3)[0]
    # equal up to the float summation order of the blur, which can move a value across an 8-bit step
    diff = (lq - ikc_bicubic_downsample(blurred.clamp(0, 1), 4)).abs()
    assert diff.max() <= 1 / 255 + 1e-6 and (diff > 0).float().mean() < 0.01
    assert torch.equal(lq, (lq * 255).round() / 255)  # 8-bit values
    again = IKCGTDataset(opt)[1]
    assert all(torch.equal(sample[k], again[k]) for k in ('gt', 'lq', 'kernel_hr'))
    ds.set_epoch(1)
    assert not torch.equal(ds[1]['kernel_hr'], kernel)  # new draws each epoch


def test_bad_settings_name_the_set(hr_folder):
    with pytest.raises(ValueError, match=r'datasets.val \(v\).*sig_min'):
        IKCGTDataset({'name': 'v', 'phase': 'val', 'dataroot_gt': str(hr_folder), 'scale': 4, 'sig_min': 3.0,
                      'sig_max': 1.0})
