"""SVKR (Algorithm 1) on stub networks returning known tensors."""
from __future__ import annotations

import pytest
import torch

from ssr.pipelines.svkr import SVKR


class Stubs:
    """DE returns the mean of its input as a constant map; KE returns a field that depends on the call count;
    NBSR upsamples and adds the kernel's first tap, so every stage's influence is visible."""

    def __init__(self):
        self.calls = {'de': 0, 'ke': 0, 'sr': 0}
        self.fields = [torch.full((1, 4, 2, 2), v) for v in (0.1, 0.2, 0.3, 0.4, 0.5)]

    def de(self, img):
        self.calls['de'] += 1
        return img.mean(dim=(1, 2, 3), keepdim=True).expand(-1, 1, 4, 4)

    def ke(self, lq, depth):
        field = self.fields[self.calls['ke']]
        self.calls['ke'] += 1
        return field

    def sr(self, lq, kernel):
        self.calls['sr'] += 1
        return torch.nn.functional.interpolate(lq, scale_factor=2) + kernel[:, :1].mean()


def run(iterations, gamma, **kw):
    stubs = Stubs()
    out = SVKR(stubs.de, stubs.ke, stubs.sr, iterations, gamma)(torch.zeros(1, 3, 2, 2), **kw)
    return stubs, out


def test_t0_returns_the_first_estimate():
    stubs, out = run(0, 0.9)
    assert stubs.calls == {'de': 1, 'ke': 1, 'sr': 1}
    torch.testing.assert_close(out.kernel, stubs.fields[0])
    torch.testing.assert_close(out.sr, torch.full((1, 3, 4, 4), 0.1))


def test_gamma_one_ignores_history():
    stubs, out = run(3, 1.0)
    torch.testing.assert_close(out.kernel, stubs.fields[3])


def test_ema_matches_equation_2():
    stubs, out = run(3, 0.9, return_iterates=True)
    expected = stubs.fields[0]
    for t in range(1, 4):
        expected = 0.9 * stubs.fields[t] + 0.1 * expected
        torch.testing.assert_close(out.iterates[t]['kernel'], expected)
    torch.testing.assert_close(out.kernel, expected)
    assert stubs.calls == {'de': 4, 'ke': 4, 'sr': 4} and len(out.iterates) == 4


def test_depth_is_recomputed_from_the_latest_sr():
    stubs, out = run(2, 0.5, return_iterates=True)
    torch.testing.assert_close(out.iterates[1]['depth'], out.iterates[0]['sr'].mean().expand(1, 1, 4, 4))
    torch.testing.assert_close(out.depth, out.iterates[1]['sr'].mean().expand(1, 1, 4, 4))


def test_blend_keeps_fields_normalised():
    fields = iter([torch.softmax(torch.randn(2, 9, 3, 3), 1) for _ in range(4)])
    out = SVKR(lambda x: x[:, :1], lambda lq, d: next(fields), lambda lq, k: lq, 3, 0.7)(torch.rand(2, 3, 3, 3))
    torch.testing.assert_close(out.kernel.sum(1), torch.ones(2, 3, 3))


@pytest.mark.parametrize('kw,match', [({'iterations': -1}, 'iterations'), ({'iterations': 1.5}, 'iterations'),
                                      ({'gamma': 1.1}, 'gamma'), ({'gamma': -0.1}, 'gamma')],
                         ids=['negative-T', 'float-T', 'gamma>1', 'gamma<0'])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        SVKR(lambda x: x, lambda a, b: a, lambda a, b: a, **kw)
