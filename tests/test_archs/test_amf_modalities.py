"""AMFUNet's ``amf_modalities`` (the paper's Table 2 ablations): unused encoders and AMF branches are not built, the
UNet still runs and ignores the unused conditions, the full model keeps its state-dict keys and the shipped weights,
and bad names are refused."""
from __future__ import annotations

import pytest
import torch

from ssr.archs.amf import MODALITIES, select_modalities
from ssr.archs.amf_unet_arch import AMFUNet, AMFUNetOutput
from tests.conftest import REPO
from tests.test_archs import test_amf_unet_arch as full_tests  # a module, so pytest does not collect its tests twice
from tests.test_archs.test_amf_unet_arch import TINY, build, tiny_inputs, trained

SUBSETS = [['kernel'], ['depth'], ['lr'], ['kernel', 'lr'], ['depth', 'lr'], ['kernel', 'depth'], list(MODALITIES)]
SUBSET_IDS = ['+'.join(s) for s in SUBSETS]
FEATURE_SHAPES = {'kernel': [(2, 4, 16, 16), (2, 4, 8, 8)], 'depth': [(2, 4, 16, 16), (2, 4, 8, 8)],
                  'lr': [(2, 8, 16, 16), (2, 8, 8, 8)]}


def n_params(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


class TestAMFUNetDepthAndLR(full_tests.TestAMFUNet):
    """The shared arch checks (backward, determinism, save / load) on the Table 2 row-2 network."""
    config = {**TINY, 'amf_modalities': ['depth', 'lr']}

    def check_output(self, out, inputs):
        assert isinstance(out, AMFUNetOutput)
        assert out.sample.shape == inputs['z_t'].shape
        assert [[tuple(f.shape) for f in feats] for feats in out.features] == [FEATURE_SHAPES['depth'],
                                                                               FEATURE_SHAPES['lr']]


@pytest.mark.parametrize('modalities', SUBSETS, ids=SUBSET_IDS)
def test_unused_modalities_have_no_parameters(modalities):
    """The parameter count drops by exactly the unused encoders and their AMF layer at every site."""
    full, net = build(), build(amf_modalities=modalities)
    dropped = 0
    for i, m in enumerate(MODALITIES):
        if m not in modalities:
            assert getattr(net, f'{m}_encoder') is None
            assert not any(k.startswith(f'{m}_encoder.') for k in net.state_dict())
            dropped += n_params(getattr(full, f'{m}_encoder'))
            dropped += sum(n_params(site.layers[i]) for site in full.amf.values())
    assert n_params(net) == n_params(full) - dropped
    assert all(len(site.layers) == len(modalities) for site in net.amf.values())
    if len(modalities) < len(MODALITIES):
        assert n_params(net) < n_params(full)


@pytest.mark.parametrize('modalities', SUBSETS, ids=SUBSET_IDS)
def test_subset_runs_without_its_unused_conditions(modalities):
    net = trained(amf_modalities=modalities)
    x = {k: v for k, v in tiny_inputs().items() if k in ('z_t', 't', 'z_lr') or k in modalities}
    with torch.no_grad():
        out = net(**x)
    assert out.sample.shape == x['z_t'].shape and torch.isfinite(out.sample).all()
    assert [[tuple(f.shape) for f in feats] for feats in out.features] == [FEATURE_SHAPES[m] for m in modalities]
    assert all(torch.isfinite(f).all() for feats in out.features for f in feats)


@pytest.mark.parametrize('modalities', SUBSETS[:-1], ids=SUBSET_IDS[:-1])
def test_unused_conditions_are_ignored(modalities):
    """Giving the unused conditions (any values) changes nothing."""
    net = trained(amf_modalities=modalities)
    x = tiny_inputs()
    other = {k: torch.rand_like(v) for k, v in x.items() if k in MODALITIES and k not in modalities}
    with torch.no_grad():
        torch.testing.assert_close(net(**{**x, **other}).sample, net(**x).sample, rtol=0, atol=0)


def test_used_conditions_still_matter():
    net = trained(amf_modalities=['depth', 'lr'])
    x = tiny_inputs()
    with torch.no_grad():
        assert (net(**{**x, 'depth': 1 - x['depth']}).sample - net(**x).sample).abs().max() > 1e-4


def test_order_is_irrelevant():
    a, b = build(amf_modalities=['lr', 'kernel']), build(amf_modalities=['kernel', 'lr'])
    assert a.modalities == b.modalities == ('kernel', 'lr')
    assert list(a.state_dict()) == list(b.state_dict())


def test_all_three_keep_the_default_state_dict_and_output():
    """Listing all three modalities (any order) builds the default network: same keys, same init, same output."""
    default, listed = trained(), trained(amf_modalities=['lr', 'depth', 'kernel'])
    assert default.modalities == listed.modalities == MODALITIES
    assert list(default.state_dict()) == list(listed.state_dict())
    assert all(torch.equal(v, listed.state_dict()[k]) for k, v in default.state_dict().items())
    x = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(listed(**x).sample, default(**x).sample, rtol=0, atol=0)


def test_precomputed_features_of_a_subset_give_the_same_output():
    net = trained(amf_modalities=['kernel', 'lr'])
    x = tiny_inputs()
    with torch.no_grad():
        feats = net.encode_conditions(x['kernel'], None, x['lr'], (16, 16))
        assert len(feats) == 2
        torch.testing.assert_close(net(x['z_t'], x['t'], x['z_lr'], features=feats).sample, net(**x).sample)


def test_shipped_weights_load_strictly_with_all_three_listed():
    """weights/ssr_lite_x4.pth (trained before the option existed) loads strictly into the demo network with
    ``amf_modalities`` all three, and gives the output of the default network."""
    from ssr.utils.options import load_options

    opt = load_options(str(REPO / 'options' / 'test_ssr_x4_demo.yml'), is_train=False)
    args = {k: v for k, v in opt['network_g'].items() if k != 'type'}
    state = torch.load(REPO / 'weights' / 'ssr_lite_x4.pth', weights_only=True)[opt['path']['param_key_g']]
    nets = [AMFUNet(**args), AMFUNet(**{**args, 'amf_modalities': ['kernel', 'depth', 'lr']})]
    for net in nets:
        net.load_state_dict(state, strict=True)
        net.eval()
    c = nets[0].config
    g = torch.Generator().manual_seed(0)
    x = {'z_t': torch.randn(1, c.latent_channels, 8, 8, generator=g), 't': torch.tensor([500]),
         'z_lr': torch.randn(1, c.latent_channels, 8, 8, generator=g),
         'kernel': torch.softmax(torch.randn(1, c.kernel_in_ch, 8, 8, generator=g), dim=1),
         'depth': torch.rand(1, 1, 32, 32, generator=g), 'lr': torch.rand(1, 3, 8, 8, generator=g)}
    with torch.no_grad():
        torch.testing.assert_close(nets[1](**x).sample, nets[0](**x).sample, rtol=0, atol=0)


@pytest.mark.parametrize('names, match', [
    # unknown names
    (['kernel', 'rgb'], r"network_g.amf_modalities: \['rgb'\] not in \('kernel', 'depth', 'lr'\)"),
    (['Depth'], r"\['Depth'\] not in"),
    # not a subset
    ([], 'expected at least one of'),
    (['lr', 'lr'], 'names a modality twice'),
    ('kernel', 'expected a list of names'),
], ids=['unknown', 'case', 'empty', 'repeated', 'bare_string'])
def test_bad_modalities_raise(names, match):
    with pytest.raises(ValueError, match=match):
        build(amf_modalities=names)


def test_select_modalities_default_is_all_three():
    assert select_modalities(None) == MODALITIES


@pytest.mark.parametrize('modalities, drop, match', [
    (['kernel', 'lr'], 'kernel', 'give kernel and lr, or precomputed features'),
    (['depth', 'lr'], 'depth', r'missing: depth; amf_modalities: \[.depth., .lr.\]'),
    (list(MODALITIES), 'lr', 'give kernel, depth and lr'),
], ids=['kernel', 'depth', 'lr'])
def test_a_missing_used_condition_raises(modalities, drop, match):
    with pytest.raises(ValueError, match=match):
        build(amf_modalities=modalities)(**{**tiny_inputs(), drop: None})


def test_wrong_number_of_features_raises():
    net = build(amf_modalities=['depth', 'lr'])
    x = tiny_inputs()
    feats = build().encode_conditions(x['kernel'], x['depth'], x['lr'], (16, 16))
    with pytest.raises(ValueError, match=r'features must be the 2 entries of encode_conditions'):
        net(x['z_t'], x['t'], x['z_lr'], features=feats)
