"""ST-LPIPS (stlpips-pytorch, shipped networks) through BasicSR's metric registry, on scikit-image photos."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric

from ssr.metrics.st_lpips import build_stlpips, stlpips_weights_file
from tests.conftest import photo

NETS = ('alex', 'vgg')


def _stlpips(img, img2, **options) -> float:
    return calculate_metric({'img': img, 'img2': img2}, {'type': 'calculate_stlpips', **options})


@pytest.fixture(scope='module')
def crops():
    """A 128x128 crop, the same crop shifted right by one pixel, and a Gaussian-blurred copy (sigma 1.5 px)."""
    big = photo('astronaut', 160)
    ref = big[:128, :128]
    return {'ref': ref, 'shifted': big[:128, 1:129], 'blurred': cv2.GaussianBlur(ref, (0, 0), 1.5)}


@pytest.mark.parametrize('net', NETS)
def test_identical_images_have_zero_distance(crops, net):
    assert _stlpips(crops['ref'], crops['ref'], net=net) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize('net', NETS)
def test_distance_is_symmetric_and_finite(crops, net):
    forward = _stlpips(crops['ref'], crops['blurred'], net=net)
    assert math.isfinite(forward) and forward > 0
    assert _stlpips(crops['blurred'], crops['ref'], net=net) == pytest.approx(forward, rel=1e-5)


@pytest.mark.parametrize('net', NETS)
def test_one_pixel_shift_costs_less_than_blur(crops, net):
    # The metric is built to tolerate small shifts (the paper's premise) but not loss of detail.
    shifted = _stlpips(crops['ref'], crops['shifted'], net=net)
    blurred = _stlpips(crops['ref'], crops['blurred'], net=net)
    assert shifted < 0.2 * blurred


def test_stronger_blur_costs_more(crops):
    mild, strong = (_stlpips(crops['ref'], cv2.GaussianBlur(crops['ref'], (0, 0), s)) for s in (0.8, 2.5))
    assert 0 < mild < strong


def test_crop_border_ignores_the_border(crops):
    framed = crops['ref'].copy()
    framed[:4] = 0  # damage only the top 4 rows
    assert _stlpips(crops['ref'], framed) > 0
    assert _stlpips(crops['ref'], framed, crop_border=4) == pytest.approx(0.0, abs=1e-6)


def test_explicit_weights_path_gives_the_same_value(crops):
    shipped = _stlpips(crops['ref'], crops['blurred'])
    given = _stlpips(crops['ref'], crops['blurred'], weights_path=str(stlpips_weights_file('alex')))
    assert given == pytest.approx(shipped, rel=1e-6)


def test_missing_weights_file_names_option_and_file(tmp_path):
    missing = tmp_path / 'nowhere.pth'
    with pytest.raises(FileNotFoundError, match=r'weights_path .*alex_shift_tolerant\.pth.*nowhere\.pth'):
        build_stlpips('alex', str(missing))


def test_wrong_network_file_is_rejected(tmp_path):
    bad = tmp_path / 'bad.pth'
    torch.save({'lin0.model.1.weight': torch.zeros(1, 64, 1, 1)}, bad)
    with pytest.raises(ValueError, match='is not an ST-LPIPS alex network: missing keys'):
        build_stlpips('alex', str(bad))


@pytest.mark.parametrize(
    ('img_shape', 'img2_shape', 'options', 'match'),
    [
        # shapes
        ((32, 32, 3), (32, 31, 3), {}, r'one shape, got \(32, 32, 3\) and \(32, 31, 3\)'),
        ((32, 32), (32, 32), {}, r'\(H, W, 3\)'),
        # options
        ((32, 32, 3), (32, 32, 3), {'net': 'squeeze'}, "net 'squeeze' not in"),
    ],
    ids=['shape-mismatch', 'grayscale', 'unknown-net'],
)
def test_bad_inputs(img_shape, img2_shape, options, match):
    with pytest.raises(ValueError, match=match):
        _stlpips(np.zeros(img_shape, np.uint8), np.zeros(img2_shape, np.uint8), **options)


def test_placeholders_do_not_leak():
    """Other code probing for IPython must still find it absent after the ST-LPIPS import."""
    import sys

    from ssr.metrics.st_lpips import _import_stlpips

    _import_stlpips()
    docs = [(sys.modules[name].__doc__ or '') for name in ('IPython', 'torchsummary') if name in sys.modules]
    assert not [d for d in docs if d.startswith('Placeholder from ssr')]
