"""SVDegradationDataset: sources (folder, meta_info, LMDB), depth, synthesis modes, determinism, bad inputs."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset

from ssr.data.image_io import encode_depth_png
from ssr.data.sv_degradation_dataset import SVDegradationDataset
from tests.conftest import PHOTOS, photo


@pytest.fixture(scope='module')
def hr_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('hr')
    for name in PHOTOS[:3]:
        cv2.imwrite(str(root / f'{name}.png'), photo(name, 48))
    return root


def opts(root, **kw):
    base = {'name': 'tiny', 'type': 'SVDegradationDataset', 'phase': 'train', 'dataroot_gt': str(root),
            'gt_size': 32, 'scale': 4, 'degradation': {'kernel_size': 7}}
    return {**base, **kw}


def test_worker_synthesis_sample(hr_folder):
    ds = SVDegradationDataset(opts(hr_folder))
    s = ds[0]
    assert s['gt'].shape == (3, 32, 32) and s['lq'].shape == (3, 8, 8) and s['kernel'].shape == (49, 8, 8)
    assert s['depth'].shape == (1, 32, 32) and 0 <= float(s['depth'].min()) <= float(s['depth'].max()) <= 1
    assert s['gt'].dtype == torch.float32 and 0 <= float(s['gt'].min()) and float(s['gt'].max()) <= 1
    torch.testing.assert_close(s['kernel'].sum(0), torch.ones(8, 8))
    assert s['gt_path'].endswith('.png')


def test_model_synthesis_returns_hr_and_depth_only(hr_folder):
    s = SVDegradationDataset(opts(hr_folder, synthesis='model'))[1]
    assert {'gt', 'depth', 'seed', 'gt_path'} == set(s)


def test_samples_are_rebuildable_and_change_with_epoch(hr_folder):
    ds = SVDegradationDataset(opts(hr_folder, seed=3))
    a, b = ds[2], ds[2]
    assert torch.equal(a['lq'], b['lq']) and torch.equal(a['gt'], b['gt'])
    ds.set_epoch(1)
    assert not torch.equal(ds[2]['lq'], a['lq'])
    ds.set_epoch(0)
    assert torch.equal(ds[2]['lq'], a['lq'])


def test_depth_from_folder_follows_the_crop(hr_folder, tmp_path):
    depth_dir = tmp_path / 'depth'
    depth_dir.mkdir()
    ramp = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (48, 1))  # depth grows with the column
    for p in hr_folder.iterdir():
        (depth_dir / p.name).write_bytes(encode_depth_png(ramp))
    ds = SVDegradationDataset(opts(hr_folder, dataroot_depth=str(depth_dir), use_rot=False, use_hflip=False))
    d = ds[0]['depth'][0]
    assert torch.all(d.diff(dim=1) > 0) and torch.allclose(d[0], d[-1])


def test_constant_depth_option(hr_folder):
    s = SVDegradationDataset(opts(hr_folder, depth_source='none'))[0]
    assert torch.equal(s['depth'], torch.full((1, 32, 32), 0.5))


def test_meta_info_list(hr_folder, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text(f'{PHOTOS[1]}.png (48,48,3)\n')
    ds = SVDegradationDataset(opts(hr_folder, meta_info_file=str(meta)))
    assert len(ds) == 1 and ds[0]['gt_path'].endswith(f'{PHOTOS[1]}.png')


@pytest.fixture(scope='module')
def hr_lmdb(hr_folder, tmp_path_factory):
    """A BasicSR LMDB whose keys contain dots."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    root = tmp_path_factory.mktemp('lmdb') / 'hr.lmdb'
    files = sorted(hr_folder.iterdir())
    keys = [f'{p.stem}.s{i:03d}' for i, p in enumerate(files)]
    make_lmdb_from_imgs(str(hr_folder), str(root), [p.name for p in files], keys, n_thread=1)
    return root


def test_lmdb_with_two_workers_and_a_validation_loader(hr_lmdb, hr_folder):
    """py-lmdb >= 2 refuses a second open of one environment in a process; lmdb==1.8.1 and lazy opening allow it."""
    train_opt = opts(hr_lmdb, io_backend={'type': 'lmdb'}, num_worker_per_gpu=2, batch_size_per_gpu=2,
                     use_shuffle=True)
    train = build_dataset(train_opt)
    assert any('.s00' in k for k in train.gt.keys)
    loader = build_dataloader(train, train_opt, num_gpu=0, dist=False, sampler=None, seed=0)
    val_opt = opts(hr_lmdb, phase='val', io_backend={'type': 'lmdb'}, num_worker_per_gpu=0, batch_size_per_gpu=1)
    val = build_dataset(val_opt)
    val_loader = build_dataloader(val, val_opt, num_gpu=0, dist=False, sampler=None, seed=0)
    for _ in range(2):
        batches = list(loader)
        assert batches[0]['lq'].shape == (2, 3, 8, 8)
        assert len(list(val_loader)) == 3
    # the LMDB decodes to the same pixels as the folder
    folder = SVDegradationDataset(opts(hr_folder, seed=0))
    assert torch.equal(build_dataset(opts(hr_lmdb, seed=0, io_backend={'type': 'lmdb'}))[0]['gt'], folder[0]['gt'])


# ---------------------------------------------------------------------------------------------------------------
# bad inputs and odd files
def _write(folder, name, data: bytes):
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    return folder


def _png(img) -> bytes:
    return cv2.imencode('.png', img)[1].tobytes()


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='dataroot_gt.*does not exist'):
        SVDegradationDataset(opts(tmp_path / 'nope'))


def test_empty_folder_and_non_image_files(tmp_path):
    folder = _write(tmp_path / 'hr', 'notes.txt', b'not an image')
    with pytest.raises(ValueError, match='holds no image file'):
        SVDegradationDataset(opts(folder))
    _write(folder, 'a.png', _png(photo('astronaut', 40)))
    assert len(SVDegradationDataset(opts(folder))) == 1  # the text file is ignored


def test_corrupt_png_names_the_file(tmp_path):
    folder = _write(tmp_path / 'hr', 'broken.png', _png(photo('astronaut', 40))[:60])
    with pytest.raises(ValueError, match='broken.png: not a decodable image'):
        SVDegradationDataset(opts(folder))[0]


@pytest.mark.parametrize('kind', ['gray', 'rgba', 'uint16'])
def test_odd_image_formats_are_converted(tmp_path, kind):
    rgb = photo('coffee', 40)
    img = {'gray': cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY), 'rgba': cv2.cvtColor(rgb, cv2.COLOR_BGR2BGRA),
           'uint16': rgb.astype(np.uint16) * 257}[kind]
    folder = _write(tmp_path / 'hr', 'x.png', _png(img))
    s = SVDegradationDataset(opts(folder, gt_size=40, use_hflip=False, use_rot=False))[0]
    assert s['gt'].shape == (3, 40, 40)
    expected = torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1).float() / 255
    if kind == 'gray':
        assert torch.equal(s['gt'][0], s['gt'][1])
    else:
        torch.testing.assert_close(s['gt'], expected, atol=1e-6, rtol=0)


def test_image_smaller_than_crop(tmp_path):
    folder = _write(tmp_path / 'hr', 'small.png', _png(photo('coffee', 24)))
    with pytest.raises(ValueError, match='small.png: image 24x24 is smaller than gt_size 32'):
        SVDegradationDataset(opts(folder))[0]


@pytest.mark.parametrize('kw,match', [
    ({'gt_size': 30}, 'gt_size 30 is not a multiple of scale 4'),
    ({'degradation': {'kernel_size': 8}}, 'kernel_size must be odd'),
    ({'synthesis': 'gpu'}, "synthesis 'gpu' not in"),
    ({'depth_source': 'file'}, 'depth_source file needs dataroot_depth'),
    ({'depth_source': 'midas'}, "depth_source 'midas' not in"),
], ids=['gt_size', 'even-kernel', 'synthesis', 'depth-file', 'depth-source'])
def test_bad_options(hr_folder, kw, match):
    with pytest.raises(ValueError, match=match):
        SVDegradationDataset(opts(hr_folder, **kw))


def test_depth_folder_missing_a_map(hr_folder, tmp_path):
    depth_dir = _write(tmp_path / 'depth', f'{PHOTOS[0]}.png', encode_depth_png(np.zeros((48, 48))))
    with pytest.raises(ValueError, match='has no depth map for'):
        SVDegradationDataset(opts(hr_folder, dataroot_depth=str(depth_dir)))


def test_depth_size_mismatch(hr_folder, tmp_path):
    depth_dir = tmp_path / 'depth'
    for p in hr_folder.iterdir():
        _write(depth_dir, p.name, encode_depth_png(np.zeros((40, 40))))
    with pytest.raises(ValueError, match=r'depth \(40, 40\) does not match image'):
        SVDegradationDataset(opts(hr_folder, dataroot_depth=str(depth_dir)))[0]


def test_lmdb_entries_smaller_than_the_crop_are_left_out(tmp_path):
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    folder = tmp_path / 'imgs'
    folder.mkdir()
    cv2.imwrite(str(folder / 'big.png'), photo('astronaut', 40))
    cv2.imwrite(str(folder / 'small.png'), photo('coffee', 24))
    make_lmdb_from_imgs(str(folder), str(tmp_path / 'x.lmdb'), ['big.png', 'small.png'], ['big', 'small'], n_thread=1)
    ds = SVDegradationDataset(opts(tmp_path / 'x.lmdb', io_backend={'type': 'lmdb'}))
    assert ds.gt.keys == ['big'] and ds[0]['gt'].shape == (3, 32, 32)
    with pytest.raises(ValueError, match='every image .* is smaller than gt_size 48'):
        SVDegradationDataset(opts(tmp_path / 'x.lmdb', io_backend={'type': 'lmdb'}, gt_size=48))


def test_layered_scenes_have_content_aligned_depth(hr_folder):
    ds = SVDegradationDataset(opts(hr_folder, depth_source='layered', num_layers=[2, 3], seed=1))
    s = ds[0]
    assert s['gt'].shape == (3, 32, 32) and s['lq'].shape == (3, 8, 8) and s['kernel'].shape == (49, 8, 8)
    torch.testing.assert_close(s['kernel'].sum(0), torch.ones(8, 8))
    assert float(s['depth'].min()) == 0 and float(s['depth'].max()) == 1
    again = ds[0]
    assert torch.equal(s['lq'], again['lq']) and torch.equal(s['depth'], again['depth'])
    # depth edges sit on image edges: where depth jumps, the image changes too
    jump = (s['depth'][0, :, 1:] - s['depth'][0, :, :-1]).abs() > 0.05
    step = (s['gt'][:, :, 1:] - s['gt'][:, :, :-1]).abs().amax(0)
    if jump.any():
        assert float(step[jump].mean()) > float(step[~jump].mean())


@pytest.mark.parametrize('kw, match', [
    ({'depth_source': 'layered', 'synthesis': 'model'}, 'synthesis: worker'),
    ({'depth_source': 'layered', 'num_layers': [3, 2]}, 'num_layers'),
])
def test_layered_bad_options(hr_folder, kw, match):
    with pytest.raises(ValueError, match=match):
        SVDegradationDataset(opts(hr_folder, **kw))
