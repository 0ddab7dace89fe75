"""SVSRModel through the entry points: batched synthesis in feed_data (train) and the SV test set (test)."""
from __future__ import annotations

import cv2
import pytest
import torch

from tests.conftest import PHOTOS, REPO, photo, run_entry, write_options
from tests.test_entrypoints.test_train import logged_losses


@pytest.mark.slow
def test_train_with_model_side_synthesis_then_test(tmp_path):
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in PHOTOS[:3]:
        cv2.imwrite(str(photos / f'{name}.png'), photo(name, 48))
    from tests.test_scripts.test_generate_sv_testset import generate

    sv = tmp_path / 'sv'
    assert generate(['-i', str(photos), '-o', str(sv), '--kernel-size', '11', '--quiet']) == 0
    train_opt = write_options(tmp_path / 'train.yml', {
        '_base_': str(REPO / 'tests/data/train_svsr_x4.yml'),
        'datasets': {'train': {'dataroot_gt': str(photos)}, 'val': {'dataroot': str(sv)}}})
    log = run_entry('train.py', ['-opt', str(train_opt)], root=tmp_path)
    assert sorted(logged_losses(log.stdout + log.stderr)) == list(range(1, 9))
    weights = tmp_path / 'experiments/tiny_train_SVSR_x4/models/net_g_latest.pth'
    assert set(torch.load(weights, weights_only=True)) == {'params', 'params_ema'}

    test_opt = write_options(tmp_path / 'test.yml', {
        '_base_': str(REPO / 'tests/data/test_svsr_x4.yml'),
        'datasets': {'test_1': {'dataroot': str(sv)}},
        'path': {'pretrain_network_g': str(weights)}})
    run_entry('test.py', ['-opt', str(test_opt)], root=tmp_path)
    out = tmp_path / 'results/tiny_test_SVSR_x4'
    assert len(list((out / 'visualization/tiny_sv').glob('*.png'))) == 3
    log_text = next(out.glob('test_*.log')).read_text()
    assert '# psnr:' in log_text and '# ssim:' in log_text
