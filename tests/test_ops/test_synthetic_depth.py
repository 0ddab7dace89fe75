"""Tests for ``ssr.ops.synthetic_depth`` and ``ssr.ops.depth_utils``."""

import pytest
import torch

from ssr.ops.depth_utils import depth_to_lr_grid, normalize_depth
from ssr.ops.synthetic_depth import DEPTH_KINDS, synthetic_depth


def _depth(seed: int, **kwargs) -> torch.Tensor:
    return synthetic_depth(6, 24, 32, generator=torch.Generator().manual_seed(seed), **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Synthetic depth
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kinds', [DEPTH_KINDS, ('plane',), ('gradient',), ('blobs',)],
                         ids=['mixed', 'plane', 'gradient', 'blobs'])
def test_synthetic_depth_spans_unit_range(kinds):
    depth = _depth(0, kinds=kinds)
    assert depth.shape == (6, 1, 24, 32) and depth.dtype == torch.float32
    torch.testing.assert_close(depth.amin(dim=(1, 2, 3)), torch.zeros(6))
    torch.testing.assert_close(depth.amax(dim=(1, 2, 3)), torch.ones(6))


def test_synthetic_depth_is_reproducible_and_seed_dependent():
    assert torch.equal(_depth(3), _depth(3))
    assert not torch.equal(_depth(3), _depth(4))


def test_ground_plane_is_nearer_at_the_bottom():
    depth = _depth(1, kinds=('plane',))
    assert (depth[:, 0, -1].mean(dim=-1) > depth[:, 0, 0].mean(dim=-1) + 0.3).all()


def test_synthetic_depth_is_smooth_for_gradients():
    depth = synthetic_depth(4, 64, 64, generator=torch.Generator().manual_seed(2), kinds=('gradient',))
    assert depth.diff(dim=-1).abs().max() < 0.2 and depth.diff(dim=-2).abs().max() < 0.2


# ---------------------------------------------------------------------------------------------------------------------
# Depth utilities
# ---------------------------------------------------------------------------------------------------------------------
def test_normalize_depth_maps_percentiles_and_clamps_outliers():
    values = torch.arange(101, dtype=torch.float32)  # percentile p is the value p
    values[-1] = 1e6  # an outlier
    depth = values.view(1, 1, 1, 101)
    normalised = normalize_depth(depth, low_pct=10, high_pct=90)
    torch.testing.assert_close(normalised[0, 0, 0, [10, 50, 90]], torch.tensor([0.0, 0.5, 1.0]))
    assert normalised[0, 0, 0, 0] == 0 and normalised[0, 0, 0, 100] == 1


def test_normalize_depth_full_range_is_min_max_per_image():
    scales = torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1, 1)
    depth = torch.rand(3, 1, 5, 7, generator=torch.Generator().manual_seed(0)) * scales
    low, high = depth.amin(dim=(1, 2, 3), keepdim=True), depth.amax(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(normalize_depth(depth, 0, 100), (depth - low) / (high - low))


def test_normalize_depth_of_a_constant_image_is_zero():
    assert torch.equal(normalize_depth(torch.full((2, 1, 3, 3), 4.0)), torch.zeros(2, 1, 3, 3))


def test_depth_to_lr_grid_is_the_block_mean():
    depth = torch.rand(2, 1, 8, 12, generator=torch.Generator().manual_seed(0))
    expected = depth.view(2, 1, 2, 4, 3, 4).mean(dim=(3, 5))
    torch.testing.assert_close(depth_to_lr_grid(depth, 2, 3), expected)


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('call, match', [
    (lambda: synthetic_depth(1, 8, 8, kinds=('plane', 'sky')), r"unknown names \['sky'\]; valid: \('plane'"),
    (lambda: synthetic_depth(1, 8, 8, kinds=()), r'kinds \[\] has unknown names'),
    (lambda: synthetic_depth(1, 0, 8), r'height, width >= 1, got \(1, 0, 8\)'),
    (lambda: normalize_depth(torch.rand(1, 8, 8)), r'depth must be a \(B, 1, H, W\) tensor, got \(1, 8, 8\)'),
    (lambda: normalize_depth(torch.rand(1, 3, 8, 8)), r'got \(1, 3, 8, 8\)'),
    (lambda: normalize_depth(torch.ones(1, 1, 2, 2, dtype=torch.int64)), 'floating tensor, got torch.int64'),
    (lambda: normalize_depth(torch.rand(1, 1, 2, 2), 50, 40), r'0 <= low_pct < high_pct <= 100, got \(50, 40\)'),
    (lambda: depth_to_lr_grid(torch.rand(1, 1, 8, 8), 0, 2), r'h and w must be >= 1, got \(0, 2\)'),
], ids=['unknown-kind', 'no-kinds', 'zero-height', 'normalize-3d', 'normalize-3-channels', 'normalize-int',
        'percentiles-reversed', 'lr-grid-zero'])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
