"""MAConv / MABlock: shared arch checks, the split-and-modulate wiring against plain group convolutions, counts,
both split roundings and both key layouts (DKENet's and the MANet port's)."""
from __future__ import annotations

import re

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


class TestMAConvMANetLayout(TestMAConvUnevenThreeWaySplit):
    config = {**TestMAConvUnevenThreeWaySplit.config, 'split_rounding': 'round', 'module_names': 'manet'}


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


@pytest.mark.parametrize('channels, split, expected', [
    (64, 2, [32, 32]), (7, 3, [2, 2, 3]), (5, 2, [2, 3]), (7, 2, [4, 3]), (6, 4, [2, 2, 2, 0]),
], ids=['even', 'remainder-last', 'half-to-even-down', 'half-to-even-up', 'empty-last'])
def test_split_sizes_rounded_as_manet(channels, split, expected):
    # MANet: round(C / split) for all but the last group (Python rounds halves to even), the last takes the rest
    assert split_sizes(channels, split, 'round') == expected


def test_manet_module_names_follow_the_official_layout():
    conv = MAConv(in_ch=7, out_ch=8, kernel_size=3, split=2, split_rounding='round', module_names='manet')
    assert conv.in_split == [4, 3] and conv.out_split == [4, 4]
    assert {k: tuple(v.shape) for k, v in conv.state_dict().items()} == {
        'fc0.0.weight': (1, 3, 1, 1), 'fc0.0.bias': (1,), 'fc0.2.weight': (8, 1, 1, 1), 'fc0.2.bias': (8,),
        'conv0.weight': (4, 4, 3, 3), 'conv0.bias': (4,),
        'fc1.0.weight': (2, 4, 1, 1), 'fc1.0.bias': (2,), 'fc1.2.weight': (6, 2, 1, 1), 'fc1.2.bias': (6,),
        'conv1.weight': (4, 3, 3, 3), 'conv1.bias': (4,)}


def test_both_module_layouts_compute_the_same_function():
    torch.manual_seed(0)
    lists = MAConv(in_ch=9, out_ch=6, kernel_size=3, split=3, reduction=1)
    manet = MAConv(in_ch=9, out_ch=6, kernel_size=3, split=3, reduction=1, module_names='manet')
    names = {'affine': 'fc', 'conv': 'conv'}  # affine.{i}.* -> fc{i}.*, conv.{i}.* -> conv{i}.*
    renamed = {re.sub(r'^(affine|conv)\.(\d+)\.', lambda m: f'{names[m[1]]}{m[2]}.', k): v
               for k, v in lists.state_dict().items()}
    manet.load_state_dict(renamed, strict=True)
    x = torch.randn(1, 9, 6, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(manet(x), lists(x), rtol=0, atol=0)


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
    ({'in_ch': 8, 'out_ch': 8, 'split_rounding': 'floor'}, "split_rounding 'floor' not in"),
    ({'in_ch': 6, 'out_ch': 6, 'split': 4, 'split_rounding': 'round'}, "'round' leaves an empty split"),
    ({'in_ch': 8, 'out_ch': 8, 'module_names': 'timm'}, "module_names 'timm' not in"),
], ids=['split', 'channels', 'even-kernel', 'reduction-zero', 'reduction-too-large', 'rounding', 'round-empty',
        'module-names'])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MAConv(**kwargs)
