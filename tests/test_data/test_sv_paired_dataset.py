"""SVPairedDataset: generated SV test sets, explicit roots, MMSR LMDB test sets, and pairing errors."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

from ssr.data.mmsr_lmdb import write_mmsr_lmdb
from ssr.ops.sv_blur import sv_blur_downsample
from ssr.data.sv_paired_dataset import SVPairedDataset, load_kernel_field
from tests.conftest import photo
from tests.test_scripts.test_generate_sv_testset import generate


@pytest.fixture(scope='module')
def testset(tmp_path_factory):
    hr = tmp_path_factory.mktemp('hr_in')
    for name, size in (('astronaut', 64), ('coffee', 50)):  # 50 is not a multiple of 4: mod-cropped to 48
        cv2.imwrite(str(hr / f'{name}.png'), photo(name, size))
    out = tmp_path_factory.mktemp('sets') / 'sv'
    assert generate(['-i', str(hr), '-o', str(out), '--kernel-size', '7', '--quiet']) == 0
    return out


def test_reads_a_generated_set(testset):
    ds = SVPairedDataset({'name': 't', 'dataroot': str(testset), 'scale': 4})
    assert len(ds) == 2
    s = ds[1]  # coffee
    assert s['lq'].shape == (3, 12, 12) and s['gt'].shape == (3, 48, 48)
    assert s['kernel'].shape == (49, 12, 12) and s['depth'].shape == (1, 48, 48)
    torch.testing.assert_close(s['kernel'].sum(0), torch.ones(12, 12))
    # the stored LR is the stored field applied to the stored HR (up to 8-bit rounding and float16 kernels)
    lr = sv_blur_downsample(s['gt'][None], s['kernel'][None], 4)[0]
    assert (lr - s['lq']).abs().max() < 3 / 255


def test_explicit_roots_and_missing_partner(testset, tmp_path):
    lq = tmp_path / 'lq'
    shutil.copytree(testset / 'LR', lq)
    cv2.imwrite(str(lq / 'extra.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"dataroot_gt .* has no image for LR \['extra'\]"):
        SVPairedDataset({'name': 't', 'dataroot_lq': str(lq), 'dataroot_gt': str(testset / 'HR')})
    with pytest.raises(ValueError, match=r"dataroot_kernel .* lacks \['extra'\]"):
        SVPairedDataset({'name': 't', 'dataroot_lq': str(lq), 'dataroot_kernel': str(testset / 'kernel')})


def test_lr_only(testset):
    s = SVPairedDataset({'name': 't', 'dataroot_lq': str(testset / 'LR')})[0]
    assert set(s) == {'lq', 'lq_path'}


def test_mmsr_lmdb_test_set(tmp_path):
    """MANet / DCLS test sets: old MMSR LMDBs (meta_info.pkl + raw HWC BGR uint8 arrays)."""
    hr = {f'img{i}': photo(n, 32) for i, n in enumerate(('astronaut', 'chelsea'))}
    lr = {k: cv2.resize(v, (8, 8), interpolation=cv2.INTER_AREA) for k, v in hr.items()}
    write_mmsr_lmdb(tmp_path / 'HR.lmdb', hr)
    write_mmsr_lmdb(tmp_path / 'LR.lmdb', lr)
    ds = SVPairedDataset({'name': 'm', 'dataroot_gt': str(tmp_path / 'HR.lmdb'),
                          'dataroot_lq': str(tmp_path / 'LR.lmdb'), 'scale': 4})
    s = ds[1]
    expected = torch.from_numpy(hr['img1'][..., ::-1].copy()).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(s['gt'], expected)
    assert s['lq'].shape == (3, 8, 8)


def test_bad_kernel_file(tmp_path):
    np.savez(tmp_path / 'k.npz', kernel=np.ones((48, 4, 4), np.float16))
    with pytest.raises(ValueError, match='k odd'):
        load_kernel_field(str(tmp_path / 'k.npz'))
    np.savez(tmp_path / 'k.npz', field=np.ones((49, 4, 4)))
    with pytest.raises(ValueError, match='no array named "kernel"'):
        load_kernel_field(str(tmp_path / 'k.npz'))


def test_missing_dataroot(tmp_path):
    with pytest.raises(FileNotFoundError, match='dataroot'):
        SVPairedDataset({'name': 't', 'dataroot': str(tmp_path / 'none')})


def test_base_folder_gives_the_sr_estimate(testset, tmp_path):
    root = tmp_path / 'with_base'
    shutil.copytree(testset, root)
    (root / 'base').mkdir()
    for name in ('astronaut', 'coffee'):
        hr = cv2.imread(str(root / 'HR' / f'{name}.png'))
        cv2.imwrite(str(root / 'base' / f'{name}.png'), 255 - hr)  # any image of HR size; here the negative
    ds = SVPairedDataset({'name': 't', 'dataroot': str(root), 'scale': 4})
    s = ds[1]
    assert s['base'].shape == s['gt'].shape == (3, 48, 48)
    torch.testing.assert_close(s['base'], 1 - s['gt'], atol=1 / 255, rtol=0)
    (root / 'base' / 'coffee.png').unlink()
    with pytest.raises(ValueError, match='dataroot_base.*coffee'):
        SVPairedDataset({'name': 't', 'dataroot': str(root), 'scale': 4})


def test_filename_templates_pair_drealsr_style_names(testset, tmp_path):
    lq, gt = tmp_path / 'LR', tmp_path / 'HR'
    lq.mkdir()
    gt.mkdir()
    for name in ('astronaut', 'coffee'):
        shutil.copy(testset / 'LR' / f'{name}.png', lq / f'{name}_x4.png')
        shutil.copy(testset / 'HR' / f'{name}.png', gt / f'{name}_x1.png')
    opt = {'name': 't', 'dataroot_lq': str(lq), 'dataroot_gt': str(gt), 'scale': 4,
           'dataroot_depth': str(testset / 'depth'), 'filename_tmpl': '{}_x4', 'gt_filename_tmpl': '{}_x1'}
    ds = SVPairedDataset(opt)
    plain = SVPairedDataset({'name': 't', 'dataroot': str(testset), 'scale': 4})
    for i in range(2):
        for key in ('lq', 'gt', 'depth'):
            torch.testing.assert_close(ds[i][key], plain[i][key])  # depth found by the key, not the LR stem
    with pytest.raises(ValueError, match="has no image for LR"):
        SVPairedDataset(dict(opt, gt_filename_tmpl='{}'))
    with pytest.raises(ValueError, match="do not match filename_tmpl"):
        SVPairedDataset(dict(opt, filename_tmpl='{}_x2'))
    with pytest.raises(ValueError, match="exactly once"):
        SVPairedDataset(dict(opt, filename_tmpl='x4'))
