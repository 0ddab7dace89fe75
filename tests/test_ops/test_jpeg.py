"""JPEG round trips through OpenCV's libjpeg (and BasicSR's DiffJPEG when importable)."""
from __future__ import annotations

import math

import pytest
import torch

from ssr.ops.jpeg import jpeg_compress, sample_jpeg_quality


def textured_image(batch: int = 1, size: int = 64, dtype=torch.float32) -> torch.Tensor:
    """Smooth colour gradients plus a sharp-edged square and fine stripes in luminance only.

    Chroma is kept smooth because OpenCV encodes with 4:2:0 chroma subsampling (libjpeg's default), which blurs
    colour edges at every quality, 100 included.
    """
    y, x = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                          torch.linspace(0, 1, size, dtype=torch.float64), indexing='ij')
    square = ((x - 0.5).abs() < 0.2) & ((y - 0.5).abs() < 0.2)
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * 9 * (x + 0.3 * y))
    luma = 0.25 * square + 0.15 * stripes * x
    img = torch.stack([0.1 + 0.5 * x, 0.2 + 0.4 * y, 0.3 + 0.2 * (x + y)]) + luma
    return img.clamp(0, 1).to(dtype).expand(batch, -1, -1, -1).contiguous()


def test_quality_100_is_close_to_input():
    img = textured_image()
    assert (jpeg_compress(img, 100) - img).abs().mean().item() < 2 / 255


def test_lower_quality_gives_larger_error():
    img = textured_image(batch=4)
    out = jpeg_compress(img, torch.tensor([10, 30, 60, 95]))
    err = (out - img).square().mean(dim=(1, 2, 3))
    assert bool((err[:-1] > err[1:]).all()), err.tolist()


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_shape_dtype_and_range_are_kept(dtype):
    img = textured_image(batch=2, size=40, dtype=dtype)  # 40: not a multiple of the 8x8 / 16x16 JPEG blocks
    out = jpeg_compress(img, [20, 80])
    assert out.shape == img.shape and out.dtype == dtype and out.device == img.device
    assert out.min().item() >= 0 and out.max().item() <= 1
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)


def test_pure_red_stays_red():
    # A BGR/RGB mix-up would turn red into blue.
    red = torch.zeros(1, 3, 32, 32)
    red[:, 0] = 1.0
    out = jpeg_compress(red, 50)
    assert out[:, 0].min().item() > 0.9 and out[:, 1:].max().item() < 0.1


def test_gray_images_round_trip():
    img = textured_image()[:, 1:2]
    out = jpeg_compress(img, 50)
    assert out.shape == img.shape and (out - img).abs().mean().item() < 0.05


def test_mask_leaves_unselected_images_unchanged():
    img = textured_image(batch=2)
    out = jpeg_compress(img, 20, mask=torch.tensor([True, False]))
    assert torch.equal(out[1], img[1]) and not torch.equal(out[0], img[0])


def test_diff_jpeg_is_close_to_cv2():
    pytest.importorskip('basicsr.utils.diffjpeg', exc_type=ImportError)
    img = textured_image(batch=2)
    quality = torch.tensor([40, 80])
    diff, real = jpeg_compress(img, quality, method='diff'), jpeg_compress(img, quality)
    assert diff.shape == img.shape
    # BasicSR documents DiffJPEG as "slightly different from cv2"; both must be far closer to each other than to
    # the input at these qualities.
    assert (diff - real).abs().mean().item() < 0.5 * (real - img).abs().mean().item() + 2 / 255


def test_sampler_is_deterministic_and_in_range():
    q, mask = sample_jpeg_quality(500, 0.7, [30, 95], torch.Generator().manual_seed(0))
    q2, mask2 = sample_jpeg_quality(500, 0.7, [30, 95], torch.Generator().manual_seed(0))
    assert torch.equal(q, q2) and torch.equal(mask, mask2)
    assert q.dtype == torch.int64 and mask.dtype == torch.bool
    assert q[mask].min().item() >= 30 and q[mask].max().item() <= 95 and bool((q[~mask] == 100).all())
    assert {30, 95} <= set(q[mask].tolist())  # both ends reachable
    assert 0.6 < mask.float().mean().item() < 0.8


def test_sampler_with_zero_probability_selects_nothing():
    q, mask = sample_jpeg_quality(8, 0.0, [30, 95], torch.Generator().manual_seed(1))
    assert not bool(mask.any()) and bool((q == 100).all())


BAD_INPUTS = [
    (lambda: jpeg_compress(textured_image(), 0), r'quality must be in \[1, 100\], got \[0\]', 'quality-zero'),
    (lambda: jpeg_compress(textured_image(), 101), r'quality must be in \[1, 100\]', 'quality-101'),
    (lambda: jpeg_compress(textured_image(), 50.5), r'quality must hold integers', 'quality-fraction'),
    (lambda: jpeg_compress(textured_image(batch=2), [50]), r'quality must be an int or shape \(2,\)', 'q-shape'),
    (lambda: jpeg_compress(torch.rand(1, 4, 8, 8), 50), r'img must be \(B, 1 or 3, H, W\)', 'four-channels'),
    (lambda: jpeg_compress(textured_image(), 50, method='pil'), r"method 'pil' not in \('cv2', 'diff'\)", 'method'),
    (lambda: jpeg_compress(textured_image(), 50, mask=torch.tensor([1])), r'mask must be a \(1,\) bool', 'mask'),
    (lambda: sample_jpeg_quality(4, 1.2, [30, 95]), r'jpeg prob must be in \[0, 1\], got 1.2', 'prob'),
    (lambda: sample_jpeg_quality(4, 0.5, [95, 30]), r'quality_range .* got \[95, 30\]', 'reversed-range'),
    (lambda: sample_jpeg_quality(4, 0.5, [0, 30]), r'1 <= low <= high <= 100', 'range-below-1'),
]


@pytest.mark.parametrize(('call', 'match'), [case[:2] for case in BAD_INPUTS], ids=[case[2] for case in BAD_INPUTS])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
