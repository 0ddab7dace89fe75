"""sampler.compile / sampler.channels_last: the GPU path's options parse, are checked, and change nothing on the CPU
(torch.compile itself is replaced by a recording stand-in: compiling a UNet would take minutes here)."""
from __future__ import annotations

import pytest
import torch
from basicsr.archs import build_network

from ssr.pipelines import SamplerConfig, SSRPipeline, SSRPipelineConfig
from ssr.utils.options import load_yaml
from tests.conftest import REPO

TWIN = REPO / 'tests/data/test_ssr_x4_oracle.yml'  # tiny AMFUNet, conditions from the data, k = 11


def _pipeline(**sampler) -> SSRPipeline:
    opt = load_yaml(TWIN)
    opt['sampler'] = {**(opt.get('sampler') or {}), 'steps': 3, **sampler}
    config = SSRPipelineConfig.from_options(opt)
    torch.manual_seed(0)
    unet = build_network(dict(opt['network_g'])).eval()
    return SSRPipeline(unet, config.build_first_stage(), config)


def _inputs():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(1, 3, 8, 8, generator=g), torch.softmax(torch.randn(1, 121, 8, 8, generator=g), 1),
            torch.rand(1, 1, 32, 32, generator=g))


def test_channels_last_gives_the_same_image():
    with torch.no_grad():
        plain = _pipeline()(*_inputs()).sr
        pipe = _pipeline(channels_last=True)
        nhwc = pipe(*_inputs()).sr
    conv = next(m for m in pipe.unet.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nhwc, plain, rtol=0, atol=1e-4)  # NHWC convolutions sum in another order


def test_compile_wraps_the_sampling_unet_once(monkeypatch):
    compiled = []

    def fake_compile(module, mode=None):
        compiled.append(mode)
        return module  # the eager module stands in for the compiled one

    monkeypatch.setattr(torch, 'compile', fake_compile)
    pipe = _pipeline(compile='reduce-overhead')
    with torch.no_grad():
        out = [pipe(*_inputs()).sr for _ in range(2)]
    assert compiled == ['reduce-overhead']  # built at the first call, reused by the second
    torch.testing.assert_close(out[0], out[1])
    eager = _pipeline()
    assert eager.sampling_unet() is eager.unet and compiled == ['reduce-overhead']  # compile: none is eager


@pytest.mark.parametrize(('sampler', 'match'), [
    ({'compile': 'fast'}, r"sampler.compile 'fast' not in"),
    ({'channels_last': 'yes'}, 'sampler.channels_last must be true or false'),
    ({'step': 4}, r"sampler: unknown key\(s\) \['step'\] \(closest known: steps"),
    ({'tile': {'size': 8, 'overlp': 2}}, r"sampler.tile: unknown key\(s\) \['overlp'\]"),
])
def test_bad_sampler_options(sampler, match):
    with pytest.raises(ValueError, match=match):
        SamplerConfig.from_options(sampler)
