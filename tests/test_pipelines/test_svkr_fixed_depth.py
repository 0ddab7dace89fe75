"""SVKR with a fixed depth (svkr.depth: file / none) on tiny random DKENet and NBSR: the rounds after the first SR
image repeat it bit for bit, so SVKR skips them, and its output equals the full loop's bit for bit.

Why they repeat: DKENet sees only LR and the depth, so with a fixed depth every round's estimate K' is K^0, and Eq. 2
K^t = gamma K' + (1 - gamma) K^{t-1} = K^0 for K^{t-1} = K^0 (a blend of two equal fields is that field exactly).
With a depth that follows the SR image the rounds differ, and none is skipped."""
from __future__ import annotations

import pytest
import torch

from ssr.archs.dkenet_arch import DKENet
from ssr.archs.nbsr_arch import NBSR
from ssr.pipelines.svkr import SVKR, FixedDepth, depth_function, estimate_kernel, super_resolve

KEYS = ('depth', 'kernel', 'sr')


class Counted:
    """``fn`` that counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


@pytest.fixture(scope='module')
def nets():
    torch.manual_seed(0)
    dkenet = DKENet(num_feat=8, kernel_size=11, sft_hidden_ch=8).eval()
    nbsr = NBSR(num_feat=8, num_block=1, num_grow_ch=4, kernel_size=11, pca_components=6, sft_hidden_ch=8,
                use_noise_level=False).eval()
    return dkenet, nbsr


@pytest.fixture(scope='module')
def lq():
    return torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def run(nets, lq, depth_fn, init, iterations, gamma, fixed_depth=None):
    """(output, {'ke': calls, 'sr': calls}) of SVKR over the tiny networks."""
    dkenet, nbsr = nets
    ke = Counted(lambda x, d: estimate_kernel(dkenet, x, d))
    sr = Counted(lambda x, k: super_resolve(nbsr, x, k))
    svkr = SVKR(depth_fn, ke, sr, iterations, gamma, init=init, fixed_depth=fixed_depth)
    with torch.no_grad():
        out = svkr(lq, return_iterates=True)
    return out, {'ke': ke.calls, 'sr': sr.calls}


def fixed(source):
    depth_map = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    return depth_function(source, depth_map=depth_map if source == 'file' else None)


def assert_bitwise_equal(a, b):
    for key in KEYS:
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert len(a.iterates) == len(b.iterates)
    for t, (x, y) in enumerate(zip(a.iterates, b.iterates)):
        for key in KEYS:
            assert x[key].shape == y[key].shape and torch.equal(x[key], y[key]), (t, key)


@pytest.mark.parametrize('iterations', [1, 3])
@pytest.mark.parametrize('init', ['nbsr', 'lr'])
@pytest.mark.parametrize('source', ['file', 'none'])
def test_skipped_rounds_give_the_full_loop_bit_for_bit(nets, lq, source, init, iterations):
    skipped, calls = run(nets, lq, fixed(source), init, iterations, 0.9)
    full, full_calls = run(nets, lq, fixed(source), init, iterations, 0.9, fixed_depth=False)
    assert_bitwise_equal(skipped, full)
    assert calls == {'ke': 1, 'sr': 1}
    rounds = iterations + 1 if init == 'nbsr' else iterations
    assert full_calls == {'ke': rounds, 'sr': rounds}


@pytest.mark.parametrize('gamma', [0.3, 0.9])
@pytest.mark.parametrize('source', ['file', 'none'])
def test_eq2_keeps_the_first_kernel_when_the_depth_is_fixed(nets, lq, source, gamma):
    """The full loop itself: every K^t and I^t is K^0 and I^0, bit for bit (so the skipped rounds are repeats)."""
    full, _ = run(nets, lq, fixed(source), 'nbsr', 3, gamma, fixed_depth=False)
    for it in full.iterates[1:]:
        assert torch.equal(it['kernel'], full.iterates[0]['kernel'])
        assert torch.equal(it['sr'], full.iterates[0]['sr'])


def test_a_depth_that_follows_the_sr_image_runs_every_round(nets, lq):
    depth_fn = Counted(lambda img: torch.sigmoid(4 * (img.mean(1, keepdim=True) - 0.5)))
    out, calls = run(nets, lq, depth_fn, 'nbsr', 3, 0.9)
    assert calls == {'ke': 4, 'sr': 4} and depth_fn.calls == 4
    kernels = [it['kernel'] for it in out.iterates]
    assert all(not torch.equal(a, b) for a, b in zip(kernels, kernels[1:]))


@pytest.mark.parametrize('source, expected', [('file', True), ('none', True), ('midas', False)])
def test_which_depth_sources_are_fixed(source, expected):
    depth_fn = fixed(source) if source != 'midas' else depth_function('midas', torch.nn.Identity())
    assert isinstance(depth_fn, FixedDepth) is expected
    assert SVKR(depth_fn, lambda x, d: x, lambda x, k: x).fixed_depth is expected
