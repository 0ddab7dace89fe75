"""Kernel PCA: held-out reconstruction of sampled Gaussian kernels, shapes, state_dict and file round trips."""
from __future__ import annotations

import math

import pytest
import torch

from ssr.ops.kernel_pca import KernelPCA
from ssr.ops.kernels import gaussian_kernels

K, SCALE = 21, 4


def sample_gaussians(n: int, seed: int, iso_fraction: float = 0.2, low: float = 0.2) -> torch.Tensor:
    """(n, K, K) Gaussians, sigma1, sigma2 ~ U[low, 4] std, theta ~ U[0, pi); ``iso_fraction`` get sigma2 = sigma1."""
    g = torch.Generator().manual_seed(seed)
    u1, u2, u_theta, u_iso = torch.rand(4, n, generator=g, dtype=torch.float64)
    sigma1 = low + (4 - low) * u1
    sigma2 = torch.where(u_iso < iso_fraction, sigma1, low + (4 - low) * u2)
    return gaussian_kernels(sigma1, sigma2, math.pi * u_theta, K, SCALE)


def as_field(kernels: torch.Tensor, h: int = 40) -> torch.Tensor:
    """(N, K, K) -> (1, K*K, h, N // h) float32 field."""
    return kernels.reshape(1, -1, K * K).permute(0, 2, 1).reshape(1, K * K, h, -1).float()


def relative_errors(pca: KernelPCA, kernels: torch.Tensor) -> torch.Tensor:
    field = as_field(kernels)
    return ((pca.decode(pca.encode(field)) - field).norm(dim=1) / field.norm(dim=1)).flatten()


@pytest.fixture(scope='module')
def train_kernels() -> torch.Tensor:
    return sample_gaussians(10000, seed=0)


@pytest.fixture(scope='module')
def held_out() -> torch.Tensor:
    return sample_gaussians(2000, seed=1)


@pytest.fixture(scope='module')
def pca15(train_kernels) -> KernelPCA:
    return KernelPCA.fit(train_kernels, 15)


# ---------------------------------------------------------------------------------------------------------------------
# Reconstruction of held-out kernels
# ---------------------------------------------------------------------------------------------------------------------
def test_l15_reconstruction_of_anisotropic_gaussians(pca15, held_out):
    # Measured (torch 2.14.1): mean 9.1 %, max 41 %. A 2 % mean is out of reach for any 15-dim linear code of this
    # family: the anisotropic sigma in [0.2, 4] set needs about 40 components for that (next test).
    err = relative_errors(pca15, held_out)
    assert err.mean().item() < 0.11 and err.max().item() < 0.5


def test_45_components_reach_two_percent(train_kernels, held_out):
    err = relative_errors(KernelPCA.fit(train_kernels, 45), held_out)  # measured: mean 1.4 %, max 13 %
    assert err.mean().item() < 0.02


def test_l15_reaches_two_percent_for_sigmas_from_one_pixel():
    """The issue's '< 2 % at L = 15' holds once kernels are at least about one HR pixel wide (sigma >= 1 std);
    narrower kernels approach shifted deltas, which no 15-dimensional linear code spans (see the test above)."""
    pca = KernelPCA.fit(sample_gaussians(10000, seed=0, low=1.0).reshape(-1, K * K), num_components=15)
    errors = relative_errors(pca, sample_gaussians(2000, seed=1, low=1.0))
    assert float(errors.mean()) < 0.02


def test_l15_is_near_exact_for_isotropic_gaussians():
    # The isotropic family (IKC's x4 setting, sigma in [0.2, 4]) is one smooth curve: 15 components suffice.
    pca = KernelPCA.fit(sample_gaussians(2000, seed=2, iso_fraction=1.0), 15)
    assert relative_errors(pca, sample_gaussians(1000, seed=3, iso_fraction=1.0)).max().item() < 1e-3


def test_inverse_norm_weights_lower_the_mean_relative_error(train_kernels, held_out, pca15):
    weights = train_kernels.flatten(1).norm(dim=1).pow(-2)
    weighted = KernelPCA.fit(train_kernels, 15, weights=weights)  # measured: 6.6 % vs 9.1 %
    assert relative_errors(weighted, held_out).mean() < relative_errors(pca15, held_out).mean()


def test_fit_properties(pca15):
    comps = pca15.components.double()
    assert torch.allclose(comps @ comps.t(), torch.eye(15, dtype=torch.float64), atol=1e-5)
    assert pca15.mean.sum().item() == pytest.approx(1.0, abs=1e-5)
    # Centred kernels sum to 0, so every component is orthogonal to the all-ones vector.
    assert comps.sum(1).abs().max().item() < 1e-5
    ratio = pca15.explained_variance_ratio
    assert bool((ratio[:-1] >= ratio[1:]).all()) and 0.9 < ratio.sum().item() <= 1.0


def test_decoded_kernels_sum_to_one(pca15):
    codes = torch.randn(2, 15, 3, 4, generator=torch.Generator().manual_seed(4)) * 0.05
    assert torch.allclose(pca15.decode(codes).sum(1), torch.ones(2, 3, 4), atol=1e-4)


def test_fit_is_deterministic(train_kernels):
    first, again = KernelPCA.fit(train_kernels[:2000], 15), KernelPCA.fit(train_kernels[:2000], 15)
    assert torch.equal(again.components, first.components) and torch.equal(again.mean, first.mean)


# ---------------------------------------------------------------------------------------------------------------------
# Shapes, state_dict and files
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_encode_decode_shapes(pca15, dtype):
    field = as_field(sample_gaussians(24, seed=5), h=4).to(dtype)  # (1, 441, 4, 6)
    codes = pca15.encode(field)
    assert codes.shape == (1, 15, 4, 6) and codes.dtype == dtype
    assert pca15.decode(codes).shape == (1, K * K, 4, 6)
    assert torch.equal(pca15(field), codes)


def test_state_dict_round_trip(pca15):
    state = pca15.state_dict()
    assert set(state) == {'mean', 'components'}
    fresh = KernelPCA(kernel_size=K, num_components=15)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.components, pca15.components) and torch.equal(fresh.mean, pca15.mean)


def test_buffers_follow_a_parent_network(pca15):
    net = torch.nn.Sequential()
    net.add_module('kernel_pca', pca15)
    assert {'kernel_pca.mean', 'kernel_pca.components'} <= set(net.state_dict())


def test_save_load_round_trip(pca15, tmp_path):
    path = tmp_path / 'kernel_pca.pth'
    pca15.save(path)
    loaded = KernelPCA.load(path)
    assert loaded.kernel_size == K and loaded.num_components == 15
    assert torch.equal(loaded.components, pca15.components)
    assert torch.equal(loaded.explained_variance_ratio, pca15.explained_variance_ratio)
    assert [p.name for p in tmp_path.iterdir()] == ['kernel_pca.pth']  # no temporary file left behind


def test_load_rejects_a_file_without_the_keys(tmp_path):
    path = tmp_path / 'bad.pth'
    torch.save({'mean': torch.zeros(9)}, path)
    with pytest.raises(ValueError, match=r"bad.pth lacks key\(s\) \['components', 'kernel_size'\]"):
        KernelPCA.load(path)


def test_load_missing_file_names_the_script(tmp_path):
    with pytest.raises(FileNotFoundError, match='fit_kernel_pca.py'):
        KernelPCA.load(tmp_path / 'absent.pth')


BAD_INPUTS = [
    (lambda: KernelPCA(kernel_size=20), r'kernel_size must be odd and >= 1, got 20', 'even-kernel-size'),
    (lambda: KernelPCA(kernel_size=3, num_components=10), r'num_components must be in \[1, k\*k = 9\]', 'L-gt-kk'),
    (lambda: KernelPCA(kernel_size=3, num_components=0), r'num_components must be in \[1, k\*k = 9\]', 'L-zero'),
    (lambda: KernelPCA.fit(torch.rand(5, 50), 2), r'50 taps .* k odd', 'non-square-taps'),
    (lambda: KernelPCA.fit(torch.rand(5, 16), 2), r'16 taps .* k odd', 'even-taps'),
    (lambda: KernelPCA.fit(torch.rand(3, 9), 4), r'need N >= max\(2, num_components\)', 'too-few-kernels'),
    (lambda: KernelPCA.fit(torch.rand(4, 9), 2, weights=-torch.ones(4)), r'weights must be \(4,\) positive',
     'negative-weights'),
    (lambda: KernelPCA(3, 2).encode(torch.rand(1, 8, 2, 2)), r'field must be \(B, k\*k, h, w\) with 9 channels',
     'field-channels'),
    (lambda: KernelPCA(3, 2).decode(torch.rand(1, 3, 2, 2)), r'codes must be \(B, L, h, w\) with 2 channels',
     'code-channels'),
]


@pytest.mark.parametrize(('call', 'match'), [case[:2] for case in BAD_INPUTS], ids=[case[2] for case in BAD_INPUTS])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
