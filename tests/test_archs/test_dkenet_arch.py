"""DKENet: shared arch checks, kernels that sum to 1 on odd sizes, the HR view, depth sensitivity, the ablation."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from ssr.archs.dkenet_arch import DKENet, DKENetOutput
from tests.test_archs.arch_testing import ArchTesterMixin

K = 5
TINY = {'num_feat': 8, 'num_blocks': 1, 'kernel_size': K, 'sft_hidden_ch': 4}


def lq_and_depth(b: int = 2, h: int = 15, w: int = 17) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 3, h, w, generator=g), torch.rand(b, 1, 4 * h, 4 * w, generator=g)


class TestDKENet(ArchTesterMixin):
    arch = 'DKENet'
    config = dict(TINY, upscale_to_hr=4)

    def inputs(self):
        lq, depth = lq_and_depth()
        return {'lq': lq, 'depth': depth}

    def check_output(self, out, inputs):
        assert isinstance(out, DKENetOutput)
        assert out.kernel.shape == (2, K * K, 15, 17)
        assert (out.kernel > 0).all()
        torch.testing.assert_close(out.kernel.sum(1), torch.ones(2, 15, 17))
        torch.testing.assert_close(out.kernel_hr, out.kernel.repeat_interleave(4, 2).repeat_interleave(4, 3),
                                   rtol=0, atol=0)


class TestDKENetWithoutDepth(ArchTesterMixin):
    arch = 'DKENet'
    config = dict(TINY, num_blocks=2, use_depth=False)

    def inputs(self):
        return {'lq': lq_and_depth(h=8, w=6)[0]}

    def check_output(self, out, inputs):
        assert out.kernel.shape == (2, K * K, 8, 6) and out.kernel_hr is None
        torch.testing.assert_close(out.kernel.sum(1), torch.ones(2, 8, 6))


def test_depth_changes_the_kernels():
    torch.manual_seed(0)
    net = DKENet(**TINY).eval()
    lq, depth = lq_and_depth(b=1)
    with torch.no_grad():
        a = net(lq, depth).kernel
        b = net(lq, depth.flip(-1)).kernel
    assert (a - b).abs().max() > 1e-5


def test_ablation_has_no_depth_parameters_and_ignores_depth():
    torch.manual_seed(0)
    net = DKENet(**TINY, use_depth=False).eval()
    assert not [k for k in net.state_dict() if 'depth' in k or 'sft' in k]
    lq, depth = lq_and_depth(b=1)
    with torch.no_grad():
        torch.testing.assert_close(net(lq).kernel, net(lq, depth).kernel, rtol=0, atol=0)


def test_depth_of_any_size_equals_depth_on_the_lr_grid():
    torch.manual_seed(0)
    net = DKENet(**TINY).eval()
    lq, depth = lq_and_depth(b=1, h=8, w=8)
    with torch.no_grad():
        torch.testing.assert_close(net(lq, depth).kernel, net(lq, F.avg_pool2d(depth, 4)).kernel)


def test_parameter_count_of_default_config():
    counts = {flag: sum(p.numel() for p in DKENet(use_depth=flag).parameters()) for flag in (True, False)}
    print(f'DKENet default parameters: {counts[True]} (without depth: {counts[False]})')
    assert counts == {True: 1255513, False: 581817}


@pytest.mark.parametrize('kwargs, match', [
    ({'num_feat': 0}, 'num_feat must be >= 1'),
    ({'num_blocks': 0}, 'num_blocks must be >= 1'),
    ({'kernel_size': 20}, 'kernel_size must be odd'),
    ({'upscale_to_hr': -1}, 'upscale_to_hr must be 0'),
    ({'num_feat': 4, 'reduction': 4}, 'reduction 4 leaves no hidden channel'),
], ids=['num_feat', 'num_blocks', 'even-kernel', 'negative-upscale', 'maconv-reduction'])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DKENet(**kwargs)


@pytest.mark.parametrize('lq, depth, match', [
    ((1, 1, 8, 8), (1, 1, 8, 8), r'lq must be \(B, 3'),
    ((1, 3, 8, 8), None, 'depth .* is required'),
    ((1, 3, 8, 8), (1, 3, 8, 8), r'depth must be \(1, 1'),
    ((2, 3, 8, 8), (1, 1, 8, 8), r'depth must be \(2, 1'),
], ids=['lq-channels', 'depth-missing', 'depth-channels', 'depth-batch'])
def test_bad_inputs(lq, depth, match):
    net = DKENet(**TINY)
    with pytest.raises(ValueError, match=match):
        net(torch.rand(lq), None if depth is None else torch.rand(depth))
