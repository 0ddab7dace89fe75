"""End-to-end: ``python ssr/train.py`` (20 iterations, checkpoints, exact auto-resume, torchrun on CPU)."""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import free_port, run_entry, write_options
from tests.test_entrypoints.tiny_options import tiny_train_options

LOSS_LINE = re.compile(r'iter:\s*([\d,]+).*?l_pix: ([-+.\deE]+)')


def logged_losses(text: str) -> dict[int, str]:
    return {int(m.group(1).replace(',', '')): m.group(2) for m in LOSS_LINE.finditer(text)}


def logged_epochs(text: str) -> dict[int, int]:
    lines = re.finditer(r'\[epoch:\s*(\d+), iter:\s*([\d,]+)', text)
    return {int(m.group(2).replace(',', '')): int(m.group(1)) for m in lines}


def train(tmp_path: Path, opt: dict, *extra: str, cwd: Path | None = None) -> str:
    path = write_options(tmp_path / f'{opt["name"]}.yml', opt)
    proc = run_entry('train.py', ['-opt', str(path), *extra], root=tmp_path, cwd=cwd)
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_train_writes_checkpoints_and_states(tmp_path, paired_folder):
    elsewhere = tmp_path / 'some' / 'other' / 'cwd'
    elsewhere.mkdir(parents=True)
    opt = tiny_train_options(paired_folder, 'tiny_train')
    opt['datasets']['val'] = {'name': 'tiny_val', 'type': 'PairedImageDataset', 'dataroot_gt': str(paired_folder / 'hr'),
                              'dataroot_lq': str(paired_folder / 'lr'), 'io_backend': {'type': 'disk'}}
    opt['val'] = {'val_freq': 10, 'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}}
    log = train(tmp_path, opt, cwd=elsewhere)
    assert set(logged_losses(log)) == set(range(1, 21))
    exp = tmp_path / 'experiments' / 'tiny_train'
    for it in ('10', '20', 'latest'):
        ckpt = torch.load(exp / 'models' / f'net_g_{it}.pth', map_location='cpu', weights_only=True)
        assert set(ckpt) == {'params', 'params_ema'}
        assert 'conv_first.weight' in ckpt['params']
    state = torch.load(exp / 'training_states' / '20.state', map_location='cpu', weights_only=True)
    assert state['iter'] == 20 and len(state['optimizers']) == 1 and 'rng' in state
    assert state['optimizers'][0]['param_groups'][0]['weight_decay'] == 0.0  # AdamW options reached the optimizer
    assert not list(exp.rglob('*.tmp')), 'atomic writes left temporary files'
    assert not (elsewhere / 'experiments').exists(), 'outputs must land under the root, not the working directory'
    # basicsr validates once more after its loop, labelled total_iter + 1; ssr labels it 20 and, when iteration 20
    # was validated already, skips it
    validations = re.findall(r'Best: [-\d.]+ @ (\d+) iter', log)
    assert validations == ['10', '20'], validations


@pytest.fixture(scope='module')
def reference_run(tmp_path_factory, paired_folder):
    root = tmp_path_factory.mktemp('reference')
    base = tiny_train_options(paired_folder, 'ref')
    # 4 images x enlarge 3 / batch 2 = 6 iterations per epoch
    base['datasets']['train']['dataset_enlarge_ratio'] = 3
    log = train(root, base)
    return base, logged_losses(log), logged_epochs(log), root / 'experiments/ref/models/net_g_20.pth'


@pytest.mark.slow
@pytest.mark.parametrize('stop, message', [
    (10, 'skipping its first 4 batches'),  # inside epoch 1
    (12, 'Epoch 1 ended at iteration 12: resuming at the start of epoch 2'),  # the last batch of epoch 1
    (1, 'skipping its first 1 batches'),  # the first iteration
])
def test_auto_resume_reproduces_uninterrupted_run(tmp_path, reference_run, stop, message):
    base, ref, ref_epochs, ref_weights = reference_run
    stopped = dict(base, name='resumed', train=dict(base['train'], total_iter=stop),
                   logger=dict(base['logger'], save_checkpoint_freq=stop))
    first = logged_losses(train(tmp_path, stopped))
    assert sorted(first) == list(range(1, stop + 1))
    resumed_log = train(tmp_path, dict(base, name='resumed'), '--auto_resume')
    resumed = logged_losses(resumed_log)
    assert message in resumed_log
    assert sorted(resumed) == list(range(stop + 1, 21))
    assert {i: ref[i] for i in range(stop + 1, 21)} == resumed
    assert logged_epochs(resumed_log) == {i: ref_epochs[i] for i in range(stop + 1, 21)}
    a = torch.load(ref_weights, weights_only=True)
    b = torch.load(tmp_path / 'experiments/resumed/models/net_g_20.pth', weights_only=True)
    for key in ('params', 'params_ema'):
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, rtol=0, atol=0, msg=f'{key}.{name}')


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, paired_folder):
    torchrun = shutil.which('torchrun', path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip('torchrun is not installed beside this python')
    opt = tiny_train_options(paired_folder, 'ddp', total_iter=4, save_freq=4)
    path = write_options(tmp_path / 'ddp.yml', opt)
    proc = run_entry('train.py', ['-opt', str(path), '--launcher', 'pytorch'], root=tmp_path,
                     launcher=[torchrun, '--nproc_per_node=2', f'--master_port={free_port()}'])
    log = proc.stdout + proc.stderr
    assert 'World size (gpu number): 2' in log
    assert set(logged_losses(log)) >= {1, 2, 3, 4}
    assert (tmp_path / 'experiments/ddp/models/net_g_4.pth').is_file()


@pytest.mark.slow
def test_torchrun_resume_restores_every_ranks_rng(tmp_path, paired_folder):
    torchrun = shutil.which('torchrun', path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip('torchrun is not installed beside this python')

    def ddp(opt: dict, *extra: str) -> str:
        path = write_options(tmp_path / f'{opt["name"]}_{opt["train"]["total_iter"]}.yml', opt)
        proc = run_entry('train.py', ['-opt', str(path), '--launcher', 'pytorch', *extra], root=tmp_path,
                         launcher=[torchrun, '--nproc_per_node=2', f'--master_port={free_port()}'])
        return proc.stdout + proc.stderr

    base = tiny_train_options(paired_folder, 'ddp_ref', total_iter=8, save_freq=3)
    base['datasets']['train']['dataset_enlarge_ratio'] = 3  # 12 samples / 2 ranks / batch 2 = 3 batches per epoch
    ref = logged_losses(ddp(base))
    cut = dict(base, name='ddp_cut', train=dict(base['train'], total_iter=4))
    ddp(cut)
    state = torch.load(tmp_path / 'experiments/ddp_cut/training_states/3.state', weights_only=True)
    assert len(state['rng_per_rank']) == 2
    assert not torch.equal(state['rng_per_rank'][0]['torch'], state['rng_per_rank'][1]['torch'])
    resumed = logged_losses(ddp(dict(base, name='ddp_cut'), '--auto_resume'))
    assert sorted(resumed) == list(range(4, 9))
    assert resumed == {i: ref[i] for i in range(4, 9)}
    a = torch.load(tmp_path / 'experiments/ddp_ref/models/net_g_latest.pth', weights_only=True)['params']
    b = torch.load(tmp_path / 'experiments/ddp_cut/models/net_g_latest.pth', weights_only=True)['params']
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=0, atol=0, msg=name)
