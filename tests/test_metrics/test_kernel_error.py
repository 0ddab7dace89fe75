"""Kernel metrics through BasicSR's metric registry, on fields with known errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric


def test_identical_fields_have_zero_error():
    field = torch.softmax(torch.randn(2, 9, 4, 4), 1)
    assert calculate_metric({'img': field, 'img2': field}, {'type': 'calculate_kernel_mse'}) == 0.0


def test_known_shift_gives_known_psnr():
    truth = torch.zeros(9, 2, 2)
    truth[4] = 1.0  # delta kernels: peak 1
    est = truth.clone()
    est[4] = 0.9
    est[3] = 0.1  # per pixel: two taps off by 0.1 -> MSE = 2 * 0.01 / 9
    mse = 2 * 0.01 / 9
    assert calculate_metric({'img': est, 'img2': truth}, {'type': 'calculate_kernel_mse'}) == pytest.approx(mse)
    expected = 10 * math.log10(1 / mse)
    assert calculate_metric({'img': est.numpy(), 'img2': truth.numpy()},
                            {'type': 'calculate_kernel_psnr'}) == pytest.approx(expected, rel=1e-5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match='differ in shape'):
        calculate_metric({'img': torch.zeros(9, 2, 2), 'img2': torch.zeros(9, 3, 2)}, {'type': 'calculate_kernel_mse'})


# NIQE from basicsr (its natural-scene parameters ship in basicsr), on a scikit-image photo.
def _niqe(img) -> float:
    return calculate_metric({'img': img}, {'type': 'calculate_niqe', 'crop_border': 0})


@pytest.fixture(scope='module')
def astronaut():
    from tests.conftest import photo

    return photo('astronaut', 256)


def test_niqe_of_a_natural_photo_is_in_basicsr_range(astronaut):
    # basicsr's NIQE of sharp natural images lies roughly in 2-10 (lower is more natural).
    assert 2.0 < _niqe(astronaut) < 10.0


def test_niqe_grows_when_the_photo_is_blurred(astronaut):
    import cv2

    assert _niqe(cv2.GaussianBlur(astronaut, (0, 0), 2.0)) > _niqe(astronaut) + 1.0


def test_niqe_or_nan_equals_niqe_where_defined_and_is_nan_elsewhere(astronaut):
    value = calculate_metric({'img': astronaut}, {'type': 'calculate_niqe_or_nan', 'crop_border': 4})
    assert value == pytest.approx(calculate_metric({'img': astronaut}, {'type': 'calculate_niqe', 'crop_border': 4}))
    with pytest.warns(RuntimeWarning, match='2 x 2 blocks'):
        assert np.isnan(calculate_metric({'img': astronaut[:150]}, {'type': 'calculate_niqe_or_nan'}))
    with pytest.warns(RuntimeWarning, match='singular'):
        flat = np.full((256, 256, 3), 128, np.uint8)
        assert np.isnan(calculate_metric({'img': flat}, {'type': 'calculate_niqe_or_nan'}))
