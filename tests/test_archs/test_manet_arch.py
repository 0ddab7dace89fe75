"""MANet baseline: tiny-config arch checks, the official stage-3 key layout, and MANet's kernel conventions."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ssr.archs.manet_arch import (MANetBlindSR, MANetEstimator, MANetSR, manet_field_to_ssr,
                                  manet_variances_to_ssr_sigmas, ssr_field_to_manet)
from ssr.ops.kernels import gaussian_kernels
from tests.test_archs.arch_testing import ArchTesterMixin, checkpoint_model

FIXTURE = Path(__file__).resolve().parents[1] / 'data' / 'official_keys' / 'manet_stage3.json'
TINY_SR = {'nf': 4, 'nb': 1, 'gc': 4, 'scale': 2, 'code_length': 3, 'kernel_size': 5}


def official_keys() -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in json.loads(FIXTURE.read_text())['keys'].items()}


def random_field(b: int, k: int, h: int, w: int) -> torch.Tensor:
    return torch.softmax(torch.randn(b, k * k, h, w, generator=torch.Generator().manual_seed(1)), dim=1)


def manet_anisotropic_kernel(var1: float, var2: float, theta: float, kernel_size: int, scale: int) -> np.ndarray:
    """MANet's training kernel, written from its documented formula (codes/utils/util.py, commit 34f90ba):
    a Gaussian with covariance from *variances* on a (k - s + 1)^2 grid of offsets centred on its middle, with
    (x, y) = (column, row), values below eps * max zeroed, normalised, stored top-left in a k x k array."""
    n = kernel_size - scale + 1
    cov = np.array([[var1 * math.cos(theta)**2 + var2 * math.sin(theta)**2, (var1 - var2) * math.cos(theta) *
                     math.sin(theta)],
                    [(var1 - var2) * math.cos(theta) * math.sin(theta),
                     var1 * math.sin(theta)**2 + var2 * math.cos(theta)**2]])
    offsets = np.arange(n) - (n / 2 - 0.5)
    rows, cols = np.meshgrid(offsets, offsets, indexing='ij')
    pos = np.stack([cols, rows], axis=-1)
    k = np.exp(-0.5 * np.einsum('...i,ij,...j->...', pos, np.linalg.inv(cov), pos))
    k[k < np.finfo(float).eps * k.max()] = 0
    out = np.zeros((kernel_size, kernel_size))
    out[:n, :n] = k / k.sum()
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Shared arch checks (tiny configs)
# ---------------------------------------------------------------------------------------------------------------------
class TestMANetEstimator(ArchTesterMixin):
    arch = 'MANetEstimator'
    config = {'in_nc': 3, 'kernel_size': 5, 'nc': [4, 8], 'nb': 1, 'split': 2, 'scale': 2}

    def inputs(self):
        return {'lq': torch.rand(1, 3, 10, 13, generator=torch.Generator().manual_seed(0))}  # not multiples of 8

    def check_output(self, out, inputs):
        assert out.shape == (1, 25, 10, 13)
        assert (out >= 0).all()
        torch.testing.assert_close(out.sum(dim=1), torch.ones(1, 10, 13))


class TestMANetSR(ArchTesterMixin):
    arch = 'MANetSR'
    config = TINY_SR

    def inputs(self):
        return {'lq': torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(0)),
                'kernel': random_field(1, 5, 6, 7)}

    def check_output(self, out, inputs):
        assert out.shape == (1, 3, 12, 14)


class TestMANetBlindSR(ArchTesterMixin):
    arch = 'MANetBlindSR'
    config = {**TINY_SR, 'manet_nf': 4, 'manet_nb': 1}

    def inputs(self):
        return {'lq': torch.rand(2, 3, 6, 9, generator=torch.Generator().manual_seed(0))}

    def check_output(self, out, inputs):
        assert out.sr.shape == (2, 3, 12, 18)
        assert out.kernel.shape == (2, 25, 6, 9)
        torch.testing.assert_close(out.kernel.sum(dim=1), torch.ones(2, 6, 9))


@pytest.mark.parametrize('layout', ['manet', 'ssr'])
def test_estimator_kernels_sum_to_one(layout):
    net = MANetEstimator(kernel_size=7, nc=(4, 8), scale=4, kernel_layout=layout).eval()
    with torch.no_grad():
        kernel = net(torch.rand(2, 3, 5, 11))
    assert (kernel >= 0).all()
    torch.testing.assert_close(kernel.sum(dim=1), torch.ones(2, 5, 11))


def test_blind_sr_estimator_frozen_by_default():
    net = MANetBlindSR(**TINY_SR, manet_nf=4)
    assert not any(p.requires_grad for p in net.kernel_estimation.parameters())
    trained = MANetBlindSR(**TINY_SR, manet_nf=4, train_estimator=True)
    trained(torch.rand(1, 3, 6, 6)).sr.mean().backward()
    assert all(p.grad is not None for p in trained.kernel_estimation.parameters())


# ---------------------------------------------------------------------------------------------------------------------
# Official key layout and checkpoints
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('nb, expected', [
    (0, ['m_down1.weight', 'm_up1.weight']),
    (1, ['m_down1.0.res.0.fc0.0.weight', 'm_down1.1.weight', 'm_body.res.2.conv1.bias', 'm_up1.0.weight',
         'm_up1.1.res.0.fc1.2.weight']),
    (2, ['m_down1.1.res.0.conv0.weight', 'm_down1.2.weight', 'm_body.0.res.0.fc0.0.weight', 'm_body.1.res.2.conv1.bias',
         'm_up1.2.res.0.conv1.weight']),
], ids=['nb0', 'nb1', 'nb2'])
def test_estimator_keys_follow_official_sequential_unwrapping(nb, expected):
    keys = set(MANetEstimator(nc=(4, 8), nb=nb).state_dict())
    assert set(expected) <= keys


def test_default_keys_match_official_fixture():
    ours = {k: tuple(v.shape) for k, v in MANetBlindSR().state_dict().items()}
    assert ours == official_keys()


@pytest.fixture(scope='module')
def official_files(tmp_path_factory) -> tuple[dict[str, torch.Tensor], dict[str, Path]]:
    """Random tensors in the official stage-3 layout, saved raw and with DataParallel's ``module.`` prefix."""
    gen = torch.Generator().manual_seed(0)
    state = {k: 0.02 * torch.randn(shape, generator=gen) for k, shape in official_keys().items()}
    root = tmp_path_factory.mktemp('manet_official')
    files = {prefix: root / f'{prefix}250000_G.pth' for prefix in ('', 'module.')}
    for prefix, path in files.items():
        torch.save({prefix + k: v for k, v in state.items()}, path)
    return state, files


@pytest.mark.parametrize('cls, prefix, file_prefix', [
    (MANetBlindSR, '', ''), (MANetBlindSR, '', 'module.'), (MANetEstimator, 'kernel_estimation.', ''),
    (MANetSR, '', '')], ids=['blind-sr', 'blind-sr-dataparallel', 'estimator', 'sr'])
def test_official_stage3_file_loads_strictly(tmp_path, official_files, cls, prefix, file_prefix):
    state, files = official_files
    net = cls()
    checkpoint_model(tmp_path).load_network(net, str(files[file_prefix]), strict=True)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[prefix + key], rtol=0, atol=0, msg=key)


def test_official_layout_runs_on_cpu(tmp_path, official_files):
    net = MANetBlindSR()
    checkpoint_model(tmp_path).load_network(net, str(official_files[1]['']), strict=True)
    with torch.no_grad():
        out = net.eval()(torch.rand(1, 3, 8, 8))
    assert out.sr.shape == (1, 3, 32, 32) and torch.isfinite(out.sr).all()
    torch.testing.assert_close(out.kernel.sum(dim=1), torch.ones(1, 8, 8))


def test_missing_key_is_reported(tmp_path):
    state = {k: torch.zeros(shape) for k, shape in official_keys().items() if k != 'trunk_conv.bias'}
    torch.save(state, tmp_path / 'broken.pth')
    with pytest.raises(RuntimeError, match=r'missing: trunk_conv\.bias'):
        checkpoint_model(tmp_path).load_network(MANetBlindSR(), str(tmp_path / 'broken.pth'), strict=True)


@pytest.mark.parametrize('cls, expected', [(MANetEstimator, 1_810_361), (MANetSR, 8_086_256),
                                           (MANetBlindSR, 9_896_617)], ids=['estimator', 'sr', 'blind_sr'])
def test_default_parameter_counts(cls, expected):
    count = sum(p.numel() for p in cls().parameters())
    print(f'{cls.__name__}: {count:,} parameters')
    assert count == expected


def test_pca_path_reads_official_format(tmp_path):
    pca = torch.linalg.qr(torch.randn(25, 3))[0]
    torch.save(pca, tmp_path / 'pca_matrix_aniso5_3_x2.pth')
    net = MANetSR(**TINY_SR, pca_path=tmp_path / 'pca_matrix_aniso5_3_x2.pth')
    torch.testing.assert_close(net.pca_matrix, pca.reshape(1, 25, 3, 1, 1))


def test_kernel_codes_match_official_formula():
    net = MANetSR(**TINY_SR)
    net.pca_matrix.copy_(torch.randn(1, 25, 3, 1, 1))
    field = random_field(2, 5, 4, 3)
    # MANet_s3.forward: (kernel.unsqueeze(2) * pca_matrix).sum(1)
    torch.testing.assert_close(net.kernel_codes(field), (field.unsqueeze(2) * net.pca_matrix).sum(1))


# ---------------------------------------------------------------------------------------------------------------------
# Kernel conventions
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('var1, var2, theta, scale', [
    (6.0, 1.0, 0.0, 4), (6.0, 1.0, 0.7853981633974483, 4), (3.0, 0.5, 2.0, 3), (2.0, 2.0, 0.0, 2)],
    ids=['aniso-x4', 'rotated-x4', 'rotated-x3', 'iso-x2'])
def test_manet_gaussian_becomes_ssr_gaussian(var1, var2, theta, scale):
    manet = torch.from_numpy(manet_anisotropic_kernel(var1, var2, theta, 21, scale)).float()
    converted = manet_field_to_ssr(manet.reshape(1, 441, 1, 1), scale).reshape(21, 21)
    sigma1, sigma2, theta = manet_variances_to_ssr_sigmas(var1, var2, theta)
    expected = gaussian_kernels(sigma1, sigma2, theta, 21, scale)
    # Only ssr's extra taps beyond MANet's (k - s + 1)^2 support differ (mass < 1e-4 at these widths).
    torch.testing.assert_close(converted, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize('scale', [1, 2, 4])
def test_field_conversions_round_trip(scale):
    field = random_field(2, 7, 3, 4).reshape(2, 7, 7, 3, 4)
    field[:, 7 - (scale - 1):] = 0
    field[:, :, 7 - (scale - 1):] = 0
    field = field.reshape(2, 49, 3, 4)
    field = field / field.sum(dim=1, keepdim=True)
    torch.testing.assert_close(ssr_field_to_manet(manet_field_to_ssr(field, scale), scale), field)


def test_conversion_of_dense_field_keeps_unit_sum():
    converted = manet_field_to_ssr(random_field(1, 5, 2, 2), 3)
    assert converted.reshape(1, 5, 5, 2, 2)[:, :2].abs().max() == 0
    torch.testing.assert_close(converted.sum(dim=1), torch.ones(1, 2, 2))


def test_variances_to_sigmas():
    sigma1, sigma2, theta = manet_variances_to_ssr_sigmas(4.0, 0.25, 0.3)
    assert (sigma1.item(), sigma2.item()) == (2.0, 0.5)
    assert theta.item() == pytest.approx(0.3)


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('build, match', [
    # constructors
    (lambda: MANetEstimator(kernel_layout='kair'), "kernel_layout 'kair'"),
    (lambda: MANetEstimator(kernel_size=20), 'kernel_size must be odd'),
    (lambda: MANetEstimator(nc=(4, 8, 16)), 'nc must be two'),
    (lambda: MANetEstimator(nc=(2, 4)), 'empty split'),
    (lambda: MANetEstimator(split=1), 'split must be >= 2'),
    (lambda: MANetSR(code_length=0), 'code_length must be in'),
    (lambda: MANetBlindSR(scale=0), 'scale must be in'),
    # conversions
    (lambda: manet_field_to_ssr(torch.ones(1, 25, 2), 2), r'must be \(B, k\*k, h, w\)'),
    (lambda: manet_field_to_ssr(torch.ones(1, 24, 2, 2), 2), 'not a square'),
    (lambda: ssr_field_to_manet(torch.ones(1, 25, 2, 2), 0), 'scale must be >= 1'),
    (lambda: manet_variances_to_ssr_sigmas(-1.0, 1.0, 0.0), 'variances must be > 0'),
], ids=['layout', 'even-k', 'nc-len', 'tiny-nc', 'split', 'code-length', 'scale', 'field-3d', 'field-not-square',
        'scale-0', 'variance'])
def test_bad_arguments_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_sr_rejects_mismatched_kernel_field():
    net = MANetSR(**TINY_SR)
    with pytest.raises(ValueError, match=r'kernel must be \(1, 25, 6, 7\)'):
        net(torch.rand(1, 3, 6, 7), random_field(1, 5, 3, 3))


def test_pca_path_with_wrong_shape_raises(tmp_path):
    torch.save(torch.zeros(441, 10), tmp_path / 'pca.pth')
    with pytest.raises(ValueError, match=r'must hold a \(25, 3\) tensor'):
        MANetSR(**TINY_SR, pca_path=tmp_path / 'pca.pth')
