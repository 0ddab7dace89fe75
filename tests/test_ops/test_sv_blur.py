"""Spatially variant blur + subsampling: analytic identities, a per-pixel reference loop, adjoint, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssr.ops.kernel_field import uniform_kernel_field
from ssr.ops.kernels import gaussian_kernels
from ssr.ops.sv_blur import (AUTO_METHOD, METHODS, PAD_MODES, pad_hr, pad_hr_adjoint, sv_blur_downsample,
                             sv_blur_downsample_adjoint, uniform_blur_downsample)


def random_field(batch: int, k: int, h: int, w: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    """(B, k*k, h, w) positive field summing to 1 per pixel."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(batch, k * k, h, w, generator=g, dtype=torch.float64), dim=1).to(dtype)


def random_image(batch: int, channels: int, height: int, width: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, height, width, generator=g, dtype=torch.float64).to(dtype)


def reference_loop(hr: torch.Tensor, kernels: torch.Tensor, scale: int) -> np.ndarray:
    """Paper Eq. 1 written out pixel by pixel in float64, with numpy's reflect padding (an independent pad)."""
    hr64, k64 = hr.double().numpy(), kernels.double().numpy()
    k = int(round(k64.shape[1]**0.5))
    r = k // 2
    padded = np.pad(hr64, ((0, 0), (0, 0), (r, r), (r, r)), mode='reflect')
    b, c, h, w = hr64.shape[0], hr64.shape[1], k64.shape[2], k64.shape[3]
    out = np.zeros((b, c, h, w))
    for n in range(b):
        for i in range(h):
            for j in range(w):
                patch = padded[n, :, scale * i:scale * i + k, scale * j:scale * j + k]  # rows s*i - r .. s*i + r
                out[n, :, i, j] = (patch * k64[n, :, i, j].reshape(k, k)).sum(axis=(1, 2))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Analytic facts
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('scale', [1, 2, 4])
def test_delta_kernel_reproduces_subsampling_exactly(method, scale):
    k, hr = 21, random_image(2, 3, 32, 24, seed=0)
    field = torch.zeros(2, k * k, 32 // scale, 24 // scale)
    field[:, (k // 2) * k + k // 2] = 1.0
    out = sv_blur_downsample(hr, field, scale, method=method)
    assert torch.equal(out, hr[:, :, ::scale, ::scale])


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('scale', [2, 4])
def test_uniform_gaussian_field_equals_conv2d_then_subsample(method, scale):
    k, c = 13, 3
    kernel = gaussian_kernels(2.1, 0.8, 0.6, k, scale, dtype=torch.float64)  # (k, k), centred at (s - 1) / 2
    hr = random_image(2, c, 32, 40, seed=1, dtype=torch.float64)
    field = kernel.reshape(1, k * k, 1, 1).expand(2, -1, 32 // scale, 40 // scale)
    # F.conv2d is cross-correlation, which is exactly Eq. 1's sum over HR[s*i + u, s*j + v] * K[u + r, v + r].
    ref = F.conv2d(F.pad(hr, (k // 2, ) * 4, mode='reflect'), kernel.expand(c, 1, k, k), groups=c)
    ref = ref[..., ::scale, ::scale]
    out = sv_blur_downsample(hr.float(), field.float().contiguous(), scale, method=method)
    assert (out.double() - ref).abs().max().item() < 1e-5


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize(('scale', 'k'), [(2, 5), (2, 7), (4, 5), (4, 7)], ids=['s2k5', 's2k7', 's4k5', 's4k7'])
def test_spatially_variant_field_matches_reference_loop(method, scale, k):
    hr = random_image(2, 3, 16, 16, seed=2)
    field = random_field(2, k, 16 // scale, 16 // scale, seed=3)
    out = sv_blur_downsample(hr, field, scale, method=method)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 16 // scale, 16 // scale)
    assert np.abs(out.double().numpy() - reference_loop(hr, field, scale)).max() < 1e-5


@pytest.mark.parametrize('method', METHODS)
def test_float64_matches_reference_loop_to_rounding(method):
    hr = random_image(1, 2, 12, 8, seed=4, dtype=torch.float64)
    field = random_field(1, 7, 3, 2, seed=5, dtype=torch.float64)
    out = sv_blur_downsample(hr, field, 4, method=method)
    assert out.dtype == torch.float64
    assert np.abs(out.numpy() - reference_loop(hr, field, 4)).max() < 1e-12


@pytest.mark.parametrize('method', METHODS)
def test_kernel_wider_than_image_reflects_like_numpy(method):
    # r = 10 >= H = 8: F.pad refuses, numpy keeps reflecting; the operator follows numpy.
    hr = random_image(1, 3, 8, 8, seed=6)
    field = random_field(1, 21, 2, 2, seed=7)
    out = sv_blur_downsample(hr, field, 4, method=method)
    assert np.abs(out.double().numpy() - reference_loop(hr, field, 4)).max() < 1e-5


def test_methods_agree_on_a_k21_x4_field():
    hr = random_image(2, 3, 64, 48, seed=8)
    field = random_field(2, 21, 16, 12, seed=9)
    outs = {m: sv_blur_downsample(hr, field, 4, method=m) for m in METHODS}
    for method in METHODS:
        assert (outs[method] - outs['unfold']).abs().max().item() < 1e-5, method


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('chunk', [1, 5000], ids=['one-row', 'few-rows'])
def test_chunking_does_not_change_the_result(method, chunk):
    hr = random_image(2, 3, 40, 24, seed=10)
    field = random_field(2, 9, 10, 6, seed=11)
    whole = sv_blur_downsample(hr, field, 4, method=method, max_chunk_elems=None)
    banded = sv_blur_downsample(hr, field, 4, method=method, max_chunk_elems=chunk)
    assert (whole - banded).abs().max().item() < 1e-6



@pytest.mark.parametrize('method', ['shift', 'polyphase'])
def test_image_groups_do_not_change_the_result(method, monkeypatch):
    # on the CPU a batch runs as groups of whole images (each padded and blurred while in the cache)
    import ssr.ops.sv_blur as sv_blur
    hr = random_image(5, 3, 24, 16, seed=12)
    field = random_field(5, 9, 6, 4, seed=13)
    whole = sv_blur_downsample(hr, field, 4, method='unfold', max_chunk_elems=None)
    monkeypatch.setattr(sv_blur, '_CPU_GROUP_ELEMS', 2 * 3 * 6 * 4)  # groups of 2, 2 and 1 images
    assert sv_blur._images_per_group(method, hr.device, 3 * 6 * 4, sv_blur.DEFAULT_MAX_CHUNK_ELEMS, 5) == 2
    grouped = sv_blur_downsample(hr, field, 4, method=method)
    assert (whole - grouped).abs().max().item() < 1e-6

def test_auto_method_table_names_known_methods():
    assert set(AUTO_METHOD.values()) <= set(METHODS)
    # small calls go to 'strided' on the CPU, large ones to the table's method
    small = random_image(1, 3, 16, 16, seed=12), random_field(1, 5, 4, 4, seed=13)
    assert torch.equal(sv_blur_downsample(*small, 4), sv_blur_downsample(*small, 4, method='strided'))
    large = random_image(2, 3, 96, 96, seed=12), random_field(2, 21, 24, 24, seed=13)
    assert torch.equal(sv_blur_downsample(*large, 4), sv_blur_downsample(*large, 4, method=AUTO_METHOD['cpu']))


# ---------------------------------------------------------------------------------------------------------------------
# Padding and adjoint
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(('padding', 'torch_mode'), [('reflect', 'reflect'), ('replicate', 'replicate'),
                                                     ('zeros', 'constant')])
def test_pad_hr_matches_f_pad_for_narrow_pads(padding, torch_mode):
    hr = random_image(1, 2, 9, 7, seed=14)
    assert torch.equal(pad_hr(hr, 3, padding), F.pad(hr, (3, 3, 3, 3), mode=torch_mode))


@pytest.mark.parametrize(('padding', 'numpy_mode'), [('reflect', 'reflect'), ('replicate', 'edge')])
@pytest.mark.parametrize('r', [3, 8, 12], ids=['narrow', 'as-wide-as-image', 'wider-than-image'])
def test_pad_hr_matches_numpy_pad_at_any_width(padding, numpy_mode, r):
    # F.pad serves r < side, the index path the rest: both equal numpy.pad
    hr = random_image(1, 2, 9, 8, seed=14, dtype=torch.float64)
    expected = np.pad(hr.numpy(), ((0, 0), (0, 0), (r, r), (r, r)), mode=numpy_mode)
    assert np.array_equal(pad_hr(hr, r, padding).numpy(), expected)


@pytest.mark.parametrize('padding', PAD_MODES)
@pytest.mark.parametrize(('size', 'scale', 'k'), [((16, 12), 4, 7), ((8, 8), 4, 21), ((6, 10), 2, 5)],
                         ids=['narrow', 'kernel-wider-than-image', 's2'])
def test_adjoint_identity(padding, size, scale, k):
    x = random_image(2, 3, *size, seed=15, dtype=torch.float64)
    field = random_field(2, k, size[0] // scale, size[1] // scale, seed=16, dtype=torch.float64)
    y = random_image(2, 3, size[0] // scale, size[1] // scale, seed=17, dtype=torch.float64)
    lhs = (sv_blur_downsample(x, field, scale, padding=padding) * y).sum()
    rhs = (x * sv_blur_downsample_adjoint(y, field, scale, size, padding=padding)).sum()
    assert abs(lhs.item() - rhs.item()) < 1e-12 * abs(lhs.item())


@pytest.mark.parametrize('padding', PAD_MODES)
def test_pad_adjoint_identity(padding):
    x = random_image(1, 2, 5, 4, seed=18, dtype=torch.float64)
    y = random_image(1, 2, 5 + 12, 4 + 12, seed=19, dtype=torch.float64)
    lhs = (pad_hr(x, 6, padding) * y).sum().item()
    assert lhs == pytest.approx((x * pad_hr_adjoint(y, 6, padding)).sum().item(), rel=1e-12)


@pytest.mark.parametrize('method', METHODS)
def test_adjoint_equals_autograd_backward(method):
    x = random_image(1, 3, 16, 16, seed=20, dtype=torch.float64).requires_grad_(True)
    field = random_field(1, 7, 4, 4, seed=21, dtype=torch.float64)
    y = random_image(1, 3, 4, 4, seed=22, dtype=torch.float64)
    (sv_blur_downsample(x, field, 4, method=method) * y).sum().backward()
    assert torch.allclose(x.grad, sv_blur_downsample_adjoint(y, field, 4, (16, 16)), atol=1e-12)


@pytest.mark.parametrize('method', METHODS)
def test_gradcheck_wrt_image_and_field(method):
    hr = random_image(1, 1, 6, 4, seed=23, dtype=torch.float64).requires_grad_(True)
    field = random_field(1, 3, 3, 2, seed=24, dtype=torch.float64).requires_grad_(True)
    # max_chunk_elems=1: one LR row per band, so the banded write-back is differentiated too.
    assert torch.autograd.gradcheck(lambda a, b: sv_blur_downsample(a, b, 2, method=method, max_chunk_elems=1),
                                    (hr, field))


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------------
def _call(hr_shape=(1, 3, 16, 16), field_shape=(1, 49, 4, 4), scale=4, **kwargs):
    sv_blur_downsample(torch.zeros(hr_shape), torch.zeros(field_shape), scale, **kwargs)


BAD_INPUTS = [
    # kernel field layout
    (dict(field_shape=(1, 36, 4, 4)), r'36 channels .* k odd', 'even-kernel-size'),
    (dict(field_shape=(1, 50, 4, 4)), r'50 channels .* k odd', 'non-square-taps'),
    (dict(field_shape=(1, 49, 4, 5)), r'\(1, 49, 4, 5\) does not match HR shape \(1, 3, 16, 16\)', 'wrong-lr-size'),
    (dict(field_shape=(2, 49, 4, 4)), r'expected \(1, 49, 4, 4\)', 'wrong-batch'),
    (dict(field_shape=(49, 4, 4)), r'\(B, k\*k, h, w\)', 'field-3d'),
    # image and scale
    (dict(hr_shape=(1, 3, 18, 16)), r'18x16 .* not divisible by scale 4', 'scale-does-not-divide'),
    (dict(hr_shape=(3, 16, 16)), r'hr must be \(B, C, H, W\)', 'hr-3d'),
    (dict(scale=0), r'scale must be a positive int, got 0', 'zero-scale'),
    (dict(scale=2.0), r'scale must be a positive int, got 2.0', 'float-scale'),
    # options
    (dict(padding='circular'), r"padding 'circular' not in \('reflect', 'replicate', 'zeros'\)", 'bad-padding'),
    (dict(method='fft'), r"method 'fft' not in", 'bad-method'),
    (dict(max_chunk_elems=0), r'max_chunk_elems must be >= 1', 'zero-chunk'),
]


@pytest.mark.parametrize(('kwargs', 'match'), [case[:2] for case in BAD_INPUTS], ids=[case[2] for case in BAD_INPUTS])
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _call(**kwargs)


def test_dtype_mismatch_raises():
    with pytest.raises(ValueError, match=r'torch.float64.*torch.float32.*share dtype and device'):
        sv_blur_downsample(torch.zeros(1, 3, 8, 8), torch.zeros(1, 9, 2, 2, dtype=torch.float64), 4)


def test_adjoint_rejects_inconsistent_hr_size():
    with pytest.raises(ValueError, match=r'hr_size \(16, 12\) != scale 4 x lr size \(4, 4\)'):
        sv_blur_downsample_adjoint(torch.zeros(1, 3, 4, 4), torch.zeros(1, 9, 4, 4), 4, (16, 12))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('method', ['unfold', 'shift', 'polyphase'])
def test_cpu_equals_cuda(method):
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 32, 32, generator=g)
    field = torch.softmax(torch.randn(2, 49, 8, 8, generator=g), 1)
    cpu = sv_blur_downsample(hr, field, 4, method=method)
    gpu = sv_blur_downsample(hr.cuda(), field.cuda(), 4, method=method).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-5)


@pytest.mark.parametrize('padding', PAD_MODES)
@pytest.mark.parametrize(('size', 'scale', 'k'), [((16, 12), 4, 7), ((8, 8), 4, 21), ((6, 10), 2, 5), ((9, 6), 3, 3)],
                         ids=['x4', 'kernel-wider-than-image', 'x2', 'x3'])
def test_uniform_blur_downsample_equals_the_sv_operator_on_a_uniform_field(padding, size, scale, k):
    hr = random_image(3, 2, *size, seed=30, dtype=torch.float64)
    kernels = random_field(3, k, 1, 1, seed=31, dtype=torch.float64).view(3, k, k)
    field = uniform_kernel_field(kernels, size[0] // scale, size[1] // scale).contiguous()
    torch.testing.assert_close(uniform_blur_downsample(hr, kernels, scale, padding=padding),
                               sv_blur_downsample(hr, field, scale, padding=padding), rtol=0, atol=1e-12)


@pytest.mark.parametrize(('kernels', 'match'), [(torch.rand(2, 5, 5), r'must be \(3, k, k\)'),
                                                (torch.rand(3, 4, 4), 'k odd'),
                                                (torch.rand(3, 5, 5, dtype=torch.float64), 'share dtype')])
def test_uniform_blur_downsample_rejects_bad_kernels(kernels, match):
    with pytest.raises(ValueError, match=match):
        uniform_blur_downsample(torch.rand(3, 3, 8, 8), kernels, 4)
