"""SVBaseModel, the shared base of ssr's models: optimizers, CPU DDP, atomic checkpoints, strict loads, exact resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from ssr.models.base_model import SVBaseModel
from ssr.utils.checkpoint import atomic_torch_save
from tests.conftest import REPO, free_port

TINY_RRDB = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4, 'num_block': 1, 'num_grow_ch': 4,
             'scale': 4}
SSR_MODELS = ('SVSRModel', 'KernelEstimatorModel', 'NonBlindSRModel', 'BlindSRModel', 'SSRModel')


def _model(tmp_path, **opt) -> SVBaseModel:
    """A test-mode SVBaseModel around a tiny RRDBNet, writing under ``tmp_path``."""
    return SVBaseModel({'num_gpu': 0, 'is_train': False, 'dist': False, 'network_g': dict(TINY_RRDB),
                        'path': {'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states')},
                        **opt})


@pytest.mark.parametrize('name', SSR_MODELS)
def test_every_ssr_model_shares_the_base(name):
    from basicsr.utils.registry import MODEL_REGISTRY

    assert issubclass(MODEL_REGISTRY.get(name), SVBaseModel)


@pytest.mark.parametrize('name', ['AdamW', 'SGD', 'Adam', 'RMSprop'])
def test_any_torch_optimizer(tmp_path, name):
    opt = _model(tmp_path).get_optimizer(name, nn.Linear(2, 2).parameters(), 1e-3)
    assert type(opt).__name__ == name


def test_unknown_optimizer_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="'AdamV'.*AdamW"):
        _model(tmp_path).get_optimizer('AdamV', nn.Linear(2, 2).parameters(), 1e-3)


def test_save_and_load_network_round_trip_weights_only(tmp_path):
    model = _model(tmp_path)
    net, other = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
    model.save_network([net, net], 'net_g', 7, param_key=['params', 'params_ema'])
    path = tmp_path / 'models' / 'net_g_7.pth'
    assert set(torch.load(path, weights_only=True)) == {'params', 'params_ema'}
    model.load_network(other, str(path), param_key='params_ema')
    torch.testing.assert_close(other.weight, net.weight)


def test_strict_load_reports_missing_unexpected_and_shape_together(tmp_path):
    model = _model(tmp_path)
    path = tmp_path / 'bad.pth'
    torch.save({'params': {'weight': torch.zeros(4, 3, 5, 5), 'extra': torch.zeros(1)}}, path)
    with pytest.raises(RuntimeError) as err:
        model.load_network(nn.Conv2d(3, 4, 3), str(path))
    msg = str(err.value)
    assert 'missing: bias' in msg and 'unexpected: extra' in msg and 'wrong shape: weight' in msg


class _Pickled:
    pass


def test_load_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / 'pickle.pth'
    torch.save({'params': {'w': torch.zeros(1)}, 'obj': _Pickled}, path)
    with pytest.raises(RuntimeError, match='weights_only=True'):
        _model(tmp_path).load_network(nn.Linear(1, 1), str(path))


def test_training_state_carries_rng_and_restores_it(tmp_path):
    model = _model(tmp_path)
    model.optimizers = [torch.optim.AdamW(nn.Linear(2, 2).parameters(), 1e-3)]
    model.schedulers = []
    model.save_training_state(3, 40)
    expected = torch.rand(5)
    state = torch.load(tmp_path / 'states' / '40.state', weights_only=True)
    torch.rand(100)
    model.resume_training(state)
    torch.testing.assert_close(torch.rand(5), expected)


def test_training_state_carries_the_ema_network(tmp_path):
    model = _model(tmp_path)
    model.optimizers, model.schedulers = [], []
    model.net_g_ema = nn.Linear(2, 2)
    saved = {k: v.clone() for k, v in model.net_g_ema.state_dict().items()}
    model.save_training_state(0, 10)
    with torch.no_grad():
        model.net_g_ema.weight.add_(1)
    model.resume_training(torch.load(tmp_path / 'states' / '10.state', weights_only=True))
    torch.testing.assert_close(model.net_g_ema.state_dict(), saved)


def test_resume_with_another_number_of_optimizers_names_the_cause(tmp_path):
    model = _model(tmp_path)
    model.optimizers, model.schedulers = [], []
    with pytest.raises(ValueError, match='1 optimizers, the model 0: the option file changed'):
        model.resume_training({'optimizers': [{}], 'schedulers': []})


def test_atomic_save_never_leaves_a_truncated_file(tmp_path):
    """Kill a writer mid-save: the previous checkpoint survives intact and no partial .pth exists."""
    target = tmp_path / 'net.pth'
    atomic_torch_save({'w': torch.ones(3)}, target)
    script = textwrap.dedent(f'''
        import os, signal, torch
        import ssr.utils.checkpoint as c
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

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    dist.init_process_group('gloo', rank=0, world_size=1)
    try:
        model = _model(tmp_path)
        model.opt['dist'] = True
        wrapped = model.model_to_device(nn.Linear(2, 2))
        assert isinstance(wrapped, nn.parallel.DistributedDataParallel)
    finally:
        dist.destroy_process_group()


def test_pretrained_estimator_ema_starts_from_params_ema(tmp_path):
    """KernelEstimatorModel's EMA network loads ``params_ema`` of ``path.pretrain_network_g`` (not a copy of net_g)."""
    from basicsr.archs import build_network
    from basicsr.models import build_model

    from ssr.utils.options import load_yaml

    opt = load_yaml(REPO / 'tests/data/train_dkenet_x4.yml')
    torch.manual_seed(0)
    params, params_ema = build_network(opt['network_g']).state_dict(), build_network(opt['network_g']).state_dict()
    weights = tmp_path / 'dkenet.pth'
    atomic_torch_save({'params': params, 'params_ema': params_ema}, weights)
    opt.update(dist=False, rank=0, world_size=1, is_train=True, num_gpu=0)
    opt['path'].update(pretrain_network_g=str(weights), models=str(tmp_path), training_states=str(tmp_path))
    model = build_model(opt)
    assert model.ema_decay > 0
    torch.testing.assert_close(model.get_bare_model(model.net_g).state_dict(), params, rtol=0, atol=0)
    torch.testing.assert_close(model.net_g_ema.state_dict(), params_ema, rtol=0, atol=0)
