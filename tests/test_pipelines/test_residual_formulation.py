"""diffusion.formulation: residual — the diffusion adds a residual to the blind path's I^T instead of making the image."""
from __future__ import annotations

import pytest
import torch
from basicsr.archs import build_network

from ssr.pipelines import SSRPipeline, SSRPipelineConfig
from ssr.pipelines.sampling import diffusion_config
from ssr.utils.options import load_yaml
from tests.conftest import REPO

TWIN = REPO / 'tests/data/test_ssr_x4_oracle.yml'  # tiny AMFUNet, conditions from the data, k = 11


def _pipeline(diffusion: dict, sampler: dict) -> SSRPipeline:
    opt = load_yaml(TWIN)
    opt['diffusion'] = {**opt['diffusion'], **diffusion}
    opt['sampler'] = sampler
    config = SSRPipelineConfig.from_options(opt)
    torch.manual_seed(0)
    unet = build_network(dict(opt['network_g'])).eval()
    return SSRPipeline(unet, config.build_first_stage(), config)


def _inputs(h: int = 8):
    g = torch.Generator().manual_seed(1)
    lq = torch.rand(1, 3, h, h, generator=g)
    kernel = torch.softmax(torch.randn(1, 121, h, h, generator=g), 1)
    depth = torch.rand(1, 1, 4 * h, 4 * h, generator=g)
    base = torch.rand(1, 3, 4 * h, 4 * h, generator=g)
    return lq, kernel, depth, base


@pytest.mark.parametrize('opt,key', [({'formulation': 'shift'}, 'formulation'), ({'residual_scale': 0}, 'residual_scale')])
def test_bad_options(opt, key):
    with pytest.raises(ValueError, match=f'diffusion.{key}'):
        diffusion_config(opt)


def test_training_latents():
    lq, _, _, base = _inputs()
    gt = torch.rand_like(base)
    pipe = _pipeline({'formulation': 'residual', 'residual_scale': 8}, {'kind': 'ddim', 'steps': 3})
    z0, z_lr = pipe.training_latents(gt, lq, base)
    encode = pipe.first_stage.encode
    torch.testing.assert_close(z0, (encode(gt) - encode(base)) * 8)
    torch.testing.assert_close(z_lr, encode(base))
    with pytest.raises(ValueError, match='base'):
        pipe.training_latents(gt, lq, None)
    image = _pipeline({}, {'kind': 'ddim', 'steps': 3})
    z0, z_lr = image.training_latents(gt, lq)
    torch.testing.assert_close(z0, encode(gt))
    torch.testing.assert_close(z_lr, image.lr_latent(lq))


@pytest.mark.parametrize('start_step', [None, 1])
def test_a_zero_residual_returns_the_base(start_step):
    """A network that predicts z_0 = 0 (prediction_type: sample) leaves I^T exactly as it is."""
    pipe = _pipeline({'formulation': 'residual', 'residual_scale': 8, 'prediction_type': 'sample'},
                     {'kind': 'ddim', 'steps': 3, 'start_step': start_step})
    torch.nn.init.zeros_(pipe.unet.unet.conv_out.weight)
    torch.nn.init.zeros_(pipe.unet.unet.conv_out.bias)
    lq, kernel, depth, base = _inputs()
    out = pipe(lq, kernel, depth, base=base)
    # DDIM's last step lands on t = 0 (set_alpha_to_one: false), which keeps sqrt(1 - abar_0) ~ 0.039 of the noise;
    # divided by residual_scale that is ~0.005 per pixel, against |out - base| ~ 0.33 for a residual of noise
    abar0 = pipe.config.sampler.scheduler(pipe.config.diffusion).alphas_cumprod[0]
    bound = float((1 - abar0).sqrt()) / 8
    diff = (out.sr - base).abs()
    assert diff.mean() < 1.5 * bound * 0.8 and diff.max() < 6 * bound  # E|N(0, 1)| = 0.8
    with pytest.raises(ValueError, match='residual'):
        pipe(lq, kernel, depth)  # no I^T to add the residual to


def test_residual_strength_scales_what_is_added():
    lq, kernel, depth, base = _inputs()
    outs = {}
    for strength in (0.0, 0.5, 1.0):
        pipe = _pipeline({'formulation': 'residual', 'residual_scale': 8},
                         {'kind': 'dpmsolver++', 'steps': 2, 'residual_strength': strength})
        outs[strength] = pipe(lq, kernel, depth, base=base).sr
    torch.testing.assert_close(outs[0.0], base, atol=1e-6, rtol=0)
    inside = ((base > 0.05) & (base < 0.95) & (outs[1.0] > 0) & (outs[1.0] < 1)).float()  # away from the clamp
    added_half, added_full = (outs[0.5] - base) * inside, (outs[1.0] - base) * inside
    torch.testing.assert_close(added_half, added_full / 2, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='residual_strength'):
        _pipeline({'formulation': 'residual'}, {'residual_strength': -1})
