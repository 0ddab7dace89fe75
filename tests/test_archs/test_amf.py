"""AMF (Eq. 3): zero init equals the bare norm, dependence on the condition, modality order, bad inputs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ssr.archs.amf import AMF, MultiModalAMF
from tests.test_archs.arch_testing import ArchTesterMixin


class TestAMF(ArchTesterMixin):
    config = {'feat_ch': 8, 'cond_ch': 4, 'hidden_ch': 6, 'norm': 'group', 'num_groups': 2, 'zero_init': False}

    def build(self):
        torch.manual_seed(0)
        return AMF(**self.config)

    def inputs(self):
        g = torch.Generator().manual_seed(0)
        return {'feat': torch.randn(2, 8, 16, 12, generator=g), 'cond': torch.rand(2, 4, 32, 24, generator=g)}

    def check_output(self, out, inputs):
        assert out.shape == inputs['feat'].shape


@pytest.mark.parametrize('norm, bare', [
    ('batch', lambda: nn.BatchNorm2d(8, affine=False)),
    ('group', lambda: nn.GroupNorm(2, 8, affine=False)),
    ('none', nn.Identity),
], ids=['batch', 'group', 'none'])
@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
def test_zero_init_equals_the_bare_norm(norm, bare, train):
    amf = AMF(feat_ch=8, cond_ch=3, hidden_ch=16, norm=norm, num_groups=2).train(train)
    bare = bare().train(train)
    feat, cond = torch.randn(2, 8, 8, 8) * 3 + 1, torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(amf(feat, cond), bare(feat))


def test_output_depends_on_the_condition_once_trained():
    torch.manual_seed(0)
    amf = AMF(feat_ch=4, cond_ch=2, hidden_ch=8, norm='group', num_groups=2, zero_init=False)
    feat = torch.randn(1, 4, 8, 8)
    assert (amf(feat, torch.zeros(1, 2, 8, 8)) - amf(feat, torch.ones(1, 2, 8, 8))).abs().max() > 1e-3


def test_scale_and_shift_follow_eq3():
    amf = AMF(feat_ch=2, cond_ch=1, hidden_ch=1, norm='none', kernel_size=1)
    with torch.no_grad():  # M(f) = relu(f) * w2, with w1 = 1: alpha = 2 f, beta = 3 f for f >= 0
        for mlp, w in ((amf.alpha, 2.0), (amf.beta, 3.0)):
            mlp[0].weight.fill_(1.0)
            mlp[2].weight.fill_(w)
    feat, cond = torch.randn(1, 2, 4, 4), torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(amf(feat, cond), (1 + 2 * cond) * feat + 3 * cond)


def test_multimodal_amf_applies_the_modalities_in_order():
    torch.manual_seed(0)
    mm = MultiModalAMF(feat_ch=4, cond_chs=[1, 2, 3], hidden_ch=8, norm='group', num_groups=2, zero_init=False)
    feat = torch.randn(2, 4, 8, 8)
    conds = [torch.rand(2, c, 8, 8) for c in (1, 2, 3)]
    expected = feat
    for layer, cond in zip(mm.layers, conds):
        expected = layer(expected, cond)
    torch.testing.assert_close(mm(feat, conds), expected)
    reversed_order = feat
    for layer, cond in reversed(list(zip(mm.layers, conds))):
        reversed_order = layer(reversed_order, cond)
    assert (mm(feat, conds) - reversed_order).abs().max() > 1e-4  # the order matters, and it is kernel, depth, LR


@pytest.mark.parametrize('kwargs, match', [
    # channels
    ({'feat_ch': 0, 'cond_ch': 4}, 'feat_ch'),
    ({'feat_ch': 4, 'cond_ch': 0}, 'cond_ch'),
    ({'feat_ch': 4, 'cond_ch': 4, 'hidden_ch': 0}, 'hidden_ch'),
    # switches
    ({'feat_ch': 4, 'cond_ch': 4, 'norm': 'layer'}, r"'layer' not in \('batch', 'group', 'none'\)"),
    ({'feat_ch': 6, 'cond_ch': 4, 'norm': 'group', 'num_groups': 4}, 'num_groups 4 must divide feat_ch 6'),
    ({'feat_ch': 4, 'cond_ch': 4, 'kernel_size': 5}, 'kernel_size 5'),
], ids=['feat_ch', 'cond_ch', 'hidden_ch', 'norm', 'num_groups', 'kernel_size'])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AMF(**kwargs)


@pytest.mark.parametrize('feat, cond, match', [
    (torch.zeros(1, 5, 4, 4), torch.zeros(1, 2, 4, 4), 'expected 4 feature and 2 condition channels, got 5 and 2'),
    (torch.zeros(1, 4, 4, 4), torch.zeros(1, 3, 4, 4), 'got 4 and 3'),
], ids=['feat_channels', 'cond_channels'])
def test_bad_inputs(feat, cond, match):
    with pytest.raises(ValueError, match=match):
        AMF(feat_ch=4, cond_ch=2, norm='none')(feat, cond)


def test_multimodal_amf_bad_inputs():
    with pytest.raises(ValueError, match='at least one modality'):
        MultiModalAMF(feat_ch=4, cond_chs=[])
    mm = MultiModalAMF(feat_ch=4, cond_chs=[1, 1], norm='none')
    with pytest.raises(ValueError, match='expected 2 conditions, got 1'):
        mm(torch.zeros(1, 4, 4, 4), [torch.zeros(1, 1, 4, 4)])


@pytest.mark.parametrize('norm', ['batch', 'group'])
@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
def test_norm_gate_starts_as_the_identity_and_is_eq3_at_one(norm, train):
    amf = AMF(feat_ch=8, cond_ch=3, hidden_ch=16, norm=norm, num_groups=2, norm_gate=True).train(train)
    feat, cond = torch.randn(2, 8, 8, 8) * 3 + 1, torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(amf(feat, cond), feat, rtol=0, atol=0)
    ungated = AMF(feat_ch=8, cond_ch=3, hidden_ch=16, norm=norm, num_groups=2).train(train)
    with torch.no_grad():
        amf.norm_gate.fill_(1.0)
    torch.testing.assert_close(amf(feat, cond), ungated(feat, cond))


def test_norm_gate_gets_a_gradient_at_init_and_is_absent_otherwise():
    amf = AMF(feat_ch=4, cond_ch=2, hidden_ch=8, norm='batch', norm_gate=True)
    amf(torch.randn(2, 4, 8, 8) * 2 + 1, torch.rand(2, 2, 8, 8)).square().sum().backward()
    assert amf.norm_gate.grad.abs().max() > 0
    assert 'norm_gate' not in AMF(feat_ch=4, cond_ch=2, norm='batch').state_dict()  # shipped weights keep their keys
    with pytest.raises(ValueError, match="norm_gate blends F into Norm\\(F\\) and needs norm 'batch' or 'group'"):
        AMF(feat_ch=4, cond_ch=2, norm='none', norm_gate=True)
