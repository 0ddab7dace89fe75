"""Tests for ``ssr.ops.gaussian_field_blur`` and ``ssr.ops.native``: the fused native Gaussian field + SV blur
against the torch path (``kernel_field_from_params`` + ``sv_blur_downsample``), and the fallbacks.

The first test that needs the native kernel builds it into torch's extension cache (~6 s on a 2-core VM) unless an
earlier run did; every later use in the session, and in later sessions, only loads it.
"""

import logging

import pytest
import torch

from ssr.ops import native
from ssr.ops.gaussian_field_blur import gaussian_field_blur_downsample, native_applies
from ssr.ops.kernel_field import gaussian_field_terms, kernel_field_from_params, sample_smooth_params
from ssr.ops.sv_blur import sv_blur_downsample

FIELD_ATOL = 2.5e-7  # a few float32 ulp of 1 (narrow kernels put ~1 on one tap): summation order, not maths
LR_ATOL = 1e-6


@pytest.fixture(scope='module')
def native_kernel():
    if native.native_op('gaussian_field_blur') is None:
        pytest.skip('native CPU kernels unavailable (no AVX-512, C++ compiler or ninja, or SSR_NATIVE=0); see '
                    'ssr.ops.native')


def _inputs(batch, channels, h, w, scale, sigma_range, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    params = sample_smooth_params(batch, h, w, sigma_range, (0.25, 1.0), gen, grid=3, dtype=dtype)
    hr = torch.rand(batch, channels, scale * h, scale * w, generator=gen, dtype=dtype)
    return hr, params['sigma1'], params['sigma2'], params['theta']


def _torch_path(hr, sigma1, sigma2, theta, k, s, padding='reflect'):
    field = kernel_field_from_params(sigma1, sigma2, theta, k, s)
    return sv_blur_downsample(hr, field, s, padding=padding), field


@pytest.mark.parametrize('batch, channels, h, w, k, s, sigma_range', [
    (2, 3, 13, 17, 21, 4, (0.2, 4.0)),   # odd sizes, one full segment plus an overlapping one per row
    (3, 3, 7, 5, 11, 2, (0.05, 1.0)),    # rows narrower than a segment
    (1, 1, 20, 33, 11, 3, (0.2, 3.0)),   # x3, one channel, three segments per row
    (2, 5, 9, 16, 21, 4, (0.2, 4.0)),    # more than 4 channels: a second blur pass
    (2, 3, 16, 16, 21, 4, (3.0, 12.0)),  # wide kernels, reaching far past the kernel window
    (1, 3, 6, 19, 11, 4, (0.01, 0.15)),  # narrow: stabilisers below -80, the exact-maximum path
    (2, 3, 45, 16, 11, 2, (0.2, 3.0)),   # taller than a block of rows (32): phases rebuilt per block
], ids=['odd-x4', 'narrow-rows-x2', 'x3-gray', 'five-channels', 'wide', 'narrow-kernels', 'row-blocks'])
def test_native_equals_the_torch_path(native_kernel, batch, channels, h, w, k, s, sigma_range):
    hr, sigma1, sigma2, theta = _inputs(batch, channels, h, w, s, sigma_range)
    lr, field = gaussian_field_blur_downsample(hr, sigma1, sigma2, theta, k, s, native=True)
    ref_lr, ref_field = _torch_path(hr, sigma1, sigma2, theta, k, s)
    assert lr.shape == (batch, channels, h, w) and field.shape == (batch, k * k, h, w)
    torch.testing.assert_close(field, ref_field, rtol=0, atol=FIELD_ATOL)
    torch.testing.assert_close(lr, ref_lr, rtol=0, atol=LR_ATOL)
    torch.testing.assert_close(field.sum(1), torch.ones(batch, h, w), rtol=0, atol=1e-5)
    if sigma_range[1] < 0.2:
        assert bool((gaussian_field_terms(sigma1, sigma2, theta, k, s)[2] < -80).any())


def test_native_is_no_less_accurate_than_the_torch_path(native_kernel):
    hr, sigma1, sigma2, theta = _inputs(2, 3, 16, 24, 4, (0.2, 4.0), seed=1)
    lr, field = gaussian_field_blur_downsample(hr, sigma1, sigma2, theta, 21, 4, native=True)
    ref_lr, ref_field = _torch_path(hr, sigma1, sigma2, theta, 21, 4)
    exact_lr, exact_field = _torch_path(hr.double(), sigma1.double(), sigma2.double(), theta.double(), 21, 4)
    assert (field - exact_field).abs().max() <= (ref_field - exact_field).abs().max() + 1e-7
    assert (lr - exact_lr).abs().max() <= (ref_lr - exact_lr).abs().max() + 1e-7


@pytest.mark.parametrize('padding', ['reflect', 'replicate', 'zeros'])
@pytest.mark.parametrize('h, w, s', [(8, 18, 4), (2, 3, 2)], ids=['wider-than-k', 'narrower-than-the-padding'])
def test_native_follows_the_padding_mode(native_kernel, padding, h, w, s):
    # 2 x 3 LR at x2 is 4 x 6 HR padded by 10: reflect keeps reflecting, as pad_hr does
    hr, sigma1, sigma2, theta = _inputs(2, 3, h, w, s, (0.5, 3.0), seed=2)
    lr, _ = gaussian_field_blur_downsample(hr, sigma1, sigma2, theta, 21, s, padding=padding, native=True)
    torch.testing.assert_close(lr, _torch_path(hr, sigma1, sigma2, theta, 21, s, padding)[0], rtol=0, atol=LR_ATOL)


def test_native_writes_into_out_and_nothing_else(native_kernel):
    hr, sigma1, sigma2, theta = _inputs(4, 3, 8, 20, 4, (0.2, 3.0), seed=3)
    field = torch.full((4, 121, 8, 20), -1.0)
    _, written = gaussian_field_blur_downsample(hr[1:3], sigma1[1:3], sigma2[1:3], theta[1:3], 11, 4,
                                                out=field[1:3], native=True)
    assert written.data_ptr() == field[1:3].data_ptr()
    assert bool((field[0] == -1).all() and (field[3] == -1).all())
    torch.testing.assert_close(field[1:3], kernel_field_from_params(sigma1[1:3], sigma2[1:3], theta[1:3], 11, 4),
                               rtol=0, atol=FIELD_ATOL)


def test_native_result_does_not_depend_on_how_rows_are_grouped(native_kernel):
    # threads split the batch's rows into chunks (and a chunk into blocks of 32 rows); each row's result is the same
    # whichever chunk computes it, so the result does not depend on the thread count (not changed here: resetting
    # torch's thread pool slows the tests after this one on a shared 2-core machine)
    hr, sigma1, sigma2, theta = _inputs(3, 3, 40, 20, 2, (0.2, 4.0), seed=4)
    whole = gaussian_field_blur_downsample(hr, sigma1, sigma2, theta, 11, 2, native=True)
    for b in range(3):
        one = gaussian_field_blur_downsample(hr[b:b + 1], sigma1[b:b + 1], sigma2[b:b + 1], theta[b:b + 1], 11, 2,
                                             native=True)
        assert torch.equal(one[0], whole[0][b:b + 1]) and torch.equal(one[1], whole[1][b:b + 1])


def test_disabled_by_the_environment_runs_the_torch_path(monkeypatch):
    monkeypatch.setenv(native.ENV_VAR, '0')
    hr, sigma1, sigma2, theta = _inputs(2, 3, 6, 7, 4, (0.2, 3.0), seed=5)
    assert native.native_op('gaussian_field_blur') is None and not native_applies(hr, sigma1)
    lr, field = gaussian_field_blur_downsample(hr, sigma1, sigma2, theta, 11, 4)
    ref_lr, ref_field = _torch_path(hr, sigma1, sigma2, theta, 11, 4)
    assert torch.equal(lr, ref_lr) and torch.equal(field, ref_field)
    with pytest.raises(RuntimeError, match='does not apply'):
        gaussian_field_blur_downsample(hr, sigma1, sigma2, theta, 11, 4, native=True)


def test_float64_and_autograd_inputs_run_the_torch_path():
    hr, sigma1, sigma2, theta = _inputs(1, 3, 6, 7, 4, (0.2, 3.0), seed=6, dtype=torch.float64)
    assert not native_applies(hr, sigma1)
    lr, field = gaussian_field_blur_downsample(hr, sigma1, sigma2, theta, 11, 4)
    assert lr.dtype == field.dtype == torch.float64
    assert torch.equal(lr, _torch_path(hr, sigma1, sigma2, theta, 11, 4)[0])
    hr = hr.float().requires_grad_()
    assert not native_applies(hr, sigma1.float())
    lr, _ = gaussian_field_blur_downsample(hr, sigma1.float(), sigma2.float(), theta.float(), 11, 4)
    lr.sum().backward()
    assert hr.grad is not None and hr.grad.shape == hr.shape


def test_a_failed_build_logs_one_line_and_falls_back(monkeypatch, caplog):
    import torch.utils.cpp_extension as cpp_extension

    def broken_load(*args, **kwargs):
        raise RuntimeError('Error building extension: no compiler\nsecond line')

    monkeypatch.setattr(cpp_extension, 'load', broken_load)
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'AVX512')  # a CPU the kernels build for
    native._load.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger='ssr.ops.native'):
            assert native.native_op('gaussian_field_blur') is None
            assert native.native_op('gaussian_field_blur') is None  # cached: no second attempt, no second line
        lines = [r for r in caplog.records if r.name == 'ssr.ops.native']
        assert len(lines) == 1 and 'using the torch path' in lines[0].getMessage()
        assert '\n' not in lines[0].getMessage() and 'no compiler' in lines[0].getMessage()
        hr, sigma1, sigma2, theta = _inputs(1, 3, 5, 6, 4, (0.2, 3.0), seed=7)
        lr, _ = gaussian_field_blur_downsample(hr, sigma1, sigma2, theta, 11, 4)
        assert torch.equal(lr, _torch_path(hr, sigma1, sigma2, theta, 11, 4)[0])
    finally:
        monkeypatch.undo()
        native._load.cache_clear()  # the next use loads the real library again (from the cache: no rebuild)


def test_shape_errors():
    hr, sigma1, sigma2, theta = _inputs(1, 3, 5, 6, 4, (0.2, 3.0))
    with pytest.raises(ValueError, match='does not match'):
        gaussian_field_blur_downsample(hr[..., :-4], sigma1, sigma2, theta, 11, 4)
    with pytest.raises(ValueError, match='out must be'):
        gaussian_field_blur_downsample(hr, sigma1, sigma2, theta, 11, 4, out=torch.empty(1, 121, 5, 7))
    with pytest.raises(ValueError, match='sigma1 must be'):
        gaussian_field_blur_downsample(hr, sigma1.flatten(), sigma2, theta, 11, 4)
