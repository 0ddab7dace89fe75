"""Every recipe under options/ runs end to end through its tiny twin: train twins train 10 iterations and validate,
test twins test (with weights the test writes from freshly built networks) on a tiny SV test set."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from ssr.utils.checkpoint import atomic_torch_save
from ssr.utils.options import load_yaml
from tests.conftest import PHOTOS, REPO, load_script, photo, run_entry, write_options

TWINS = REPO / 'tests' / 'data'
TRAIN_TWINS = sorted(p.name for p in (REPO / 'options').glob('train_*.yml') if (TWINS / p.name).is_file())
TEST_TWINS = sorted(p.name for p in (REPO / 'options').glob('test_*.yml') if (TWINS / p.name).is_file())


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('recipes')
    photos = root / 'photos'
    photos.mkdir()
    for name in PHOTOS[:3]:
        cv2.imwrite(str(photos / f'{name}.png'), photo(name, 48))
    generate = load_script('generate_sv_testset').main
    assert generate(['-i', str(photos), '-o', str(root / 'sv'), '--kernel-size', '11', '--quiet']) == 0
    base = root / 'sv_base'  # the set with base/ = an SR estimate per image (here the bicubic LR), for residual SSR
    shutil.copytree(root / 'sv', base)
    (base / 'base').mkdir()
    for lr in sorted((base / 'LR').glob('*.png')):
        img = cv2.imread(str(lr))
        cv2.imwrite(str(base / 'base' / lr.name), cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))
    return {'photos': photos, 'sv': root / 'sv', 'sv_base': base}


@pytest.mark.slow
@pytest.mark.parametrize('twin', TRAIN_TWINS)
def test_train_twin_trains_and_validates(tmp_path, tiny_data, twin):
    merged = load_yaml(TWINS / twin)
    residual = (merged.get('diffusion') or {}).get('formulation') == 'residual'
    if merged['datasets']['train']['type'] == 'SVPairedDataset':  # fixed pairs (with base/ for residual SSR)
        datasets = {'train': {'dataroot': str(tiny_data['sv_base' if residual else 'sv'])}}
    else:
        datasets = {'train': {'dataroot_gt': str(tiny_data['photos'])}}
    if 'val' in merged['datasets']:
        datasets['val'] = {'dataroot': str(tiny_data['sv_base' if residual else 'sv'])}
    opt = write_options(tmp_path / twin, {'_base_': str(TWINS / twin), 'datasets': datasets,
                                          'train': {'total_iter': 10}, 'logger': {'print_freq': 1}})
    proc = run_entry('train.py', ['-opt', str(opt)], root=tmp_path)
    log = proc.stdout + proc.stderr
    assert sorted(set(_iters(log)) - {0}) == list(range(1, 11))
    assert ('Validation' in log) == ('val' in merged['datasets'])
    name = merged['name']
    assert (tmp_path / 'experiments' / name / 'models' / 'net_g_latest.pth').is_file()


def _iters(log: str) -> list[int]:
    import re

    return [int(m.replace(',', '')) for m in re.findall(r'iter:\s*([\d,]+)', log)]


def _write_weights(opt: dict, folder: Path) -> dict:
    """Weights for every network of a test twin, from freshly built networks (the pipeline, not quality, is tested)."""
    paths = {}
    for key in [k for k in opt if k.startswith('network_')]:
        args = {k: v for k, v in opt[key].items() if k != 'type'}
        torch.manual_seed(0)
        net = ARCH_REGISTRY.get(opt[key]['type'])(**args)
        path = folder / f'{key}.pth'
        atomic_torch_save({'params': net.state_dict(), 'params_ema': net.state_dict()}, path)
        paths[f'pretrain_{key}'] = str(path)
    return paths


@pytest.mark.slow
@pytest.mark.parametrize('twin', TEST_TWINS)
def test_test_twin_runs(tmp_path, tiny_data, twin):
    merged = load_yaml(TWINS / twin)
    opt = write_options(tmp_path / twin, {
        '_base_': str(TWINS / twin),
        'datasets': {'test_1': {'dataroot': str(tiny_data['sv'])}},
        'path': _write_weights(merged, tmp_path)})
    run_entry('test.py', ['-opt', str(opt)], root=tmp_path)
    out = tmp_path / 'results' / merged['name']
    dataset = merged['datasets']['test_1']['name']
    images = sorted(p.name for p in (out / 'visualization' / dataset).glob('*.png'))
    sr = [n for n in images if not n.endswith('_blind.png')]
    assert len(sr) == 3, images
    blind = merged['model_type'] == 'SSRModel' and merged['conditions']['source'] == 'svkr'
    assert len(images) == (6 if blind else 3), images  # SSR with SVKR also saves the blind path's I^T
    log = next(out.glob('test_*.log')).read_text()
    assert '# psnr:' in log
