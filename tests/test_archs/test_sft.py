"""SFTLayer: shared arch checks, identity at zero init, dependence on the condition, resizing, bad inputs."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from ssr.archs.sft import SFTLayer, resize_to
from tests.test_archs.arch_testing import ArchTesterMixin


class TestSFTLayer(ArchTesterMixin):
    config = {'feat_ch': 8, 'cond_ch': 4, 'hidden_ch': 6}

    def build(self):
        torch.manual_seed(0)
        return SFTLayer(**self.config)

    def inputs(self):
        g = torch.Generator().manual_seed(0)
        return {'feat': torch.randn(2, 8, 16, 12, generator=g), 'cond': torch.rand(2, 4, 32, 24, generator=g)}

    def check_output(self, out, inputs):
        assert out.shape == inputs['feat'].shape


class TestSFTLayerZeroInit(TestSFTLayer):
    config = {'feat_ch': 8, 'cond_ch': 4, 'hidden_ch': 6, 'zero_init': True}

    def check_output(self, out, inputs):
        torch.testing.assert_close(out, inputs['feat'], rtol=0, atol=0)


def test_output_depends_on_condition():
    torch.manual_seed(0)
    sft = SFTLayer(feat_ch=8, cond_ch=4)
    feat = torch.randn(1, 8, 8, 8)
    a, b = sft(feat, torch.zeros(1, 4, 8, 8)), sft(feat, torch.ones(1, 4, 8, 8))
    assert (a - b).abs().max() > 1e-3


def test_condition_is_resized_to_the_features():
    torch.manual_seed(0)
    sft = SFTLayer(feat_ch=4, cond_ch=2)
    feat, cond = torch.randn(1, 4, 8, 8), torch.rand(1, 2, 32, 32)
    torch.testing.assert_close(sft(feat, cond), sft(feat, F.avg_pool2d(cond, 4)))


def test_resize_to_averages_when_shrinking_and_is_a_no_op_at_the_same_size():
    x = torch.rand(1, 1, 12, 12)
    torch.testing.assert_close(resize_to(x, (4, 4)), F.avg_pool2d(x, 3))
    assert resize_to(x, (12, 12)) is x
    assert resize_to(x, (24, 20)).shape == (1, 1, 24, 20)


@pytest.mark.parametrize('kwargs, match', [
    ({'feat_ch': 0, 'cond_ch': 4}, 'feat_ch'),
    ({'feat_ch': 4, 'cond_ch': 0}, 'cond_ch'),
    ({'feat_ch': 4, 'cond_ch': 4, 'hidden_ch': 0}, 'hidden_ch'),
], ids=['feat_ch', 'cond_ch', 'hidden_ch'])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SFTLayer(**kwargs)


@pytest.mark.parametrize('feat, cond, match', [
    ((1, 5, 8, 8), (1, 4, 8, 8), r'feat must be \(B, 8'),
    ((1, 8, 8, 8), (1, 3, 8, 8), r'cond must be \(1, 4'),
    ((2, 8, 8, 8), (1, 4, 8, 8), r'cond must be \(2, 4'),
], ids=['feat-channels', 'cond-channels', 'batch'])
def test_bad_inputs(feat, cond, match):
    sft = SFTLayer(feat_ch=8, cond_ch=4)
    with pytest.raises(ValueError, match=match):
        sft(torch.zeros(feat), torch.zeros(cond))
