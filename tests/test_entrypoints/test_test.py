"""End-to-end: ``python ssr/test.py`` writes SR images and a metrics log; test options without weights fail."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ssr.utils.checkpoint import atomic_torch_save
from tests.conftest import REPO, run_entry, write_options
from tests.test_entrypoints.tiny_options import tiny_test_options


@pytest.fixture()
def tiny_weights(tmp_path):
    from basicsr.archs.rrdbnet_arch import RRDBNet

    torch.manual_seed(0)
    net = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    path = tmp_path / 'tiny_rrdb.pth'
    atomic_torch_save({'params': net.state_dict(), 'params_ema': net.state_dict()}, path)
    return path


@pytest.mark.slow
def test_test_writes_images_and_metric_log(tmp_path, paired_folder, tiny_weights):
    path = write_options(tmp_path / 'test.yml', tiny_test_options(paired_folder, 'tiny_test', tiny_weights))
    run_entry('test.py', ['--opt', str(path)], root=tmp_path)  # MANet-style --opt
    out = tmp_path / 'results' / 'tiny_test'
    images = sorted((out / 'visualization' / 'tiny').glob('*.png'))
    assert len(images) == 4
    logs = list(out.glob('test_tiny_test_*.log'))
    assert len(logs) == 1
    assert 'psnr:' in logs[0].read_text()


def test_test_without_weights_is_an_error(tmp_path, paired_folder, tiny_weights):
    opt = tiny_test_options(paired_folder, 'no_weights', tiny_weights)
    opt['path']['pretrain_network_g'] = None
    path = write_options(tmp_path / 'test.yml', opt)
    proc = subprocess.run([sys.executable, str(REPO / 'ssr' / 'test.py'), '-opt', str(path)], capture_output=True,
                          text=True, env={'SSR_ROOT': str(tmp_path), 'PATH': '/usr/bin:/bin'}, timeout=120)
    assert proc.returncode != 0
    assert 'path.pretrain_network_g' in proc.stderr and str(path) in proc.stderr
    assert not (tmp_path / 'results' / 'no_weights').exists()
