"""Checkpoint reads: strict loads raise on any mismatch; non-strict loads log their counts and never load nothing."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from ssr.utils.checkpoint import atomic_torch_save, load_state_dict_strict, read_state_dict


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))


@pytest.fixture
def records():
    """Records of the ``basicsr`` logger (which basicsr may set not to propagate, so caplog is not used)."""
    logger = logging.getLogger('basicsr')
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.INFO)
    handler.emit = seen.append
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_strict_load_raises_on_every_kind_of_mismatch():
    state = dict(net().state_dict())
    state.pop('0.bias')
    state['extra'] = torch.zeros(1)
    state['1.weight'] = torch.zeros(2, 4, 3, 3)
    with pytest.raises(RuntimeError, match=r'(?s)ckpt.pth does not match Sequential:\n  missing: 0.bias\n  '
                                           r'unexpected: extra\n  wrong shape: 1.weight'):
        load_state_dict_strict(net(), state, 'ckpt.pth')


def test_non_strict_load_that_matches_nothing_names_the_file_and_the_expected_keys(tmp_path):
    path = tmp_path / 'raw_unet.pth'
    atomic_torch_save({'params': {f'unet.{k}': v for k, v in net().state_dict().items()}}, path)
    state, _ = read_state_dict(path)
    target = net()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(RuntimeError, match=r"raw_unet.pth matches none of the 4 keys of Sequential \(non-strict "
                                           r"load\): the network expects keys like '0.bias', '0.weight', '1.bias', "
                                           r"\.\.\., the file holds 'unet.0.bias', 'unet.0.weight', 'unet.1.bias', "
                                           r"\.\.\.; check the key prefix"):
        load_state_dict_strict(target, state, str(path), strict=False)
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in before.items())


def test_non_strict_load_with_only_wrong_shapes_also_raises():
    state = {k: torch.zeros(*v.shape, 2) for k, v in net().state_dict().items()}
    with pytest.raises(RuntimeError, match=r'matches none of the 4 keys.*\(4 of them with the wrong shape\)'):
        load_state_dict_strict(net(), state, 'shapes.pth', strict=False)


def test_non_strict_load_loads_the_matches_and_logs_the_counts(records):
    source = net()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    state = dict(source.state_dict())
    state.pop('1.bias')
    state['1.weight'] = torch.zeros(2, 4, 3, 3)  # wrong shape: skipped
    state['extra.weight'] = torch.zeros(1)
    target = net()
    load_state_dict_strict(target, state, 'partial.pth', strict=False)
    torch.testing.assert_close(target[0].weight, source[0].weight)
    assert not torch.equal(target[1].weight, source[1].weight)
    messages = [r.getMessage() for r in records]
    assert messages == ['Non-strict load of partial.pth into Sequential: 2 keys loaded, 1 missing, 1 unexpected, '
                        '1 with the wrong shape (skipped)']


def test_strict_load_of_a_matching_state_logs_nothing(records):
    load_state_dict_strict(net(), net().state_dict(), 'ok.pth')
    assert records == []
