"""Kernel-consistent sampling (``sampler.consistency``): the option block and its errors, the x0 <-> model-output
conversions for every prediction type and sampler, and the tiny pipelines with the correction on: their output agrees
better with the LR under the kernel field (the data's, or SVKR's K^T in SSRModel.test)."""
from __future__ import annotations

import pytest
import torch
from basicsr.models import build_model

from ssr.ops.consistency import lr_residual
from ssr.pipelines import SSRPipeline
from ssr.pipelines.sampling import (ConsistencyConfig, SamplerConfig, build_scheduler, model_output_from_x0,
                                    predicted_x0, sample_latents)
from ssr.utils.options import inference_options
from tests.conftest import write_options
from tests.test_models.test_ssr_model import batch, tiny_opt
from tests.test_pipelines.test_ssr_pipeline import TWIN, _save_weights

DIFFUSION = {'num_train_timesteps': 1000, 'beta_schedule': 'scaled_linear', 'beta_start': 0.0015, 'beta_end': 0.0155}


# --- options ------------------------------------------------------------------------------------------------------
def test_consistency_is_off_by_default():
    assert SamplerConfig.from_options({'steps': 5}).consistency is None
    assert SamplerConfig.from_options({'steps': 5, 'consistency': None}).consistency is None


def test_consistency_defaults_and_values():
    cfg = SamplerConfig.from_options({'steps': 5, 'consistency': {}}).consistency
    assert cfg == ConsistencyConfig(steps='final', k=None, iters=10, weight=1e-3, sigma='auto', tau=1.0)
    cfg = ConsistencyConfig.from_options({'steps': 'last_k', 'k': 2, 'iters': 4, 'weight': 0, 'sigma': 0.01,
                                          'tau': 1.2})
    assert (cfg.steps, cfg.k, cfg.iters, cfg.weight, cfg.sigma, cfg.tau) == ('last_k', 2, 4, 0.0, 0.01, 1.2)
    assert ConsistencyConfig.from_options({'sigma': None}).sigma is None


@pytest.mark.parametrize('block, match', [
    ({'step': 'all'}, r'sampler\.consistency\.step: unknown key'),
    ({'steps': 'first'}, r'sampler\.consistency\.steps .first. not in'),
    ({'steps': 'last_k'}, r'sampler\.consistency\.k is required with steps: last_k'),
    ({'steps': 'last_k', 'k': 0}, r'sampler\.consistency\.k must be an int >= 1'),
    ({'steps': 'all', 'k': 2}, r'sampler\.consistency\.k is read only with steps: last_k'),
    ({'iters': 0}, r'sampler\.consistency\.iters must be an int >= 1'),
    ({'iters': 2.5}, r'sampler\.consistency\.iters must be an int >= 1'),
    ({'iters': True}, r'sampler\.consistency\.iters must be an int >= 1'),
    ({'weight': -0.1}, r'sampler\.consistency\.weight must be a number >= 0'),
    ({'weight': 'big'}, r'sampler\.consistency\.weight must be a number >= 0'),
    ({'sigma': 'mad'}, r"sampler\.consistency\.sigma must be a number >= 0, 'auto' or null"),
    ({'sigma': -1}, r'sampler\.consistency\.sigma must be a number >= 0'),
    ({'tau': 0}, r'sampler\.consistency\.tau must be a number > 0'),
    ([1, 2], r'sampler\.consistency must be a mapping'),
])
def test_bad_consistency_options_name_the_key(block, match):
    with pytest.raises(ValueError, match=match):
        SamplerConfig.from_options({'steps': 5, 'consistency': block})


def test_step_indices():
    assert ConsistencyConfig(steps='final').step_indices(0, 5) == {4}
    assert ConsistencyConfig(steps='last_k', k=2).step_indices(0, 5) == {3, 4}
    assert ConsistencyConfig(steps='last_k', k=9).step_indices(3, 5) == {3, 4}  # only the steps that run
    assert ConsistencyConfig(steps='all').step_indices(2, 5) == {2, 3, 4}


# --- conversions --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('prediction_type', ['epsilon', 'v_prediction', 'sample'])
def test_x0_conversions_invert_and_match_ddim(prediction_type):
    scheduler = build_scheduler('ddim', {**DIFFUSION, 'prediction_type': prediction_type}, 10)
    g = torch.Generator().manual_seed(0)
    sample, out = torch.randn(2, 4, 6, 6, generator=g), torch.randn(2, 4, 6, 6, generator=g)
    t = scheduler.timesteps[3]
    x0 = predicted_x0(scheduler, out, t, sample)
    expected = scheduler.step(out, t, sample).pred_original_sample
    torch.testing.assert_close(x0, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model_output_from_x0(scheduler, x0, t, sample), out, rtol=1e-4, atol=1e-4)


class _Denoiser(torch.nn.Module):
    """A fixed smooth function of (z_t, t), standing in for the AMF-UNet."""

    def forward(self, z, t, z_lr, features=None):
        return type('Out', (), {'sample': torch.tanh(0.5 * z + 0.1 * z_lr) * (1 + t.float() / 1000)})()


@pytest.mark.parametrize('kind', ['ddim', 'dpmsolver++'])
@pytest.mark.parametrize('prediction_type', ['epsilon', 'v_prediction', 'sample'])
def test_identity_correction_leaves_the_sampler_unchanged(kind, prediction_type):
    """Stepping with the output recomputed from an unchanged x0 is the plain sampler, for every parameterisation."""
    diffusion = {**DIFFUSION, 'prediction_type': prediction_type}
    z_lr = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = []

    def identity(x0):
        seen.append(x0)
        return x0

    runs = [sample_latents(_Denoiser(), z_lr, [], (1, 4, 8, 8), build_scheduler(kind, diffusion, 6),
                           torch.Generator().manual_seed(2), **extra)
            for extra in ({}, {'correct_x0': identity, 'correct_steps': range(6)})]
    assert len(seen) == 6
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-5, atol=1e-5)


def test_correcting_every_step_follows_the_ddim_path_to_the_corrected_x0():
    """With z_0 corrected to a fixed target at every DDIM step the sampler is DDIM with a perfect denoiser: the noise
    direction eps = (z_T - sqrt(abar_T) target) / sqrt(1 - abar_T) of the first step is kept to the end, so
    z_final = sqrt(abar_0) target + sqrt(1 - abar_0) eps. (N = 5 divides T: with 'trailing' spacing DDIM's
    ``t - T // N`` then lands on the next timestep; for other N it is off by one and the identity holds to ~1e-3.)"""
    target = torch.full((1, 4, 8, 8), 0.3)
    z_lr = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    scheduler = build_scheduler('ddim', DIFFUSION, 5)
    run = sample_latents(_Denoiser(), z_lr, [], (1, 4, 8, 8), scheduler, torch.Generator().manual_seed(2),
                         correct_x0=lambda x0: target, correct_steps=range(5))
    z_t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    abar0, abar_t = scheduler.final_alpha_cumprod, scheduler.alphas_cumprod[scheduler.timesteps[0]]
    eps = (z_t - abar_t.sqrt() * target) / (1 - abar_t).sqrt()
    torch.testing.assert_close(run, abar0.sqrt() * target + (1 - abar0).sqrt() * eps, rtol=1e-5, atol=1e-5)


# --- pipelines ----------------------------------------------------------------------------------------------------
def _data_pipeline(tmp_path, consistency: dict | None, prediction_type: str = 'v_prediction',
                   kind: str = 'ddim') -> SSRPipeline:
    opt = tiny_opt(is_train=False, sampler={'kind': kind, 'consistency': consistency},
                   diffusion={'prediction_type': prediction_type})
    opt['path'].update(_save_weights(opt, tmp_path, ('g', )))
    return SSRPipeline.from_options(opt)


@pytest.mark.parametrize('kind', ['ddim', 'dpmsolver++'])
@pytest.mark.parametrize('prediction_type', ['v_prediction', 'sample'])
def test_consistency_lowers_the_lr_residual(tmp_path, prediction_type, kind):
    """Random UNet weights: measured 0.11-0.22x of the residual without the correction. (An untrained epsilon
    network's z_0 = (z_t - sigma_t eps) / alpha_t lies far outside [0, 1], and the clamp before re-encoding undoes
    most of the correction: 0.7x; trained networks predict in range.)"""
    data = batch(seed=3, size=8)
    lq, kernel, depth = data['lq'], data['kernel'], data['depth']
    off = _data_pipeline(tmp_path, None, prediction_type, kind)(lq, kernel, depth)
    assert off.consistency == []
    block = {'steps': 'all', 'iters': 10, 'weight': 1e-3, 'sigma': None}
    on = _data_pipeline(tmp_path, block, prediction_type, kind)(lq, kernel, depth)
    assert len(on.consistency) == 3 and all(torch.all(i.iterations == 10) for i in on.consistency)
    res_off, res_on = lr_residual(off.sr, lq, kernel, 4), lr_residual(on.sr, lq, kernel, 4)
    assert torch.all(res_on < 0.5 * res_off), (res_on / res_off).tolist()
    assert on.sr.shape == off.sr.shape and 0 <= on.sr.min() and on.sr.max() <= 1


def test_final_step_consistency_on_a_padded_lr(tmp_path):
    """LR 6 px (padded for the UNet): the correction runs on the padded grid, the output is cropped back."""
    data = batch(seed=4, size=6)
    lq, kernel, depth = data['lq'], data['kernel'], data['depth']
    off = _data_pipeline(tmp_path, None)(lq, kernel, depth)
    on = _data_pipeline(tmp_path, {'steps': 'final', 'iters': 10, 'sigma': 'auto'})(lq, kernel, depth)
    assert len(on.consistency) == 1 and on.sr.shape == (2, 3, 24, 24)
    assert torch.all(lr_residual(on.sr, lq, kernel, 4) < lr_residual(off.sr, lq, kernel, 4))


def test_ssr_model_test_uses_the_option_with_svkr_kernels(tmp_path):
    """SSRModel.test (ssr/test.py) runs the same correction as the pipeline, under SVKR's K^T."""
    paths = _save_weights(inference_options(TWIN), tmp_path, ('g', 'e', 'sr'))
    block = {'steps': 'last_k', 'k': 2, 'iters': 8, 'weight': 1e-3, 'sigma': None}
    files = {name: write_options(tmp_path / f'{name}.yml', {'_base_': str(TWIN), 'path': paths,
                                                            'sampler': {'consistency': cons}})
             for name, cons in (('off', None), ('on', block))}
    lq = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    outs = {name: SSRPipeline.from_option_file(path)(lq) for name, path in files.items()}
    on, off = outs['on'], outs['off']
    assert len(on.consistency) == 2  # start_step 1 of 3: the last two steps are the two that run
    torch.testing.assert_close(on.kernel, off.kernel)  # K^T, the operator of the correction
    assert torch.all(lr_residual(on.sr, lq, on.kernel, 4) < lr_residual(off.sr, lq, off.kernel, 4))
    torch.manual_seed(123)
    model = build_model(inference_options(files['on']))
    model.feed_data({'lq': lq})
    model.test()
    assert torch.equal(model.output, on.sr)


def test_pipeline_rejects_a_bad_consistency_option():
    opt = tiny_opt(is_train=False, sampler={'consistency': {'iters': -1}})
    with pytest.raises(ValueError, match=r'sampler\.consistency\.iters'):
        SSRPipeline.from_options(opt)
