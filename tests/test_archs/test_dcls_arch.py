"""DCLS baseline: tiny-config arch checks, the official key layout, and the constrained least squares deconvolution."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ssr.archs.dcls_arch import DCLSNet, clsq_deconvolution, psf_to_otf
from tests.test_archs.arch_testing import ArchTesterMixin, checkpoint_model

FIXTURE = Path(__file__).resolve().parents[1] / 'data' / 'official_keys' / 'dcls_x4.json'
TINY = {'nf': 8, 'nb': 1, 'ng': 1, 'reduction': 2, 'upscale': 2, 'input_para': 4, 'kernel_size': 11,
        'estimator_blocks': 1, 'ca_reduction': 2}


def official_keys() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in json.loads(FIXTURE.read_text())['keys'].items()}


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def circular_conv_matrix(psf: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h*w, h*w) matrix of the circular convolution with a centred odd psf: (k * x)[i] = sum_a k[a] x[i - (a - c)]."""
    p, q = psf.shape
    mat = np.zeros((h * w, h * w))
    for i in range(h):
        for j in range(w):
            for a in range(p):
                for b in range(q):
                    mat[i * w + j, ((i - (a - p // 2)) % h) * w + (j - (b - q // 2)) % w] += psf[a, b]
    return mat


# ---------------------------------------------------------------------------------------------------------------------
# Shared arch checks (tiny config)
# ---------------------------------------------------------------------------------------------------------------------
class TestDCLSNet(ArchTesterMixin):
    arch = 'DCLSNet'
    config = TINY

    def inputs(self):
        return {'lq': rand(2, 3, 9, 10)}

    def check_output(self, out, inputs):
        assert out.sr.shape == (2, 3, 18, 20)
        assert out.sr.min() >= 0 and out.sr.max() <= 1
        assert out.kernel.shape == (2, 1, 11, 11)
        torch.testing.assert_close(out.kernel.sum(dim=(2, 3)), torch.ones(2, 1))


@pytest.mark.parametrize('kernel_size', [11, 21, 31])
def test_estimator_kernel_is_normalised(kernel_size):
    net = DCLSNet(**{**TINY, 'kernel_size': kernel_size}).eval()
    with torch.no_grad():
        kernel = net.Estimator(rand(3, 3, 8, 8))
    assert kernel.shape == (3, 1, kernel_size, kernel_size)
    torch.testing.assert_close(kernel.sum(dim=(2, 3)), torch.ones(3, 1))


def test_restorer_gets_a_detached_kernel():
    net = DCLSNet(**TINY)
    net(rand(1, 3, 8, 8)).sr.mean().backward()
    assert all(p.grad is None for p in net.Estimator.parameters())
    assert net.Restorer.head2.grad_filter[0].weight.grad is not None


# ---------------------------------------------------------------------------------------------------------------------
# Constrained least squares deconvolution
# ---------------------------------------------------------------------------------------------------------------------
def test_psf_to_otf_of_a_delta_is_one():
    delta = torch.zeros(1, 1, 5, 5)
    delta[..., 2, 2] = 1
    torch.testing.assert_close(psf_to_otf(delta, (6, 7)), torch.ones(1, 1, 6, 4, dtype=torch.complex64))


def test_deconvolution_matches_frequency_formula():
    y, k, p = rand(1, 2, 6, 7, seed=1), rand(1, 1, 3, 3, seed=2), rand(1, 2, 3, 3, seed=3) - 0.5
    k = k / k.sum()
    out = clsq_deconvolution(y, k, p)
    y64, k64, p64 = (t.double().numpy() for t in (y, k, p))

    def otf(psf):  # zero-pad, centre tap to (0, 0), full FFT
        padded = np.zeros(psf.shape[:-2] + (6, 7))
        padded[..., :3, :3] = psf
        return np.fft.fft2(np.roll(padded, (-1, -1), axis=(-2, -1)))

    k_f, p_f = otf(k64), otf(p64)
    expected = np.fft.ifft2(np.conj(k_f) * np.fft.fft2(y64) / (np.abs(k_f)**2 + np.abs(p_f)**2)).real
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-5)


def test_deconvolution_is_the_regularised_least_squares_solution():
    h, w = 5, 6
    y, k, p = rand(1, 1, h, w, seed=4), rand(1, 1, 3, 3, seed=5), rand(1, 1, 3, 3, seed=6)
    k, p = k / k.sum(), p - p.mean()  # DCLS's gradient filters are zero-mean
    a_k = circular_conv_matrix(k[0, 0].double().numpy(), h, w)
    a_p = circular_conv_matrix(p[0, 0].double().numpy(), h, w)
    # argmin ||A_k x - y||^2 + ||A_p x||^2  <=>  (A_k^T A_k + A_p^T A_p) x = A_k^T y
    x = np.linalg.solve(a_k.T @ a_k + a_p.T @ a_p, a_k.T @ y.double().numpy().reshape(-1))
    np.testing.assert_allclose(clsq_deconvolution(y, k, p).numpy().reshape(-1), x, rtol=0, atol=1e-4)


def test_delta_kernel_without_regulariser_is_identity():
    feat = rand(2, 3, 9, 8)
    delta = torch.zeros(2, 1, 7, 7)
    delta[..., 3, 3] = 1
    out = clsq_deconvolution(feat, delta, torch.zeros(2, 3, 3, 3))
    torch.testing.assert_close(out, feat, rtol=0, atol=1e-6)


def test_cls_branch_with_delta_kernel_and_flat_filter_is_reduce_expand():
    cls = DCLSNet(**TINY).Restorer.head2
    with torch.no_grad():
        cls.grad_filter[-1].weight.zero_()  # constant exp(.) minus its mean: a zero gradient filter
        feat, delta = rand(1, 8, 9, 10), torch.zeros(1, 1, 11, 11)
        delta[..., 5, 5] = 1
        torch.testing.assert_close(cls(feat, delta), cls.expand_feature(cls.reduce_feature(feat)), rtol=0,
                                   atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Official key layout and checkpoints
# ---------------------------------------------------------------------------------------------------------------------
def test_default_keys_match_official_fixture():
    ours = {k: tuple(v.shape) for k, v in DCLSNet().state_dict().items()}
    assert ours == official_keys()


@pytest.fixture(scope='module')
def official_files(tmp_path_factory) -> tuple[dict[str, torch.Tensor], dict[str, Path]]:
    """Random tensors in the official x4 layout, saved raw and with DataParallel's ``module.`` prefix."""
    gen = torch.Generator().manual_seed(0)
    state = {k: 0.02 * torch.randn(shape, generator=gen) for k, shape in official_keys().items()}
    root = tmp_path_factory.mktemp('dcls_official')
    files = {prefix: root / f'{prefix}DCLSx4_setting1.pth' for prefix in ('', 'module.')}
    for prefix, path in files.items():
        torch.save({prefix + k: v for k, v in state.items()}, path)
    return state, files


def load_default(tmp_path: Path, path: Path) -> DCLSNet:
    net = DCLSNet()
    checkpoint_model(tmp_path).load_network(net, str(path), strict=True)
    return net


@pytest.mark.parametrize('prefix', ['', 'module.'], ids=['raw', 'dataparallel'])
def test_official_state_dict_loads_strictly(tmp_path, official_files, prefix):
    state, files = official_files
    net = load_default(tmp_path, files[prefix])
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)


def test_official_layout_runs_on_cpu(tmp_path, official_files):
    net = load_default(tmp_path, official_files[1][''])
    with torch.no_grad():
        out = net.eval()(rand(1, 3, 8, 8))
    assert out.sr.shape == (1, 3, 32, 32) and torch.isfinite(out.sr).all()
    torch.testing.assert_close(out.kernel.sum(dim=(2, 3)), torch.ones(1, 1))


@pytest.mark.parametrize('config, expected', [
    ({}, 13_626_187),                                        # released x4 setting 1
    ({'nb': 16, 'input_para': 128}, 14_250_947),             # official class defaults
    ({'kernel_size': 31}, 19_054_027),                       # released x4 setting 2
], ids=['setting1-x4', 'class-defaults', 'setting2-x4'])
def test_parameter_counts(config, expected):
    count = sum(p.numel() for p in DCLSNet(**config).parameters())
    print(f'DCLSNet({config}): {count:,} parameters')
    assert count == expected


@pytest.mark.parametrize('upscale, present, absent', [
    (1, 'Restorer.upscale.weight', 'Restorer.upscale.0.weight'),
    (2, 'Restorer.upscale.2.weight', 'Restorer.upscale.4.weight'),
    (3, 'Restorer.upscale.2.weight', 'Restorer.upscale.4.weight'),
    (4, 'Restorer.upscale.4.weight', 'Restorer.upscale.weight'),
], ids=['x1', 'x2', 'x3', 'x4'])
def test_upscale_layouts(upscale, present, absent):
    keys = set(DCLSNet(**{**TINY, 'upscale': upscale}).state_dict())
    assert present in keys and absent not in keys


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('overrides, match', [
    ({'kernel_size': 13}, 'kernel_size 13 has no default filter chain'),
    ({'kernel_size': 10}, 'kernel_size must be odd'),
    ({'filter_structures': [7, 3, 1]}, r'filter_structures \(7, 3, 1\) must hold'),
    ({'upscale': 0}, 'upscale must be >= 1'),
    ({'reduction': 8}, r'nf // reduction = 8 // 8 must be >= ca_reduction = 2'),
    ({'nb': 0}, 'must be >= 1'),
], ids=['no-chain', 'even-k', 'bad-chain', 'upscale', 'reduction', 'nb'])
def test_bad_config_raises(overrides, match):
    with pytest.raises(ValueError, match=match):
        DCLSNet(**{**TINY, **overrides})


def test_too_small_input_raises():
    with pytest.raises(ValueError, match=r'LR sides >= 7, got \(6, 9\)'):
        DCLSNet(**TINY)(rand(1, 3, 6, 9))
