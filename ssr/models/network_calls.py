"""Uniform calls into any registered estimator / SR network, so blind models can swap them by option.

Estimators: DKENet ``(lq, depth) -> DKENetOutput(kernel)``, MANet's estimator ``(lq) -> (B, k*k, h, w)``.
Super-resolvers: NBSR / MANetSR ``(lq, kernel[, noise_level]) -> sr``, kernel-unaware ``RRDBNet(lq) -> sr``, one-net
blind SR ``DCLSNet(lq) -> output(sr, kernel)``. Which arguments a network takes is read from its ``forward``.
"""
from __future__ import annotations

import inspect
from functools import lru_cache

from torch import Tensor, nn
from torch.nn.parallel import DataParallel, DistributedDataParallel


def bare(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, (DataParallel, DistributedDataParallel)) else net


@lru_cache(maxsize=None)
def _forward_params(cls: type) -> tuple[str, ...]:
    return tuple(inspect.signature(cls.forward).parameters)[1:]


def accepts(net: nn.Module, name: str) -> bool:
    """Whether ``net.forward`` takes an argument called ``name``."""
    return name in _forward_params(type(bare(net)))


def _field(out) -> Tensor | None:
    return getattr(out, 'kernel', out if isinstance(out, Tensor) else None)


def estimate_kernel(net: nn.Module, lq: Tensor, depth: Tensor | None) -> Tensor:
    """Kernel field ``(B, k*k, h, w)`` from an estimator, passing ``depth`` when it takes one."""
    out = net(lq, depth=depth) if accepts(net, 'depth') else net(lq)
    kernel = _field(out)
    if kernel is None or kernel.dim() != 4:
        raise TypeError(f'{type(bare(net)).__name__} returned {type(out).__name__}; an estimator must return a '
                        '(B, k*k, h, w) field or an output with a .kernel field')
    return kernel


def super_resolve(net: nn.Module, lq: Tensor, kernel: Tensor | None = None,
                  noise_level: Tensor | None = None) -> Tensor:
    """SR image from a non-blind or blind network; ``kernel`` / ``noise_level`` are passed when it takes them."""
    kwargs = {}
    if accepts(net, 'kernel'):
        if kernel is None:
            raise ValueError(f'{type(bare(net)).__name__} needs a kernel field: give the model an estimator '
                             '(network_e) or data with ground-truth kernels')
        kwargs['kernel'] = kernel
    if noise_level is not None and accepts(net, 'noise_level'):
        kwargs['noise_level'] = noise_level
    out = net(lq, **kwargs)
    return getattr(out, 'sr', out)
