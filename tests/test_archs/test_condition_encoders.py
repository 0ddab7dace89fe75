"""Condition encoders: per-level shapes against feature_info, kernel-field scaling, bad inputs."""
from __future__ import annotations

import pytest
import torch

from ssr.archs.condition_encoders import DepthEncoder, KernelEncoder, LREncoder
from tests.test_archs.arch_testing import ArchTesterMixin


class _PerLevelChecks(ArchTesterMixin):
    in_ch: int = 3

    def inputs(self):
        return {'x': torch.rand(2, self.in_ch, 16, 12, generator=torch.Generator().manual_seed(0))}

    def check_output(self, out, inputs):
        net = self.build()
        h, w = inputs['x'].shape[-2:]
        assert [tuple(f.shape) for f in out] == [
            (2, info['num_chs'], -(-h // info['reduction']), -(-w // info['reduction'])) for info in net.feature_info]


class TestLREncoder(_PerLevelChecks):
    config = {'in_ch': 3, 'block_out_channels': (4, 8), 'out_channels': (8, 6), 'norm_num_groups': 2}

    def build(self):
        torch.manual_seed(0)
        return LREncoder(**self.config)


class TestDepthEncoder(_PerLevelChecks):
    in_ch = 1
    config = {'channels': (4, 6, 8)}

    def build(self):
        torch.manual_seed(0)
        return DepthEncoder(**self.config)


class TestKernelEncoder(_PerLevelChecks):
    in_ch = 9
    config = {'in_ch': 9, 'channels': (4, 4)}

    def build(self):
        torch.manual_seed(0)
        return KernelEncoder(**self.config)


class TestKernelEncoderCodes(TestKernelEncoder):
    in_ch = 5
    config = {'in_ch': 5, 'channels': (4, 4), 'kernel_input': 'codes'}


def test_kernel_field_is_read_as_k2_times_the_kernel():
    torch.manual_seed(0)
    field = KernelEncoder(in_ch=9, channels=(4,))
    codes = KernelEncoder(in_ch=9, channels=(4,), kernel_input='codes')
    codes.load_state_dict(field.state_dict())
    kernel = torch.softmax(torch.randn(1, 9, 4, 4), dim=1)
    torch.testing.assert_close(field(kernel)[0], codes(kernel * 9)[0])


@pytest.mark.parametrize('build, match', [
    # LR encoder
    (lambda: LREncoder(block_out_channels=()), 'block_out_channels must be a non-empty list'),
    (lambda: LREncoder(block_out_channels=(4, 8), out_channels=(4,), norm_num_groups=2), 'one entry per level'),
    (lambda: LREncoder(block_out_channels=(4, 6), norm_num_groups=4), 'norm_num_groups 4 must divide'),
    # conv pyramids
    (lambda: DepthEncoder(channels=(4, 0)), r'channels must be a non-empty list of positive ints, got \[4, 0\]'),
    (lambda: KernelEncoder(in_ch=9, kernel_input='pca'), r"'pca' not in \('field', 'codes'\)"),
    (lambda: KernelEncoder(in_ch=16), 'in_ch 16 is not k\\*k for an odd k'),
], ids=['lr_empty', 'lr_out_len', 'lr_groups', 'depth_channels', 'kernel_input', 'kernel_even'])
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize('net, x, match', [
    (DepthEncoder(channels=(4, 4)), torch.zeros(1, 2, 8, 8), r'expected a \(B, 1, h, w\) input'),
    (DepthEncoder(channels=(4, 4, 4, 4)), torch.zeros(1, 1, 4, 8), r'smaller than 8'),
    (KernelEncoder(in_ch=9, channels=(4,)), torch.zeros(1, 25, 8, 8), r'expected a \(B, 9, h, w\) input'),
], ids=['depth_channels', 'too_small', 'kernel_channels'])
def test_bad_inputs(net, x, match):
    with pytest.raises(ValueError, match=match):
        net(x)
