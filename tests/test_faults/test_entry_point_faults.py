"""Fault cases of ``ssr/train.py`` / ``ssr/test.py`` (issue 16): one-line errors with exit code 2, no training on
NaN and no non-finite checkpoint (BasicSR's SRModel included), nothing left behind, stray ``.tmp`` files removed,
Ctrl-C as one line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, write_options
from tests.test_entrypoints.tiny_options import tiny_test_options, tiny_train_options


def run(script: str, args: list[str], root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, SSR_ROOT=str(root), PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, str(REPO / 'ssr' / script)] + args, cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    return lines


@pytest.mark.parametrize('script', ['train.py', 'test.py'])
def test_missing_option_file_is_one_line(tmp_path, script):
    proc = run(script, ['-opt', str(tmp_path / 'absent.yml')], tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc)[0] == f"error: option file '{tmp_path / 'absent.yml'}' does not exist"


def test_debug_shows_the_traceback(tmp_path):
    proc = run('test.py', ['-opt', str(tmp_path / 'absent.yml'), '--debug'], tmp_path)
    assert proc.returncode != 0 and 'Traceback' in proc.stderr


def test_failed_test_run_leaves_no_results_folder(tmp_path, paired_folder):
    opt = tiny_test_options(paired_folder, 'fails', tmp_path / 'absent.pth')
    proc = run('test.py', ['-opt', str(write_options(tmp_path / 'o.yml', opt))], tmp_path)
    assert proc.returncode == 2 and 'absent.pth' in error_lines(proc)[0]
    assert not (tmp_path / 'results' / 'fails').exists()


def _nan_run(tmp_path, paired_folder, model_type: str, lr: float, save_freq: int):
    opt = tiny_train_options(paired_folder, 'explodes', total_iter=6, save_freq=save_freq)
    opt['model_type'] = model_type
    opt['train']['optim_g'] = {'type': 'Adam', 'lr': lr, 'betas': [0.9, 0.99]}
    opt['train'].pop('ema_decay')
    return run('train.py', ['-opt', str(write_options(tmp_path / 'o.yml', opt))], tmp_path)


@pytest.mark.parametrize('model_type', ['SRModel', 'SVSRModel'])  # BasicSR's own and ssr's
def test_non_finite_weights_are_never_saved(tmp_path, paired_folder, model_type):
    # lr = inf: the first step makes every weight non-finite while its loss was finite
    proc = _nan_run(tmp_path, paired_folder, model_type, float('inf'), save_freq=1)
    assert proc.returncode == 2
    line = error_lines(proc)[0]
    assert 'iteration 1' in line and 'nothing was saved' in line and 'no training state was saved yet' in line
    assert not (tmp_path / 'experiments' / 'explodes').exists()  # failed before its first checkpoint


def test_basicsr_srmodel_stops_at_a_non_finite_loss(tmp_path, paired_folder):
    # lr = 1e30: the weights stay finite after step 1 (saved), the loss of iteration 2 is not
    proc = _nan_run(tmp_path, paired_folder, 'SRModel', 1e30, save_freq=1)
    assert proc.returncode == 2
    line = error_lines(proc)[0]
    assert 'non-finite' in line and 'training_states/1.state' in line, line
    models = tmp_path / 'experiments' / 'explodes' / 'models'
    for path in models.glob('*.pth'):
        for key, state in torch.load(path, weights_only=True).items():
            assert all(bool(torch.isfinite(v).all()) for v in state.values()), (path, key)


def test_stray_tmp_files_are_removed_at_the_next_start(tmp_path, paired_folder):
    opt = tiny_train_options(paired_folder, 'tmpclean', total_iter=2, save_freq=2)
    stray = tmp_path / 'experiments' / 'tmpclean' / 'training_states' / '.2.state.abc123.tmp'
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b'half a checkpoint')
    proc = run('train.py', ['-opt', str(write_options(tmp_path / 'o.yml', opt)), '--auto_resume'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not stray.exists() and (stray.parent / '2.state').is_file()
