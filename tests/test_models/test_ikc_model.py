"""IKCModel: IKC's SFTMD stage (true codes, PCA fitted at the start) and its Predictor / Corrector stage (SFTMD frozen,
the Corrector stepping once per correction round)."""
from __future__ import annotations

import copy

import pytest
import torch
from basicsr.models import build_model

from ssr.archs.ikc_arch import SFTMD, IKCNet
from ssr.ops.dcls_degradation import dcls_random_kernels
from ssr.ops.ikc_pca import fit_ikc_pca, ikc_codes

ADAM = {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]}
CONSTANT = {'type': 'MultiStepLR', 'milestones': [], 'gamma': 0.5}


def _opt(tmp_path, network: dict, train: dict) -> dict:
    (tmp_path / 'models').mkdir(exist_ok=True)
    return {'name': 'ikc', 'model_type': 'IKCModel', 'scale': 4, 'num_gpu': 0, 'is_train': True, 'dist': False,
            'rank': 0, 'world_size': 1, 'manual_seed': 3, 'network_g': network, 'datasets': {},
            'path': {'experiments_root': str(tmp_path), 'models': str(tmp_path / 'models'),
                     'training_states': str(tmp_path)},
            'train': {'scheduler': CONSTANT, 'total_iter': 2, 'warmup_iter': -1, **train}}


def _batch(k=11, n=2):
    g = torch.Generator().manual_seed(0)
    return {'lq': torch.rand(n, 3, 8, 8, generator=g), 'gt': torch.rand(n, 3, 32, 32, generator=g),
            'kernel_hr': dcls_random_kernels(n, k, 0.5, 2.0, generator=g)[:, None]}


def test_sftmd_stage_fits_the_pca_as_ikc_and_trains_on_true_codes(tmp_path):
    fit = {'num_kernels': 200, 'kernel_size': 11, 'sig_min': 0.5, 'sig_max': 2.0}
    opt = _opt(tmp_path, {'type': 'SFTMD', 'code_len': 4, 'nb': 1},
               {'optim_g': ADAM, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}, 'pca_fit': fit})
    model = build_model(opt)
    # the basis train_SFTMD.py fits: random isotropic kernels (seeded by manual_seed), saved beside the run
    kernels = dcls_random_kernels(200, 11, 0.5, 2.0, generator=torch.Generator().manual_seed(3))
    expected = fit_ikc_pca(kernels, 4)
    assert torch.equal(model.pca, expected) and torch.equal(torch.load(tmp_path / 'pca_matrix.pth'), expected)
    batch = _batch()
    model.feed_data(batch)
    assert torch.allclose(model.code, ikc_codes(batch['kernel_hr'], expected))
    before = copy.deepcopy(model.net_g.state_dict())
    model.optimize_parameters(1)
    assert 'l_pix' in model.log_dict
    after = model.net_g.state_dict()
    assert not torch.equal(before['conv1.weight'], after['conv1.weight'])
    assert torch.equal(before['sft_branch.0.conv1.weight'], after['sft_branch.0.conv1.weight'])  # unused, frozen
    model.test()  # non-blind validation: the true code
    assert model.output.shape == (2, 3, 32, 32)


def test_correction_stage_keeps_sftmd_and_steps_the_corrector_each_round(tmp_path):
    torch.manual_seed(0)
    sftmd = SFTMD(code_len=4, nb=1)
    torch.save(sftmd.state_dict(), tmp_path / 'sftmd.pth')
    pca = fit_ikc_pca(dcls_random_kernels(100, 11, 0.5, 2.0, generator=torch.Generator().manual_seed(1)), 4)
    torch.save(pca, tmp_path / 'pca_matrix.pth')
    network = {'type': 'IKCNet', 'code_len': 4, 'nb': 1, 'nf': 8, 'steps': 3, 'sftmd_path': str(tmp_path / 'sftmd.pth')}
    mse = {'type': 'MSELoss', 'loss_weight': 1.0}
    opt = _opt(tmp_path, network, {'optim_g': ADAM, 'optim_c': {**ADAM, 'lr': 5e-4}, 'code_opt': mse,
                                   'corrector_code_opt': mse})
    opt['pca_matrix_path'] = str(tmp_path / 'pca_matrix.pth')
    model = build_model(opt)
    net = model.get_bare_model(model.net_g)
    assert isinstance(net, IKCNet) and [g['lr'] for o in model.optimizers for g in o.param_groups] == [1e-3, 5e-4]
    model.feed_data(_batch())
    before = copy.deepcopy(net.state_dict())
    model.optimize_parameters(1)
    after = net.state_dict()
    assert set(model.log_dict) == {'l_code', 'l_code_c'}
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith('SFTMD.'))  # frozen
    assert not torch.equal(before['Predictor.ConvNet.0.weight'], after['Predictor.ConvNet.0.weight'])
    assert not torch.equal(before['Corrector.ConvNet.0.weight'], after['Corrector.ConvNet.0.weight'])
    steps = [o.state_dict()['state'][0]['step'].item() for o in model.optimizers]
    assert steps == [1, 3]  # one Predictor step, one Corrector step per round (train_IKC.py)
    model.test()  # blind: IKCNet's last round
    assert model.output.shape == (2, 3, 32, 32) and model.code_est.shape == (2, 4)


@pytest.mark.parametrize('drop, message', [('pca_matrix_path', 'pca_matrix_path is required'),
                                           ('optim_c', 'optim_c is required'),
                                           ('corrector_code_opt', 'corrector_code_opt is required')])
def test_correction_stage_settings_are_required(tmp_path, drop, message):
    torch.save(fit_ikc_pca(torch.rand(20, 121), 4), tmp_path / 'pca_matrix.pth')
    mse = {'type': 'MSELoss', 'loss_weight': 1.0}
    train = {'optim_g': ADAM, 'optim_c': ADAM, 'code_opt': mse, 'corrector_code_opt': mse}
    opt = _opt(tmp_path, {'type': 'IKCNet', 'code_len': 4, 'nb': 1, 'nf': 8, 'steps': 1}, train)
    opt['pca_matrix_path'] = str(tmp_path / 'pca_matrix.pth')
    (opt if drop == 'pca_matrix_path' else opt['train']).pop(drop)
    with pytest.raises(ValueError, match=message):
        build_model(opt)
