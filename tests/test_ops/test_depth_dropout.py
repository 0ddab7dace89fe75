"""depth_dropout: which images are replaced, by what, reproducibility; and the models' train.depth_dropout."""
from __future__ import annotations

import pytest
import torch

from ssr.ops.depth_utils import depth_dropout


def _depth(b: int = 64) -> torch.Tensor:
    return torch.rand(b, 1, 6, 5, generator=torch.Generator().manual_seed(1))


def test_dropped_maps_are_constant_and_kept_maps_unchanged():
    depth = _depth()
    out = depth_dropout(depth, 0.5, torch.Generator().manual_seed(0))
    dropped = (out.flatten(1).std(1) == 0)
    kept = (out == depth).flatten(1).all(1)
    assert (dropped ^ kept).all()  # every image is either a flat map or untouched
    assert 16 < int(dropped.sum()) < 48  # about half of 64
    levels = out[dropped].flatten(1)[:, 0]
    assert levels.min() >= 0 and levels.max() <= 1 and levels.std() > 0.1  # random levels in [0, 1]


def test_probability_extremes_and_reproducibility():
    depth = _depth(8)
    assert depth_dropout(depth, 0.0) is depth
    assert (depth_dropout(depth, 1.0).flatten(1).std(1) == 0).all()
    a = depth_dropout(depth, 0.5, torch.Generator().manual_seed(3))
    b = depth_dropout(depth, 0.5, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('p', [-0.1, 1.5])
def test_rejects_bad_probability(p):
    with pytest.raises(ValueError, match='depth dropout probability'):
        depth_dropout(_depth(2), p)


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match=r'\(B, 1, H, W\)'):
        depth_dropout(torch.rand(2, 3, 4, 4), 0.5)


def test_ssr_model_trains_on_dropped_depth_and_seeds_by_iteration():
    from tests.test_models.test_ssr_model import batch, build, tiny_opt

    opt = tiny_opt()
    opt['train']['depth_dropout'] = 1.0
    model = build(opt)
    model.feed_data(batch())
    d1, d1_again, d2 = model.training_depth(1), model.training_depth(1), model.training_depth(2)
    assert (d1.flatten(1).std(1) == 0).all()
    torch.testing.assert_close(d1, d1_again, rtol=0, atol=0)
    assert not torch.equal(d1, d2)
    model.optimize_parameters(current_iter=1)
    assert torch.isfinite(torch.tensor(model.get_current_log()['l_eps']))
    torch.testing.assert_close(model.depth, batch()['depth'])  # the data's depth itself is untouched


def test_ssr_model_without_dropout_sees_the_data_depth():
    from tests.test_models.test_ssr_model import batch, build, tiny_opt

    model = build(tiny_opt())
    model.feed_data(batch())
    assert model.training_depth(1) is model.depth
