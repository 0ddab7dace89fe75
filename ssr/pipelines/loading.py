"""Networks of an option file built and loaded as BasicSR's models do, without a model: ``network_<name>`` blocks and
their ``path.pretrain_network_<name>`` weights (``param_key_<name>``, default ``params``; ``strict_load_<name>``,
default true).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from ssr.utils.checkpoint import load_state_dict_strict, read_state_dict

__all__ = ['load_weights', 'network_from_options', 'option_file']


def load_weights(net: nn.Module, path: str | os.PathLike, strict: bool = True,
                 param_key: str | None = 'params') -> None:
    """Loads a BasicSR checkpoint (or a raw state_dict) into ``net``, as ``BaseModel.load_network`` does in ssr.

    A network's ``adapt_state_dict(state) -> state`` (official MANet / DCLS / MiDaS files, NBSR deltas) is applied
    before the strict check.

    Raises:
        FileNotFoundError, RuntimeError, KeyError: the file is missing or unreadable, has no ``param_key``, or does
            not match the network (missing, unexpected and wrong-shape keys listed together).
    """
    state, _ = read_state_dict(path, param_key)
    if hasattr(net, 'adapt_state_dict'):
        state = net.adapt_state_dict(state)
    load_state_dict_strict(net, state, source=str(path), strict=strict)


def network_from_options(opt: Mapping, key: str, device: torch.device | str = 'cpu',
                         load: bool = True) -> nn.Module:
    """``opt[key]`` (e.g. ``network_e``) built from the registry, its pretrained weights loaded, frozen, in eval mode.

    Args:
        opt: the whole option tree (``path`` holds the weights).
        key: ``network_<name>``.
        device: where the network goes.
        load: read ``path.pretrain_network_<name>`` when it is set (``False`` for networks that read their own
            weights, e.g. ``MiDaSDepth`` with ``weights_path``).

    Raises:
        KeyError: ``opt`` has no ``key``.
    """
    from basicsr.archs import build_network

    import ssr.archs  # noqa: F401  (registers ssr's networks)

    if key not in opt:
        raise KeyError(f'the options have no {key} block')
    net = build_network(dict(opt[key])).to(device)
    name = key.removeprefix('network_')
    paths = opt.get('path') or {}
    if load and paths.get(f'pretrain_network_{name}'):
        load_weights(net, paths[f'pretrain_network_{name}'], paths.get(f'strict_load_{name}', True),
                     paths.get(f'param_key_{name}', 'params'))
    return net.eval().requires_grad_(False)


def option_file(path: str | os.PathLike, device: str = 'cpu') -> dict:
    """A test option file loaded, validated and made root-relative (``ssr.utils.options.inference_options``)."""
    from ssr.utils.options import inference_options

    return inference_options(path, device)
