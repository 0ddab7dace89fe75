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


def run(iterations, gamma, init='nbsr', **kw):
    stubs = Stubs()
    out = SVKR(stubs.de, stubs.ke, stubs.sr, iterations, gamma, init=init)(torch.zeros(1, 3, 2, 2), **kw)
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


# ----------------------------------------------------------------------------------------------------------------
# svkr.init: lr is Algorithm 1 as written (I^0 = LR); nbsr starts from NBSR(LR, K^0)
def de_mean(img):
    return img.mean(dim=(1, 2, 3), keepdim=True).expand(-1, 1, 4, 4)


def ke_of_depth(lq, depth):
    """A kernel field that depends on both inputs (softmax over 4 taps)."""
    logits = torch.stack([depth.mean() * i + lq.mean() for i in range(4)]).reshape(1, 4, 1, 1)
    return torch.softmax(logits, 1).expand(lq.shape[0], 4, lq.shape[2], lq.shape[3])


def sr_add(lq, kernel):
    return torch.nn.functional.interpolate(lq + 3 * kernel[:, :1], scale_factor=2)


def algorithm_1_literal(lq, iterations, gamma):
    """Algorithm 1 line by line, round 1 included (it recomputes DE(LR) and KE(LR, D^0))."""
    img = lq  # I_0 = LR
    depth = de_mean(img)
    kernel = ke_of_depth(lq, depth)
    for _ in range(iterations):
        depth = de_mean(img)
        kernel = gamma * ke_of_depth(lq, depth) + (1 - gamma) * kernel
        img = sr_add(lq, kernel)
    return depth, kernel, img


@pytest.mark.parametrize('iterations', [1, 2, 3])
def test_init_lr_is_algorithm_1_as_written(iterations):
    lq = torch.rand(1, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    depth, kernel, sr = algorithm_1_literal(lq, iterations, 0.9)
    out = SVKR(de_mean, ke_of_depth, sr_add, iterations, 0.9, init='lr')(lq)
    torch.testing.assert_close(out.depth, depth)
    torch.testing.assert_close(out.kernel, kernel)
    torch.testing.assert_close(out.sr, sr)


@pytest.mark.parametrize('iterations', [1, 2, 3])
def test_init_lr_with_t_rounds_is_init_nbsr_with_t_minus_1(iterations):
    lq = torch.rand(1, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    lr = SVKR(de_mean, ke_of_depth, sr_add, iterations, 0.9, init='lr')(lq, return_iterates=True)
    nbsr = SVKR(de_mean, ke_of_depth, sr_add, iterations - 1, 0.9, init='nbsr')(lq, return_iterates=True)
    for key in ('depth', 'kernel', 'sr'):
        assert torch.equal(getattr(lr, key), getattr(nbsr, key)), key
    assert len(lr.iterates) == iterations + 1 and lr.iterates[0]['sr'] is lq  # I^0 = LR
    for a, b in zip(lr.iterates[1:], nbsr.iterates):
        assert all(torch.equal(a[key], b[key]) for key in ('depth', 'kernel', 'sr'))


def loop_before_init_option(lq, iterations, gamma):
    """SVKR.__call__ as it was before svkr.init (I^0 = NBSR(LR, K^0)), the reference for the default."""
    depth = de_mean(lq)
    kernel = ke_of_depth(lq, depth)
    sr = sr_add(lq, kernel)
    for _ in range(iterations):
        depth = de_mean(sr)
        kernel = torch.lerp(kernel, ke_of_depth(lq, depth), gamma)
        sr = sr_add(lq, kernel)
    return depth, kernel, sr


@pytest.mark.parametrize('iterations', [0, 1, 3])
def test_default_init_is_the_loop_before_the_option_bit_for_bit(iterations):
    lq = torch.rand(1, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    out = SVKR(de_mean, ke_of_depth, sr_add, iterations, 0.9)(lq)
    for got, expected in zip((out.depth, out.kernel, out.sr), loop_before_init_option(lq, iterations, 0.9)):
        assert torch.equal(got, expected)


@pytest.mark.parametrize('init, iterations, calls', [
    ('nbsr', 0, 1), ('nbsr', 1, 2), ('nbsr', 3, 4),
    ('lr', 0, 1), ('lr', 1, 1), ('lr', 3, 3),
], ids=['nbsr-T0', 'nbsr-T1', 'nbsr-T3', 'lr-T0', 'lr-T1', 'lr-T3'])
def test_calls_per_image(init, iterations, calls):
    """The table of the SVKR docstring: DE, KE and NBSR each T + 1 (nbsr) or T (lr, T >= 1) times."""
    stubs, out = run(iterations, 0.9, init=init)
    assert stubs.calls == {'de': calls, 'ke': calls, 'sr': calls}
    assert out.sr.shape == (1, 3, 4, 4)  # an SR image even for lr with T = 0


@pytest.mark.parametrize('kw,match', [({'iterations': -1}, 'iterations'), ({'iterations': 1.5}, 'iterations'),
                                      ({'gamma': 1.1}, 'gamma'), ({'gamma': -0.1}, 'gamma'),
                                      ({'init': 'bicubic'}, r"svkr.init 'bicubic' not in \('nbsr', 'lr'\)")],
                         ids=['negative-T', 'float-T', 'gamma>1', 'gamma<0', 'unknown-init'])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        SVKR(lambda x: x, lambda a, b: a, lambda a, b: a, **kw)


def test_kernel_field_of_keeps_a_per_pixel_field_and_spreads_a_per_image_kernel():
    from ssr.pipelines.svkr import kernel_field_of

    lq = torch.rand(2, 3, 5, 6)
    field = torch.softmax(torch.randn(2, 49, 5, 6), 1)  # MANet: one kernel per LR pixel
    assert kernel_field_of(field, lq) is field
    per_image = torch.softmax(torch.randn(2, 49), 1).view(2, 1, 7, 7)  # DCLS: one kernel per image
    spread = kernel_field_of(per_image, lq)
    assert spread.shape == (2, 49, 5, 6) and torch.equal(spread[:, :, 4, 5], per_image.view(2, 49))
    assert kernel_field_of(None, lq) is None
