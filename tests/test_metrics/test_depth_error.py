"""Depth AbsRel after scale / shift alignment: invariances and known values."""
from __future__ import annotations

import pytest
import torch
from basicsr.metrics import calculate_metric

from ssr.metrics.depth_error import align_scale_shift, depth_abs_rel


def truth() -> torch.Tensor:
    return torch.linspace(0.2, 1.0, 64).reshape(1, 1, 8, 8)


@pytest.mark.parametrize('scale,shift', [(1.0, 0.0), (3.0, -0.4), (0.1, 2.0)], ids=['same', 'scaled', 'shifted'])
def test_affine_copies_have_zero_error(scale, shift):
    # float32 inputs: 0.1 * g + 2 keeps about 7 digits, so the aligned map is exact to ~1e-6 only
    assert float(depth_abs_rel(scale * truth() + shift, truth())) == pytest.approx(0.0, abs=1e-5)


def test_known_value_after_alignment():
    g = truth()
    noise = torch.ones_like(g)
    noise[..., ::2] = -1  # alternating +-1: the alignment removes only its part correlated with the ramp
    pred = g + 0.01 * noise
    aligned = align_scale_shift(pred, g, torch.ones_like(g, dtype=torch.bool))
    expected = ((aligned - g).abs() / g).mean()
    assert float(depth_abs_rel(pred, g)) == pytest.approx(float(expected), rel=1e-5)
    assert 0 < float(expected) < 0.05


def test_registered_metric_takes_2d_maps_and_ignores_invalid_pixels():
    g = truth()[0, 0].clone()
    g[0, :] = 0.0  # invalid ground truth
    pred = 2 * g + 1
    pred[0, :] = 123.0  # garbage where the truth is invalid
    assert calculate_metric({'img': pred, 'img2': g}, {'type': 'calculate_depth_abs_rel'}) == pytest.approx(0.0,
                                                                                                             abs=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match='differ in shape'):
        depth_abs_rel(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 5))
    with pytest.raises(ValueError, match='no ground-truth depth'):
        depth_abs_rel(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
