"""scripts/precompute_depth.py over ssr.tools.precompute_depth: names, sizes and 16-bit range of the maps, batching by
network input size, resuming, the LMDB read back through ImageSource and SVDegradationDataset, clear errors.

The network is MiDaS small with random weights saved in the official file layout (as the arch tests build it).
"""
from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from ssr.archs.midas_depth_arch import MIDAS_VARIANTS, MiDaSDepth
from ssr.data.basicsr_lmdb import create_lmdb
from ssr.data.image_io import decode_depth
from ssr.data.image_source import ImageSource, lmdb_keys
from ssr.data.sv_degradation_dataset import SVDegradationDataset
from ssr.tools import precompute_depth as tool
from tests.conftest import REPO, SCRIPTS, load_script, photo
from tests.test_archs.test_midas_depth_arch import SMALL, to_official

# name -> (H, W); at input size 128 (upper_bound) the first two share one network input size, 96 x 128, the third
# has another, 128 x 96
INPUT_SIZE = 128
SIZES = {'astronaut': (48, 64), 'chelsea': (45, 60), 'coffee': (64, 48)}


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    torch.manual_seed(0)
    source = MiDaSDepth(SMALL, random_weights=True)
    path = tmp_path_factory.mktemp('weights') / MIDAS_VARIANTS[SMALL].file_name
    torch.save({'model': to_official(SMALL, source.model.state_dict(), dict(source.model.named_buffers()))}, path)
    return path


@pytest.fixture(scope='module')
def net(weights):
    return tool.load_depth_net(SMALL, weights, input_size=INPUT_SIZE, device='cpu')


@pytest.fixture(scope='module')
def hr(tmp_path_factory):
    folder = tmp_path_factory.mktemp('hr')
    for name, (h, w) in SIZES.items():
        cv2.imwrite(str(folder / f'{name}.png'), cv2.resize(photo(name, 64), (w, h), interpolation=cv2.INTER_AREA))
    return folder


def run(net, input_path, output, lmdb_output=False, batch_size=2):
    job = tool.open_depth_job(input_path, output, lmdb_output=lmdb_output)
    return tool.run_depth_job(job, net, batch_size=batch_size)


def read_folder(folder) -> dict[str, np.ndarray]:
    return {p.stem: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob('*.png'))}


def test_folder_maps_have_the_image_names_sizes_and_full_16_bit_range(net, hr, tmp_path):
    assert run(net, hr, tmp_path / 'depth') == tool.DepthRun(written=3, skipped=0)
    maps = read_folder(tmp_path / 'depth')
    assert sorted(maps) == sorted(SIZES)
    for name, depth in maps.items():
        assert depth.dtype == np.uint16 and depth.shape == SIZES[name], name
        assert depth.min() == 0 and depth.max() == 65535, name  # per-image normalisation to [0, 1]
    assert not list((tmp_path / 'depth').glob('.*'))  # no temporary file left


def test_batches_group_equal_network_input_sizes_and_match_forward(net, hr, tmp_path):
    shapes = []
    handle = net.model.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    try:
        run(net, hr, tmp_path / 'depth', batch_size=2)
    finally:
        handle.remove()
    assert shapes == [(2, 3, 96, 128), (1, 3, 128, 96)]
    for name, depth in read_folder(tmp_path / 'depth').items():
        img = cv2.imread(str(hr / f'{name}.png'))[..., ::-1].astype(np.float32) / 255
        with torch.no_grad():
            want = net(torch.from_numpy(img.transpose(2, 0, 1).copy())[None])[0, 0].numpy()
        np.testing.assert_allclose(depth / 65535, want, atol=1e-3, err_msg=name)


def test_a_second_run_skips_everything_and_a_partial_folder_is_completed(net, hr, tmp_path):
    out = tmp_path / 'depth'
    run(net, hr, out)
    first = read_folder(out)
    (out / 'chelsea.png').unlink()
    stamp = (out / 'astronaut.png').stat().st_mtime_ns
    assert run(net, hr, out) == tool.DepthRun(written=1, skipped=2)
    assert (out / 'astronaut.png').stat().st_mtime_ns == stamp
    # recomputed alone instead of in a batch of two: equal up to float rounding (one 16-bit step)
    np.testing.assert_allclose(read_folder(out)['chelsea'].astype(int), first['chelsea'].astype(int), atol=1)
    assert tool.open_depth_job(hr, out).todo == []


def test_lmdb_output_resumes_and_reads_back_through_image_source(net, hr, tmp_path):
    out = tmp_path / 'depth.lmdb'
    run(net, hr, tmp_path / 'folder')
    assert run(net, hr, out, lmdb_output=True).written == 3
    assert run(net, hr, out, lmdb_output=True) == tool.DepthRun(written=0, skipped=3)
    assert lmdb_keys(out) == sorted(SIZES)  # meta_info.txt in input order
    source = ImageSource(str(out), 'lmdb', option='dataroot_depth')
    assert source.sizes == [SIZES[k] for k in source.keys]
    folder = read_folder(tmp_path / 'folder')
    for i, key in enumerate(source.keys):
        np.testing.assert_array_equal(source.read_depth(i), folder[key] / np.float32(65535), err_msg=key)


def test_lmdb_missing_a_meta_line_is_repaired_and_completed(net, hr, tmp_path):
    out = tmp_path / 'depth.lmdb'
    run(net, hr, out, lmdb_output=True)
    # a run stopped after its last commit but before meta_info.txt had the line
    lines = (out / 'meta_info.txt').read_text().splitlines(keepends=True)
    (out / 'meta_info.txt').write_text(''.join(lines[:1]) + lines[1][:7])
    assert run(net, hr, out, lmdb_output=True).skipped == 3
    assert (out / 'meta_info.txt').read_text().splitlines(keepends=True) == lines


@pytest.mark.parametrize('gt_kind', ['folder', 'lmdb'])
def test_sv_degradation_dataset_reads_the_lmdb_as_dataroot_depth(net, hr, tmp_path, gt_kind):
    gt = hr if gt_kind == 'folder' else tmp_path / 'hr.lmdb'
    if gt_kind == 'lmdb':
        create_lmdb(hr, gt)
    run(net, gt, tmp_path / 'depth.lmdb', lmdb_output=True)
    dataset = SVDegradationDataset({'dataroot_gt': str(gt), 'dataroot_depth': str(tmp_path / 'depth.lmdb'),
                                    'gt_size': 32, 'scale': 4, 'synthesis': 'model', 'use_hflip': False,
                                    'use_rot': False})
    for i in range(len(dataset)):
        img, depth = dataset._load(i)
        assert depth.shape == (1, *img.shape[1:])
        assert float(depth.min()) == 0 and float(depth.max()) == 1
        assert dataset[i]['depth'].shape == (1, 32, 32)


def test_missing_weights_name_the_option_and_the_official_file(hr, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^--weights '.*absent\.pt' does not exist: .*midas_v21_small_256"):
        tool.precompute_depth(hr, tmp_path / 'depth', variant=SMALL, weights=tmp_path / 'absent.pt')
    assert not (tmp_path / 'depth').exists()


def test_script_exits_2_with_a_one_line_error(hr, tmp_path, caplog):
    code = load_script('precompute_depth').main(['-i', str(hr), '-o', str(tmp_path / 'd'), '--variant', SMALL,
                                                  '--weights', str(tmp_path / 'absent.pt'), '--quiet'])
    assert code == 2
    [record] = [r for r in caplog.records if r.levelname == 'ERROR']
    assert record.getMessage().startswith('error: --weights ') and '\n' not in record.getMessage()


@pytest.mark.parametrize('kwargs, match', [
    # settings
    ({'variant': 'dpt_tiny'}, "--variant 'dpt_tiny' not in"),
    ({'batch_size': 0}, '--batch-size must be at least 1, got 0'),
    ({'input_size': 48}, '--input-size must be a positive multiple of 32, got 48'),
    ({'weights_name': 'dpt_large_384.pt'}, '--weights dpt_large_384.pt is the official file of dpt_large_384'),
    # output paths
    ({'output': 'depth.lmdb'}, r'ends with \.lmdb: add --lmdb'),
    ({'output': 'depth', 'lmdb_output': True}, r'must end with \.lmdb with --lmdb'),
    ({'output': 'hr/depth'}, 'lies in --input'),
], ids=['variant', 'batch_size', 'input_size', 'other_variant_file', 'lmdb_suffix', 'lmdb_without_suffix',
        'output_in_input'])
def test_bad_settings(hr, weights, tmp_path, kwargs, match):
    kwargs = dict(kwargs)
    wfile = weights
    if 'weights_name' in kwargs:
        wfile = tmp_path / kwargs.pop('weights_name')
        wfile.write_bytes(b'')
    output = kwargs.pop('output', 'depth')
    output = hr / output.removeprefix('hr/') if output.startswith('hr/') else tmp_path / output
    with pytest.raises(ValueError, match=match):
        tool.precompute_depth(hr, output, **{'variant': SMALL, 'weights': wfile, **kwargs})


def test_a_file_that_does_not_match_is_a_one_line_error(tmp_path):
    wrong = tmp_path / 'weights.pt'
    torch.save({'model': {'pretrained.layer1.0.weight': torch.zeros(1)}}, wrong)
    with pytest.raises(ValueError, match=r"--weights '.*weights\.pt' is not a usable midas_v21_small_256\.pt") as e:
        tool.load_depth_net(SMALL, wrong, device='cpu')
    assert '\n' not in str(e.value)


def test_script_end_to_end(hr, weights, tmp_path):
    out = tmp_path / 'depth'
    cmd = [sys.executable, str(SCRIPTS / 'precompute_depth.py'), '-i', str(hr), '-o', str(out), '--variant', SMALL,
           '--weights', str(weights), '--input-size', str(INPUT_SIZE), '--device', 'cpu', '--batch-size', '2',
           '--quiet']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '3 depth maps written, 0 already there' in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f'{n}.png' for n in SIZES)
    assert decode_depth((out / 'coffee.png').read_bytes(), 'coffee.png').shape == SIZES['coffee']
