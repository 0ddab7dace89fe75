"""Each basicsr / torchvision compatibility fix applied by ``import ssr``."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import ssr  # noqa: F401
from ssr.utils.checkpoint import atomic_torch_save


def test_functional_tensor_alias_lets_basicsr_import():
    code = 'import ssr, basicsr.data.degradations as d; import torchvision.transforms.functional_tensor as f; ' \
           'print(f.rgb_to_grayscale is not None)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'True'


class _Model:
    """The few attributes of a basicsr model that the patched methods read."""

    def __init__(self, tmp_path):
        from basicsr.models.base_model import BaseModel

        self.model = BaseModel({'num_gpu': 0, 'is_train': True, 'dist': False,
                                'path': {'models': str(tmp_path / 'models'),
                                         'training_states': str(tmp_path / 'states')}})


@pytest.mark.parametrize('name', ['AdamW', 'SGD', 'Adam', 'RMSprop'])
def test_any_torch_optimizer(tmp_path, name):
    opt = _Model(tmp_path).model.get_optimizer(name, nn.Linear(2, 2).parameters(), 1e-3)
    assert type(opt).__name__ == name


def test_unknown_optimizer_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="'AdamV'.*AdamW"):
        _Model(tmp_path).model.get_optimizer('AdamV', nn.Linear(2, 2).parameters(), 1e-3)


def test_save_and_load_network_round_trip_weights_only(tmp_path):
    model = _Model(tmp_path).model
    net, other = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
    model.save_network([net, net], 'net_g', 7, param_key=['params', 'params_ema'])
    path = tmp_path / 'models' / 'net_g_7.pth'
    assert set(torch.load(path, weights_only=True)) == {'params', 'params_ema'}
    model.load_network(other, str(path), param_key='params_ema')
    torch.testing.assert_close(other.weight, net.weight)


def test_strict_load_reports_missing_unexpected_and_shape_together(tmp_path):
    model = _Model(tmp_path).model
    path = tmp_path / 'bad.pth'
    torch.save({'params': {'weight': torch.zeros(4, 3, 5, 5), 'extra': torch.zeros(1)}}, path)
    with pytest.raises(RuntimeError) as err:
        model.load_network(nn.Conv2d(3, 4, 3), str(path))
    msg = str(err.value)
    assert 'missing: bias' in msg and 'unexpected: extra' in msg and 'wrong shape: weight' in msg


def test_load_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / 'pickle.pth'
    torch.save({'params': {'w': torch.zeros(1)}, 'obj': _Model}, path)
    with pytest.raises(RuntimeError, match='weights_only=True'):
        _Model(tmp_path).model.load_network(nn.Linear(1, 1), str(path))


def test_training_state_carries_rng_and_restores_it(tmp_path):
    model = _Model(tmp_path).model
    model.optimizers = [torch.optim.AdamW(nn.Linear(2, 2).parameters(), 1e-3)]
    model.schedulers = []
    model.save_training_state(3, 40)
    expected = torch.rand(5)
    state = torch.load(tmp_path / 'states' / '40.state', weights_only=True)
    torch.rand(100)
    model.resume_training(state)
    torch.testing.assert_close(torch.rand(5), expected)


def test_atomic_save_never_leaves_a_truncated_file(tmp_path):
    """Kill a writer mid-save: the previous checkpoint survives intact and no partial .pth exists."""
    target = tmp_path / 'net.pth'
    atomic_torch_save({'w': torch.ones(3)}, target)
    script = textwrap.dedent(f'''
        import os, signal, torch
        import ssr.utils.checkpoint as c
        real_save = torch.save
        def slow_save(obj, f):
            f.write(b'partial bytes')
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        c.torch.save = slow_save
        c.atomic_torch_save({{'w': torch.zeros(10 ** 6)}}, {str(target)!r})
    ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    torch.testing.assert_close(torch.load(target, weights_only=True)['w'], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir() if p.suffix == '.pth'] == ['net.pth']


def test_ddp_wrap_on_cpu(tmp_path):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT='29617')
    dist.init_process_group('gloo', rank=0, world_size=1)
    try:
        model = _Model(tmp_path).model
        model.opt['dist'] = True
        wrapped = model.model_to_device(nn.Linear(2, 2))
        assert isinstance(wrapped, nn.parallel.DistributedDataParallel)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('argv', [['-opt', 'x.yml'], ['--opt', 'x.yml']], ids=['basicsr', 'manet'])
def test_opt_flag_spellings(argv):
    from ssr.utils.options import build_parser

    assert build_parser().parse_args(argv).opt == 'x.yml'


@pytest.mark.parametrize('argv', [['--local-rank=3'], ['--local_rank', '3']], ids=['torch2', 'torch1'])
def test_local_rank_spellings(argv):
    from ssr.utils.options import build_parser

    assert build_parser().parse_args(['-opt', 'x.yml', *argv]).local_rank == 3


def test_local_rank_from_environment(monkeypatch):
    from ssr.utils.options import build_parser

    monkeypatch.setenv('LOCAL_RANK', '5')
    assert build_parser().parse_args(['-opt', 'x.yml']).local_rank == 5


def test_resume_state_found_under_root_on_cpu(tmp_path, monkeypatch):
    from ssr.utils.resume import load_resume_state

    states = tmp_path / 'root' / 'experiments' / 'exp' / 'training_states'
    states.mkdir(parents=True)
    for it in (5, 40, 9):
        atomic_torch_save({'epoch': 0, 'iter': it, 'optimizers': [], 'schedulers': []}, states / f'{it}.state')
    monkeypatch.chdir(tmp_path)  # not the root: basicsr would look in ./experiments
    opt = {'auto_resume': True, 'name': 'exp',
           'path': {'training_states': str(states), 'models': str(states.parent / 'models'), 'resume_state': None}}
    state = load_resume_state(opt)
    assert state['iter'] == 40
    assert opt['path']['resume_state'] == str(states / '40.state')
