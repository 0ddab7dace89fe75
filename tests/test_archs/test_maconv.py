"""MAConv / MABlock: shared arch checks, the split-and-modulate wiring against plain group convolutions, counts."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from ssr.archs.maconv import MABlock, MAConv, split_sizes
from tests.test_archs.arch_testing import ArchTesterMixin


class TestMAConv(ArchTesterMixin):
    config = {'in_ch': 8, 'out_ch': 6, 'kernel_size': 3, 'split': 2, 'reduction': 2}

    def build(self):
        torch.manual_seed(0)
        return MAConv(**self.config)

    def inputs(self):
        return {'x': torch.randn(2, 8, 10, 12, generator=torch.Generator().manual_seed(0))}

    def check_output(self, out, inputs):
        assert out.shape == (2, self.config['out_ch'], 10, 12)


class TestMAConvUnevenThreeWaySplit(TestMAConv):
    config = {'in_ch': 7, 'out_ch': 8, 'kernel_size': 1, 'split': 3, 'reduction': 1}

    def inputs(self):
        return {'x': torch.randn(1, 7, 6, 5, generator=torch.Generator().manual_seed(0))}

    def check_output(self, out, inputs):
        assert out.shape == (1, 8, 6, 5)


class TestMABlock(ArchTesterMixin):
    config = {'ch': 8, 'split': 2, 'reduction': 2}

    def build(self):
        torch.manual_seed(0)
        return MABlock(**self.config)

    def inputs(self):
        return {'x': torch.randn(2, 8, 9, 9, generator=torch.Generator().manual_seed(0))}

    def check_output(self, out, inputs):
        assert out.shape == inputs['x'].shape


def test_split_sizes():
    assert split_sizes(64, 2) == [32, 32]
    assert split_sizes(7, 3) == [3, 2, 2]


def test_without_affine_it_is_a_group_convolution_of_half_the_input():
    """Zeroing the affine networks' output gives scale = sigmoid(0) = 1/2 and shift = 0 for every group."""
    torch.manual_seed(0)
    conv = MAConv(in_ch=8, out_ch=6, kernel_size=3, split=2)
    with torch.no_grad():
        for affine in conv.affine:
            affine[-1].weight.zero_()
            affine[-1].bias.zero_()
    x = torch.randn(1, 8, 7, 7)
    expected = torch.cat([F.conv2d(0.5 * x[:, 4 * i:4 * i + 4], c.weight, c.bias, padding=1)
                          for i, c in enumerate(conv.conv)], dim=1)
    torch.testing.assert_close(conv(x), expected)


def test_each_group_is_modulated_by_the_other_group():
    torch.manual_seed(0)
    conv = MAConv(in_ch=8, out_ch=8, kernel_size=1, split=2, reduction=1)
    x = torch.randn(1, 8, 5, 5, requires_grad=True)
    conv(x)[:, :4].square().sum().backward()  # output group 0
    assert x.grad[:, 4:].abs().sum() > 0  # reached through affine_0 from input group 1


def test_parameter_count_of_manet_setting():
    # Per group (32 in / 32 out): affine 1x1 32->16 (528) + 1x1 16->64 (1088), conv 3x3 32->32 (9248); two groups.
    conv = MAConv(in_ch=64, out_ch=64, kernel_size=3, split=2, reduction=2)
    assert sum(p.numel() for p in conv.parameters()) == 2 * (528 + 1088 + 9248) == 21728


@pytest.mark.parametrize('kwargs, match', [
    ({'in_ch': 8, 'out_ch': 8, 'split': 1}, 'split must be >= 2'),
    ({'in_ch': 1, 'out_ch': 8, 'split': 2}, r'in_ch \(1\)'),
    ({'in_ch': 8, 'out_ch': 8, 'kernel_size': 2}, 'kernel_size must be odd'),
    ({'in_ch': 8, 'out_ch': 8, 'reduction': 0}, 'reduction 0'),
    ({'in_ch': 2, 'out_ch': 2, 'reduction': 2}, 'reduction 2 leaves no hidden channel'),
], ids=['split', 'channels', 'even-kernel', 'reduction-zero', 'reduction-too-large'])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MAConv(**kwargs)
