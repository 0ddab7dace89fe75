"""AMFUNet: shared arch checks, zero-init equivalence to the base UNet, an independent forward-hook reference, replicas
(deepcopy, DataParallel, torch.compile), freezing, diffusers save/load, bad inputs."""
from __future__ import annotations

import copy
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

import ssr.archs
from ssr.archs.amf_unet_arch import AMFUNet, AMFUNetOutput
from tests.test_archs.arch_testing import ArchTesterMixin

TINY = {
    'latent_channels': 4, 'lr_latent_channels': 3, 'block_out_channels': (8, 16), 'layers_per_block': 1,
    'norm_num_groups': 2, 'attention_head_dim': 8, 'amf_hidden': 8, 'kernel_in_ch': 9,
    'lr_encoder_channels': (8, 8), 'depth_encoder_channels': (4, 4), 'kernel_encoder_channels': (4, 4),
}


def tiny_inputs(batch: int = 2, size: int = 16) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        'z_t': torch.randn(batch, 4, size, size, generator=g),
        't': torch.tensor([10, 500])[:batch],
        'z_lr': torch.randn(batch, 3, size, size, generator=g),
        'kernel': torch.softmax(torch.randn(batch, 9, size, size, generator=g), dim=1),
        'depth': torch.rand(batch, 1, 4 * size, 4 * size, generator=g),
        'lr': torch.rand(batch, 3, size, size, generator=g),
    }


def build(**overrides) -> AMFUNet:
    torch.manual_seed(0)
    return AMFUNet(**{**TINY, **overrides})


class TestAMFUNet(ArchTesterMixin):
    arch = 'AMFUNet'
    config = TINY

    def inputs(self):
        return tiny_inputs()

    def check_output(self, out, inputs):
        assert isinstance(out, AMFUNetOutput)
        assert out.sample.shape == inputs['z_t'].shape
        assert [[tuple(f.shape) for f in feats] for feats in out.features] == [
            [(2, 4, 16, 16), (2, 4, 8, 8)], [(2, 4, 16, 16), (2, 4, 8, 8)], [(2, 8, 16, 16), (2, 8, 8, 8)]]


class TestAMFUNetFrozenBase(TestAMFUNet):
    config = {**TINY, 'freeze_base': True, 'amf_norm': 'group', 'amf_levels': ['down0', 'mid', 'up1']}


def test_registered():
    assert ARCH_REGISTRY.get('AMFUNet') is AMFUNet


def test_frozen_base_gets_no_gradient_and_every_encoder_and_amf_parameter_does():
    net = build(freeze_base=True).train()
    out = net(**tiny_inputs())
    (out.sample.square().mean() + sum(f.abs().mean() for feats in out.features for f in feats)).backward()
    assert all(p.grad is None and not p.requires_grad for p in net.unet.parameters())
    others = [(n, p) for n, p in net.named_parameters() if not n.startswith('unet.')]
    assert others and all(p.grad is not None for _, p in others), [n for n, p in others if p.grad is None]


def test_with_no_norm_and_zero_init_it_equals_the_base_unet():
    net = build(amf_norm='none').eval()
    x = tiny_inputs()
    with torch.no_grad():
        base = net.unet(torch.cat([x['z_t'], x['z_lr']], 1), x['t']).sample
        torch.testing.assert_close(net(**x).sample, base, rtol=0, atol=0)


def test_amf_changes_the_output_once_trained():
    net = build().eval()
    x = tiny_inputs()
    with torch.no_grad():
        before = net(**x).sample
        for amf in net.amf.values():
            for layer in amf.layers:
                layer.beta[2].weight.normal_(0, 0.1)
        assert (net(**x).sample - before).abs().max() > 1e-4


def test_amf_levels_select_the_sites():
    net = build(amf_levels=['down1', 'up0'])
    assert sorted(net.amf.keys()) == ['down1', 'up0']
    assert net.site_levels == {'down1': 1, 'up0': 0}


def test_precomputed_features_give_the_same_output():
    net = build().eval()
    x = tiny_inputs()
    with torch.no_grad():
        feats = net.encode_conditions(x['kernel'], x['depth'], x['lr'], (16, 16))
        torch.testing.assert_close(net(x['z_t'], x['t'], x['z_lr'], features=feats).sample, net(**x).sample)


def test_deepcopy_owns_its_amf():
    net = build(amf_norm='none').eval()
    twin = copy.deepcopy(net)
    with torch.no_grad():
        for layer in twin.amf['mid'].layers:
            layer.beta[2].weight.normal_(0, 0.1)
        x = tiny_inputs()
        assert (twin(**x).sample - net(**x).sample).abs().max() > 1e-4
        base = net.unet(torch.cat([x['z_t'], x['z_lr']], 1), x['t']).sample
        torch.testing.assert_close(net(**x).sample, base, rtol=0, atol=0)


def trained(**overrides) -> AMFUNet:
    """A tiny AMFUNet whose AMF layers modulate (random output convs, BatchNorm statistics), in eval mode."""
    net = build(**overrides).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for amf in net.amf.values():
            for layer in amf.layers:
                for mlp in (layer.alpha, layer.beta):
                    mlp[2].weight.copy_(0.1 * torch.randn(mlp[2].weight.shape, generator=g))
                if isinstance(layer.norm, nn.BatchNorm2d):
                    layer.norm.running_mean.copy_(0.3 * torch.randn(layer.norm.running_mean.shape, generator=g))
                    layer.norm.running_var.uniform_(0.5, 2.0, generator=g)
    return net


def hooked_reference(net: AMFUNet, x: dict) -> torch.Tensor:
    """Independent reference of Eq. 4: diffusers' own ``UNet2DModel.forward`` with AMF added by forward hooks on the
    chosen blocks (the old design, kept here as a test oracle only); a down block's last skip becomes its output."""
    features = net.encode_conditions(x['kernel'], x['depth'], x['lr'], tuple(x['z_t'].shape[-2:]))

    def hook(site, module, args, output):
        conds = [feats[net.site_levels[site]] for feats in features]
        if site.startswith('down'):
            hidden = net.amf[site](output[0], conds)
            return hidden, (*output[1][:-1], hidden)
        return net.amf[site](output, conds)

    handles = []
    for site in net.amf_levels:
        block = (net.unet.mid_block if site == 'mid' else
                 (net.unet.down_blocks if site.startswith('down') else net.unet.up_blocks)[int(site.lstrip('downup'))])
        handles.append(block.register_forward_hook(lambda m, a, o, site=site: hook(site, m, a, o)))
    try:
        return net.unet(torch.cat([x['z_t'], x['z_lr']], 1), x['t']).sample
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize('overrides', [{}, {'amf_norm': 'group', 'amf_kernel_size': 3}, {'amf_levels': ['down1', 'up0']}],
                         ids=['batch-all-sites', 'group-3x3', 'two-sites'])
def test_output_equals_the_hooked_diffusers_forward(overrides):
    net = trained(**overrides)
    x = tiny_inputs()
    with torch.no_grad():
        expected = hooked_reference(net, x)
        assert (expected - net.unet(torch.cat([x['z_t'], x['z_lr']], 1), x['t']).sample).abs().max() > 1e-2
        torch.testing.assert_close(net(**x).sample, expected, rtol=0, atol=0)


def test_scalar_timesteps_broadcast_as_in_diffusers():
    net = trained()
    x = tiny_inputs()
    with torch.no_grad():
        for t in (7, torch.tensor(7)):
            torch.testing.assert_close(net(**{**x, 't': t}).sample, net(**{**x, 't': torch.tensor([7, 7])}).sample,
                                       rtol=0, atol=0)


def replicate_like_data_parallel(net: nn.Module) -> nn.Module:
    """One replica as ``torch.nn.parallel.replicate`` builds it (shallow ``__dict__`` copies of every module, children
    rewired to their replicas, parameters and buffers as copies), without the CUDA broadcast it needs."""
    modules = list(net.modules())
    replicas = {id(m): m._replicate_for_data_parallel() for m in modules}
    for module in modules:
        replica = replicas[id(module)]
        replica._former_parameters = OrderedDict()
        for key, child in module._modules.items():
            setattr(replica, key, None if child is None else replicas[id(child)])
        for key, param in module._parameters.items():
            setattr(replica, key, None if param is None else param.detach().clone())
        for key, buf in module._buffers.items():
            setattr(replica, key, None if buf is None else buf.clone())
    return replicas[id(net)]


def test_a_data_parallel_replica_applies_its_own_amf():
    net = trained()
    x = tiny_inputs()
    with torch.no_grad():
        expected = net(**x).sample
        replica = replicate_like_data_parallel(net)
        for amf in net.amf.values():  # the original's AMF is zeroed: the replica must not read it
            for layer in amf.layers:
                layer.alpha[2].weight.zero_()
                layer.beta[2].weight.zero_()
        assert (net(**x).sample - expected).abs().max() > 1e-2
        # equal up to float rounding (oneDNN may pick another kernel for the cloned tensors); reading the zeroed
        # AMF instead would differ by > 1e-2
        torch.testing.assert_close(replica(**x).sample, expected, rtol=0, atol=1e-5)


def test_data_parallel_on_the_cpu_gives_the_same_output():
    net = trained()
    x = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(nn.DataParallel(net, device_ids=[])(**x).sample, net(**x).sample, rtol=0, atol=0)


def test_deepcopy_gives_the_same_output():
    net = trained()
    x = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(copy.deepcopy(net)(**x).sample, net(**x).sample, rtol=0, atol=0)


@pytest.mark.slow
def test_torch_compile_gives_the_same_output():
    if shutil.which('cc') is None and shutil.which('gcc') is None:
        pytest.skip('torch.compile on the CPU needs a C compiler')
    net = trained()
    x = tiny_inputs()
    torch._dynamo.reset()
    with torch.no_grad():
        expected = net(**x).sample
        base = net.unet(torch.cat([x['z_t'], x['z_lr']], 1), x['t']).sample
        compiled = torch.compile(net)(**x).sample
    assert (expected - base).abs().max() > 1e-2
    torch.testing.assert_close(compiled, expected, rtol=1e-4, atol=1e-5)


def test_no_forward_hooks_in_the_archs():
    sources = sorted(Path(ssr.archs.__file__).parent.glob('*.py'))
    assert sources
    assert [p.name for p in sources if 'register_forward' in p.read_text()] == []


def test_save_pretrained_round_trip(tmp_path):
    net = build(freeze_base=True).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    net.save_pretrained(tmp_path)
    loaded = AMFUNet.from_pretrained(tmp_path).eval()
    assert loaded.config.freeze_base and not any(p.requires_grad for p in loaded.unet.parameters())
    x = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**x).sample, net(**x).sample, rtol=0, atol=0)


@pytest.mark.parametrize('overrides, match', [
    ({'amf_levels': ['down0', 'down7']}, r"amf_levels \['down7'\] not in"),
    ({'down_block_types': ['DownBlock2D']}, 'one entry per block_out_channels'),
    ({'depth_encoder_channels': (4,)}, r'depth encoder channels \[4\] need one entry per level'),
    ({'amf_norm': 'instance'}, "'instance' not in"),
    ({'down_block_types': ['SkipDownBlock2D', 'DownBlock2D'], 'up_block_types': ['UpBlock2D', 'UpBlock2D']},
     r"\['SkipDownBlock2D'\] are not supported"),
], ids=['amf_levels', 'block_types', 'encoder_levels', 'amf_norm', 'skip_blocks'])
def test_bad_arguments(overrides, match):
    with pytest.raises(ValueError, match=match):
        build(**overrides)


@pytest.mark.parametrize('change, match', [
    ({'z_t': torch.zeros(2, 3, 16, 16)}, r'z_t must be \(B, 4, h, w\)'),
    ({'z_lr': torch.zeros(2, 3, 8, 8)}, r'z_lr must be \(B, 3, 16, 16\)'),
    ({'z_t': torch.zeros(2, 4, 15, 15), 'z_lr': torch.zeros(2, 3, 15, 15)}, 'must be a multiple of 2'),
    ({'depth': None}, 'give kernel, depth and lr'),
], ids=['z_t_channels', 'z_lr_size', 'odd_size', 'missing_condition'])
def test_bad_inputs(change, match):
    with pytest.raises(ValueError, match=match):
        build()(**{**tiny_inputs(), **change})


def test_warns_when_the_first_level_is_narrower_than_the_latent():
    with pytest.warns(UserWarning, match='block_out_channels\\[0\\] = 8 is below latent_channels = 48'):
        build(latent_channels=48, lr_latent_channels=48)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter('error')
        build()  # 8 >= 4 latent channels: no warning
