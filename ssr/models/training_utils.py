"""Helpers shared by ssr's training loops: finite losses, gradient clipping, partial freezing."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn


def check_finite(losses: Mapping[str, Tensor], current_iter: int) -> None:
    """Stop training on a NaN / inf loss, naming the loss and the iteration.

    Raises:
        FloatingPointError: some loss is not finite.
    """
    bad = {name: float(value) for name, value in losses.items() if not torch.isfinite(value).all()}
    if bad:
        raise FloatingPointError(f'non-finite loss at iteration {current_iter}: {bad}; lower the learning rate, '
                                 'enable train.grad_clip, or resume from an earlier training state')


def clip_gradients(nets: Iterable[nn.Module], max_norm: float | None) -> None:
    """``clip_grad_norm_`` over all parameters of ``nets`` when ``max_norm`` is set (``train.grad_clip``)."""
    if max_norm:
        params = [p for net in nets for p in net.parameters() if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, float(max_norm))


def freeze_except(net: nn.Module, prefixes: Iterable[str] | None) -> list[str]:
    """Train only the parameters whose names start with one of ``prefixes`` (``train.trainable_prefixes``).

    ``None`` trains everything. Returns the names left trainable.

    Raises:
        ValueError: no parameter matches (a typo in the option would otherwise freeze the whole network).
    """
    if prefixes is None:
        return [n for n, _ in net.named_parameters()]
    prefixes = tuple(prefixes)
    kept = []
    for name, param in net.named_parameters():
        param.requires_grad_(name.startswith(prefixes))
        if param.requires_grad:
            kept.append(name)
    if not kept:
        raise ValueError(f'train.trainable_prefixes {list(prefixes)} match no parameter of {type(net).__name__}')
    return kept
