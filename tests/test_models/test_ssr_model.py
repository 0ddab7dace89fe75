"""SSRModel on a tiny AMFUNet: overfitting (Eq. 5), the regulariser, seeded sampling, save/load; plus the samplers."""
from __future__ import annotations

import copy

import pytest
import torch

from ssr.models.ssr_model import SSRModel
from ssr.pipelines.sampling import build_scheduler, diffusion_config, sample_latents

K = 5  # kernel size of the tiny data
TINY_UNET = {'type': 'AMFUNet', 'latent_channels': 48, 'block_out_channels': [8, 16], 'layers_per_block': 1,
             'norm_num_groups': 4, 'attention_head_dim': 8, 'amf_hidden': 8, 'kernel_in_ch': K * K,
             'lr_encoder_channels': [8, 8], 'depth_encoder_channels': [4, 4], 'kernel_encoder_channels': [4, 4]}


def tiny_opt(is_train: bool = True, **overrides) -> dict:
    opt = {
        'name': 'tiny_ssr', 'model_type': 'SSRModel', 'scale': 4, 'num_gpu': 0, 'is_train': is_train, 'dist': False,
        'rank': 0, 'world_size': 1, 'manual_seed': 0, 'datasets': {},
        'first_stage': {'kind': 'pixel_unshuffle', 'factor': 4},
        'diffusion': {'num_train_timesteps': 1000, 'beta_schedule': 'scaled_linear', 'beta_start': 0.0015,
                      'beta_end': 0.0155, 'prediction_type': 'epsilon'},
        'conditions': {'source': 'data'}, 'sampler': {'kind': 'ddim', 'steps': 3, 'seed': 0},
        'network_g': dict(TINY_UNET), 'path': {'pretrain_network_g': None, 'strict_load_g': True},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'AdamW', 'lr': 2e-3, 'weight_decay': 0},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5}, 'grad_clip': 1.0,
                  'reg_weights': [1e-4, 1e-4, 1e-4]},
    }
    for key, value in overrides.items():
        opt[key] = {**opt.get(key, {}), **value} if isinstance(value, dict) else value
    return opt


def batch(seed: int = 0, size: int = 8) -> dict:
    """One fixed batch: smooth HR (B, 3, 4 * size, 4 * size), its LR, a kernel field (sums to 1) and depth."""
    g = torch.Generator().manual_seed(seed)
    gt = torch.nn.functional.interpolate(torch.rand(2, 3, size, size, generator=g), scale_factor=4, mode='bilinear')
    kernel = torch.rand(2, K * K, size, size, generator=g)
    return {'gt': gt, 'lq': gt[..., ::4, ::4].clone(), 'kernel': kernel / kernel.sum(1, keepdim=True),
            'depth': torch.rand(2, 1, 4 * size, 4 * size, generator=g)}


def build(opt: dict) -> SSRModel:
    torch.manual_seed(0)
    return SSRModel(copy.deepcopy(opt))


def test_overfits_one_fixed_batch():
    """l_eps falls by more than half within 150 iterations on one batch.

    The same ``current_iter`` is passed every step, so t and eps (seeded by ``(manual_seed, current_iter)``) are fixed
    too: the criterion measures fitting one (z_t, t, eps) triple, not the irreducible variance of random t / eps.
    """
    model = build(tiny_opt())
    model.feed_data(batch())
    losses = []
    for _ in range(150):
        model.optimize_parameters(current_iter=1)
        losses.append(model.get_current_log()['l_eps'])
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, (losses[:5], losses[-5:])
    assert model.get_current_log()['l_reg'] > 0


@pytest.mark.parametrize('weights, factor', [([0.0, 0.0, 0.0], 0.0), ([2e-4, 2e-4, 2e-4], 2.0)],
                         ids=['lambda_zero', 'lambda_doubled'])
def test_regulariser_scales_with_lambda(weights, factor):
    data = batch()
    logs = []
    for w in ([1e-4, 1e-4, 1e-4], weights):
        model = build(tiny_opt(train={'reg_weights': w}))
        model.feed_data(data)
        model.optimize_parameters(current_iter=1)
        logs.append(model.get_current_log())
    assert logs[0]['l_reg'] > 0
    assert logs[1]['l_reg'] == pytest.approx(factor * logs[0]['l_reg'], rel=1e-5)
    assert logs[1]['l_eps'] == pytest.approx(logs[0]['l_eps'], rel=1e-6)  # same init, t and eps


def test_rejects_bad_options():
    with pytest.raises(ValueError, match='network_e'):
        build(tiny_opt(conditions={'source': 'svkr'}))
    with pytest.raises(ValueError, match='nbsr'):
        build(tiny_opt(sampler={'start_step': 1, 'start_from': 'nbsr'}))
    with pytest.raises(ValueError, match='euler'):
        build(tiny_opt(sampler={'kind': 'euler'}))
    with pytest.raises(ValueError, match='latent_channels'):
        build(tiny_opt(network_g={'latent_channels': 4}))


def sample(model: SSRModel, data: dict, seed: int) -> torch.Tensor:
    net = model.get_bare_model(model.net_g).eval()
    return model.sample(net, data['lq'], data['kernel'], data['depth'], torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('kind', ['ddim', 'dpmsolver++'])
def test_sampling_is_seeded(kind):
    model = build(tiny_opt(is_train=False, sampler={'kind': kind}))
    data = batch(size=6)  # LR 6 px: padded to 8 for the two-level UNet, cropped back
    a, b, c = sample(model, data, 0), sample(model, data, 0), sample(model, data, 1)
    assert a.shape == (2, 3, 24, 24) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_test_uses_the_configured_seed():
    model = build(tiny_opt(is_train=False))
    model.feed_data(batch())
    model.test()
    first = model.output.clone()
    model.test()
    assert torch.equal(first, model.output)


def test_save_load_round_trip_gives_identical_samples(tmp_path):
    trained = build(tiny_opt(path={'models': str(tmp_path)}))
    trained.feed_data(batch())
    for it in range(3):  # moves the weights and the AMF BatchNorm statistics away from their initial values
        trained.optimize_parameters(current_iter=it)
    trained.save_network(trained.net_g, 'net_g', 'latest')  # BasicSR: {'params': ...}
    loaded = build(tiny_opt(is_train=False, path={'pretrain_network_g': str(tmp_path / 'net_g_latest.pth')}))
    data = batch(seed=3)
    torch.testing.assert_close(sample(loaded, data, 0), sample(trained, data, 0), rtol=0, atol=0)


def test_sampler_starts_from_a_noised_latent():
    """With start_step the result depends on the start latent; start_step must index the N sampling steps."""
    cfg = diffusion_config(None)
    z_lr = torch.zeros(1, 4, 4, 4)

    def unet(z_t, t, z_lr, features):
        return type('Out', (), {'sample': 0.1 * z_t})()

    def run(start_latent, start_step):
        return sample_latents(unet, z_lr, [], (1, 4, 4, 4), build_scheduler('ddim', cfg, 5),
                              torch.Generator().manual_seed(0), start_latent, start_step)

    a, b = run(torch.zeros(1, 4, 4, 4), 2), run(torch.ones(1, 4, 4, 4), 2)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match='start_step'):
        run(torch.zeros(1, 4, 4, 4), 5)


@pytest.mark.parametrize('kind, steps, match', [('ddim', 0, 'steps'), ('ddim', 1001, 'steps'), ('heun', 5, 'heun')],
                         ids=['zero_steps', 'too_many_steps', 'unknown_kind'])
def test_build_scheduler_rejects(kind, steps, match):
    with pytest.raises(ValueError, match=match):
        build_scheduler(kind, diffusion_config(None), steps)


@pytest.mark.parametrize('kind', ['ddim', 'dpmsolver++'])
def test_build_scheduler_steps(kind):
    scheduler = build_scheduler(kind, {'beta_schedule': 'linear', 'beta_start': 1e-4, 'beta_end': 0.02}, 20)
    assert len(scheduler.timesteps) == 20 and int(scheduler.timesteps[0]) == 999


SVKR_NETS = {'network_e': {'type': 'DKENet', 'num_feat': 8, 'kernel_size': K},
             'network_sr': {'type': 'NBSR', 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'kernel_size': K,
                            'pca_components': 6, 'sft_hidden_ch': 8}}


@pytest.mark.parametrize('depth', ['file', 'none'])
def test_svkr_conditions_train_and_sample_from_the_nbsr_output(depth):
    """conditions.source: svkr feeds frozen DKENet + NBSR estimates; sampling may start from the noised NBSR output."""
    model = build(tiny_opt(conditions={'source': 'svkr', 'iterations': 1, 'depth': depth},
                           sampler={'start_step': 1, 'start_from': 'nbsr'}, **SVKR_NETS))
    frozen = {k: v.clone() for k, v in model.net_e.state_dict().items()}
    data = batch()
    model.feed_data({k: v for k, v in data.items() if k != 'kernel'})  # the data's kernel is not needed
    model.optimize_parameters(current_iter=1)
    assert model.get_current_log()['l_eps'] > 0
    assert all(torch.equal(v, model.net_e.state_dict()[k]) for k, v in frozen.items())
    model.test()
    first = model.output.clone()
    model.test()
    assert first.shape == (2, 3, 32, 32) and torch.equal(first, model.output)


def test_validation_with_svkr_reports_and_saves_the_blind_path(tmp_path):
    """With svkr conditions, validation scores I^T with val.metrics, K^T against the data's kernels, and saves I^T."""
    import numpy as np
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img

    opt = tiny_opt(is_train=False, conditions={'source': 'svkr', 'iterations': 1, 'depth': 'file'},
                   sampler={'start_step': 1, 'start_from': 'nbsr'}, **SVKR_NETS)
    opt['path'].update(visualization=str(tmp_path))
    opt['val'] = {'suffix': None, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}
    model = build(opt)
    data = batch()
    samples = [{k: v[i:i + 1] for k, v in data.items()} | {'lq_path': [f'img{i}.png']} for i in range(2)]

    class Loader(list):
        dataset = type('D', (), {'opt': {'name': 'tiny'}})()

    model.validation(Loader(samples), current_iter=0, tb_logger=None, save_img=True)
    expected = []
    for sample in samples:
        model.feed_data(sample)
        sr = model.conditions(model.lq)[2]
        expected.append(calculate_psnr(tensor2img([sr]), tensor2img([sample['gt']]), crop_border=0))
    assert model.blind_metric_results['psnr'] == pytest.approx(np.mean(expected), rel=1e-6)
    assert set(model.kernel_metric_results) == {'kernel_mse', 'kernel_psnr'}
    assert model.metric_results['psnr'] != pytest.approx(model.blind_metric_results['psnr'])
    saved = sorted(p.name for p in (tmp_path / 'tiny').glob('*.png'))
    assert saved == ['img0_tiny_ssr.png', 'img0_tiny_ssr_blind.png', 'img1_tiny_ssr.png', 'img1_tiny_ssr_blind.png']
    assert model._val_state is None  # test() outside validation scores nothing


def test_validation_with_data_conditions_has_no_blind_path():
    opt = tiny_opt(is_train=False)
    opt['val'] = {'suffix': None, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}
    opt['path'].update(visualization='unused')
    model = build(opt)

    class Loader(list):
        dataset = type('D', (), {'opt': {'name': 'tiny'}})()

    one = {k: v[:1] for k, v in batch().items()} | {'lq_path': ['a.png']}
    model.validation(Loader([one]), current_iter=0, tb_logger=None, save_img=False)
    assert model.blind_metric_results is None and model.kernel_metric_results is None
    assert 0 < model.metric_results['psnr'] < 100


@pytest.mark.parametrize('kind', ['v_prediction', 'sample'])
def test_other_prediction_types_regress_their_target_and_sample(kind):
    """diffusion.prediction_type: the loss target is v / z_0 (diffusers' definitions) and sampling reads the type."""
    from ssr.pipelines.sampling import build_train_scheduler

    opt = tiny_opt()
    opt['diffusion']['prediction_type'] = kind
    model = build(opt)
    model.feed_data(batch())
    z0 = model.first_stage.encode(model.gt)
    eps, t = torch.randn(z0.shape), torch.tensor([10, 900])
    expected = build_train_scheduler(model.diffusion).get_velocity(z0, eps, t) if kind == 'v_prediction' else z0
    torch.testing.assert_close(model._target(z0, eps, t), expected)
    model.optimize_parameters(current_iter=1)
    assert model.get_current_log()['l_eps'] > 0
    assert build_scheduler('ddim', model.diffusion, 3).config.prediction_type == kind
    model.test()
    assert model.output.shape == model.gt.shape


def test_unknown_prediction_type_is_an_error():
    with pytest.raises(ValueError, match='prediction_type'):
        diffusion_config({'prediction_type': 'x0'})
