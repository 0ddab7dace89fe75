"""Spatially Variant Kernel Refinement (SVKR, paper Algorithm 1): its option block, the calls into any estimator /
SR network, and the loop itself.

Notation (paper -> code)::

    LR      lq        (B, 3, h, w)    low-resolution input in [0, 1]
    DE      depth_fn  image -> (B, 1, H', W') relative inverse depth in [0, 1] (any size; consumers resize it)
    KE      kernel_fn (lq, depth) -> (B, k*k, h, w) kernel field, sums to 1 over dim 1
    NBSR    sr_fn     (lq, kernel) -> (B, 3, s*h, s*w) SR image
    T       iterations (paper: 3)
    gamma   gamma (paper: 0.9), Eq. 2: K = gamma * K' + (1 - gamma) * K_prev

    D^0 = DE(LR);  K^0 = KE(LR, D^0);  I^0 = NBSR(LR, K^0)
    for t = 0 .. T-1:  D^{t+1} = DE(I^t);  K' = KE(LR, D^{t+1});  K^{t+1} = gamma K' + (1 - gamma) K^t;
                       I^{t+1} = NBSR(LR, K^{t+1})
    return D^T, K^T, I^T

A convex blend of two fields whose kernels sum to 1 sums to 1, so K^t stays a kernel field. With T = 0 SVKR is the
plain two-stage pipeline (estimate once, then non-blind SR); with gamma = 1 the history is ignored.

Option block (one spelling for every model)::

    svkr: {iterations: 3, gamma: 0.9, depth: midas | file | none, save_iterates: false}

``SSRModel`` files written before this spelling carried the same keys inside ``conditions:`` (beside
``conditions.source``); :meth:`SVKRConfig.from_options` still reads them there.

Network names: ``network_g`` is always the network a model trains (BasicSR's convention); the networks SVKR calls
are ``network_e`` (estimator KE), ``network_d`` (depth DE) and the non-blind SR network NBSR, which is
``network_g`` in ``BlindSRModel`` (it trains it) and ``network_sr`` in ``SSRModel`` (frozen beside the AMF-UNet).
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import Tensor, nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ssr.ops.depth_utils import CONSTANT_DEPTH
from ssr.utils.options import OptionError

__all__ = ['CONSTANT_DEPTH', 'DEPTH_SOURCES', 'SVKR', 'SVKRConfig', 'SVKROutput', 'OneNetworkSR', 'accepts', 'bare',
           'blind_sr', 'depth_function', 'estimate_kernel', 'kernel_field_of', 'super_resolve']

DepthFn = Callable[[Tensor], Tensor]
KernelFn = Callable[[Tensor, Tensor], Tensor]
SRFn = Callable[[Tensor, Tensor], Tensor]

DEPTH_SOURCES = ('midas', 'file', 'none')
BLOCK = 'svkr'
OLD_BLOCK = 'conditions'  # SSRModel's spelling before issue 12; its own key there is ``source``
OLD_BLOCK_OWN_KEYS = ('source', )
logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# calls into any registered estimator / SR network
# Estimators: DKENet ``(lq, depth) -> DKENetOutput(kernel)``, MANet's estimator ``(lq) -> (B, k*k, h, w)``.
# Super-resolvers: NBSR / MANetSR ``(lq, kernel[, noise_level]) -> sr``, kernel-unaware ``RRDBNet(lq) -> sr``, one-net
# blind SR ``DCLSNet(lq) -> output(sr, kernel)``. Which arguments a network takes is read from its ``forward``.
def bare(net: nn.Module) -> nn.Module:
    """``net`` without a ``DataParallel`` / ``DistributedDataParallel`` wrapper."""
    return net.module if isinstance(net, (DataParallel, DistributedDataParallel)) else net


@lru_cache(maxsize=None)
def _forward_params(cls: type) -> tuple[str, ...]:
    return tuple(inspect.signature(cls.forward).parameters)[1:]


def accepts(net: nn.Module, name: str) -> bool:
    """Whether ``net.forward`` takes an argument called ``name``."""
    return name in _forward_params(type(bare(net)))


def estimate_kernel(net: nn.Module, lq: Tensor, depth: Tensor | None) -> Tensor:
    """Kernel field ``(B, k*k, h, w)`` from an estimator, passing ``depth`` when it takes one.

    Raises:
        TypeError: the network returns neither a 4-D field nor an output with a ``.kernel`` field.
    """
    out = net(lq, depth=depth) if accepts(net, 'depth') else net(lq)
    kernel = getattr(out, 'kernel', out if isinstance(out, Tensor) else None)
    if kernel is None or kernel.dim() != 4:
        raise TypeError(f'{type(bare(net)).__name__} returned {type(out).__name__}; an estimator must return a '
                        '(B, k*k, h, w) field or an output with a .kernel field')
    return kernel


def super_resolve(net: nn.Module, lq: Tensor, kernel: Tensor | None = None,
                  noise_level: Tensor | None = None) -> Tensor:
    """SR image from a non-blind or blind network; ``kernel`` / ``noise_level`` are passed when it takes them.

    Raises:
        ValueError: the network needs a kernel field and ``kernel`` is None.
    """
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


def kernel_field_of(kernel: Tensor | None, lq: Tensor) -> Tensor | None:
    """A one-kernel-per-image estimate ``(B, 1, k, k)`` / ``(B, k*k)`` (DCLS) as a ``(B, k*k, h, w)`` field on the
    LR grid of ``lq`` (B, 3, h, w); ``None`` stays ``None``."""
    if kernel is None:
        return None
    b, h, w = lq.shape[0], lq.shape[2], lq.shape[3]
    return kernel.reshape(b, -1, 1, 1).expand(b, kernel[0].numel(), h, w)


# ----------------------------------------------------------------------------------------------------------------
# the option block
def _check_value(key: str, name: str, value, where: str):
    """``value`` of the field ``name`` checked and normalised; ``key`` is how the file spells it."""
    if name == 'iterations':
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise OptionError(where, key, f'expected an int >= 0, got {value!r}')
        return value
    if name == 'gamma':
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise OptionError(where, key, f'expected a number in [0, 1], got {value!r}')
        return float(value)
    if name == 'depth':
        if value not in DEPTH_SOURCES:
            raise OptionError(where, key, f'{value!r} not in {DEPTH_SOURCES}')
        return value
    if not isinstance(value, bool):
        raise OptionError(where, key, f'expected true or false, got {value!r}')
    return value


@dataclass(frozen=True)
class SVKRConfig:
    """The ``svkr`` option block, parsed once.

    Attributes:
        iterations: T >= 0 refinement rounds.
        gamma: update rate of Eq. 2, in [0, 1].
        depth: ``midas`` (``network_d`` on LR and every SR iterate), ``file`` (the data's depth, fixed) or ``none``
            (a constant ``CONSTANT_DEPTH`` map). Default: ``midas`` when the options have a ``network_d``.
        save_iterates: keep D^t, K^t, I^t of every round (figures).
    """

    iterations: int = 3
    gamma: float = 0.9
    depth: str = 'none'
    save_iterates: bool = False

    def __post_init__(self) -> None:
        for name in ('iterations', 'gamma', 'depth', 'save_iterates'):
            object.__setattr__(self, name, _check_value(f'{BLOCK}.{name}', name, getattr(self, name), 'SVKRConfig'))

    @classmethod
    def from_options(cls, opt: Mapping, where: str = '<options>') -> SVKRConfig:
        """Reads ``opt['svkr']``, and the same keys in ``opt['conditions']`` (the old ``SSRModel`` spelling).

        A key given in both spellings takes the value of ``conditions`` (with a warning): shipped option files use
        ``svkr`` only, so an old-spelling key comes from a user file written on top of them.

        Args:
            opt: the whole option tree (the default ``depth`` depends on ``network_d``).
            where: the option file or model named in errors.

        Raises:
            OptionError: one line naming the key: an unknown key, a value of the wrong type or out of range.
        """
        names = [f.name for f in cls.__dataclass_fields__.values()]
        found: dict[str, tuple[str, object]] = {}
        for block, own in ((BLOCK, ()), (OLD_BLOCK, OLD_BLOCK_OWN_KEYS)):
            values = opt.get(block)
            if values is None:
                continue
            if not isinstance(values, Mapping):
                raise OptionError(where, block, f'expected a mapping, got {values!r}')
            for key, value in values.items():
                if key in own:
                    continue
                if key not in names:
                    allowed = sorted(names) + sorted(own)
                    raise OptionError(where, f'{block}.{key}', f'unknown key; {block} takes {allowed}')
                if key in found and found[key][1] != value:
                    logger.warning('%s: %s.%s: %r (old spelling) overrides %s: %r', where, block, key, value,
                                   found[key][0], found[key][1])
                found[key] = (f'{block}.{key}', value)
        found.setdefault('depth', (f'{BLOCK}.depth', 'midas' if 'network_d' in opt else 'none'))
        return cls(**{name: _check_value(key, name, value, where) for name, (key, value) in found.items()})

    def check_networks(self, opt: Mapping, where: str = '<options>') -> None:
        """Raises ``OptionError`` when ``depth: midas`` has no ``network_d`` in ``opt``."""
        if self.depth == 'midas' and 'network_d' not in opt:
            raise OptionError(where, f'{BLOCK}.depth', 'midas needs a network_d (e.g. {type: MiDaSDepth, '
                              'weights_path: ...}); use depth: none to run without depth weights')


# ----------------------------------------------------------------------------------------------------------------
# Algorithm 1
@dataclass
class SVKROutput:
    """Result of :class:`SVKR`.

    Attributes:
        depth: D^T, (B, 1, H', W') in [0, 1]; ``None`` for a network that estimates no depth (:class:`OneNetworkSR`).
        kernel: K^T, (B, k*k, h, w); ``None`` for a kernel-unaware network.
        sr: I^T, (B, 3, s*h, s*w).
        iterates: when requested, ``[{'depth': D^t, 'kernel': K^t, 'sr': I^t} for t in 0..T]`` (for figures).
    """

    depth: Tensor | None
    kernel: Tensor | None
    sr: Tensor
    iterates: list[dict[str, Tensor]] = field(default_factory=list)


def depth_function(source: str, depth_net: nn.Module | None = None, depth_map: Tensor | None = None) -> DepthFn:
    """DE of Algorithm 1 for ``svkr.depth``: ``midas`` runs ``depth_net``, ``file`` returns ``depth_map``
    (B, 1, H', W') whatever the image, ``none`` a constant map of the image's batch and size.

    Raises:
        ValueError: the network or the map that ``source`` needs is missing, or ``source`` is unknown.
    """
    if source == 'midas':
        if depth_net is None:
            raise ValueError('svkr.depth: midas needs a depth network (network_d)')
        return depth_net
    if source == 'file':
        if depth_map is None:
            raise ValueError('svkr.depth: file needs depth maps in the data (dataroot_depth)')
        return lambda img: depth_map
    if source == 'none':
        return lambda img: torch.full_like(img[:, :1], CONSTANT_DEPTH)
    raise ValueError(f'svkr.depth {source!r} not in {DEPTH_SOURCES}')


class SVKR:
    """Algorithm 1 over three callables (networks or any functions with the signatures above).

    Args:
        depth_fn: DE; receives LR first, then each SR iterate.
        kernel_fn: KE.
        sr_fn: NBSR.
        iterations: T >= 0.
        gamma: update rate in [0, 1].

    Raises:
        ValueError: ``iterations`` < 0 or ``gamma`` outside [0, 1].
    """

    def __init__(self, depth_fn: DepthFn, kernel_fn: KernelFn, sr_fn: SRFn, iterations: int = 3, gamma: float = 0.9):
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f'svkr.iterations must be an int >= 0, got {iterations!r}')
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f'svkr.gamma must be in [0, 1], got {gamma!r}')
        self.depth_fn, self.kernel_fn, self.sr_fn = depth_fn, kernel_fn, sr_fn
        self.iterations, self.gamma = iterations, float(gamma)

    @classmethod
    def from_networks(cls, config: SVKRConfig, estimator: nn.Module, sr_net: nn.Module,
                      depth_net: nn.Module | None = None, *, depth_map: Tensor | None = None,
                      noise_level: Tensor | None = None) -> SVKR:
        """SVKR with registered networks (any estimator / SR network, see :func:`estimate_kernel`).

        Args:
            config: the ``svkr`` options.
            estimator: KE (``network_e``).
            sr_net: NBSR.
            depth_net: DE for ``depth: midas``.
            depth_map: (B, 1, H', W') the data's depth for ``depth: file``.
            noise_level: (B, 1) noise level passed to SR networks that take one.
        """
        return cls(depth_function(config.depth, depth_net, depth_map), lambda x, d: estimate_kernel(estimator, x, d),
                   lambda x, k: super_resolve(sr_net, x, k, noise_level), config.iterations, config.gamma)

    def __call__(self, lq: Tensor, return_iterates: bool = False) -> SVKROutput:
        """Run T refinement rounds on ``lq`` (B, 3, h, w)."""
        depth = self.depth_fn(lq)
        kernel = self.kernel_fn(lq, depth)
        sr = self.sr_fn(lq, kernel)
        iterates = [{'depth': depth, 'kernel': kernel, 'sr': sr}] if return_iterates else []
        for _ in range(self.iterations):
            depth = self.depth_fn(sr)
            kernel = torch.lerp(kernel, self.kernel_fn(lq, depth), self.gamma)  # Eq. 2
            sr = self.sr_fn(lq, kernel)
            if return_iterates:
                iterates.append({'depth': depth, 'kernel': kernel, 'sr': sr})
        return SVKROutput(depth=depth, kernel=kernel, sr=sr, iterates=iterates)


class OneNetworkSR:
    """The blind path without an estimator: one network ``lq -> sr`` (kernel-unaware, e.g. ``RRDBNet``) or
    ``lq -> output(sr, kernel)`` (one-network blind SR, e.g. ``DCLSNet``, whose per-image kernel becomes a field).

    Args:
        net: the SR network.

    Raises:
        ValueError: ``net`` takes a kernel field (a non-blind network needs an estimator).
    """

    def __init__(self, net: nn.Module):
        if accepts(net, 'kernel'):
            raise ValueError(f'{type(bare(net)).__name__} needs a kernel field: give the model an estimator '
                             '(network_e) or data with ground-truth kernels')
        self.net = net

    def __call__(self, lq: Tensor, return_iterates: bool = False) -> SVKROutput:
        """``lq`` (B, 3, h, w) -> SVKROutput(depth None, kernel (B, k*k, h, w) or None, sr (B, 3, s*h, s*w))."""
        out = self.net(lq)
        kernel = kernel_field_of(getattr(out, 'kernel', None), lq)
        return SVKROutput(depth=None, kernel=kernel, sr=getattr(out, 'sr', out))


def blind_sr(config: SVKRConfig, sr_net: nn.Module, estimator: nn.Module | None = None,
             depth_net: nn.Module | None = None, *, depth_map: Tensor | None = None,
             noise_level: Tensor | None = None) -> SVKR | OneNetworkSR:
    """The blind two-stage path: :class:`SVKR` with an estimator, :class:`OneNetworkSR` without one."""
    if estimator is None:
        return OneNetworkSR(sr_net)
    return SVKR.from_networks(config, estimator, sr_net, depth_net, depth_map=depth_map, noise_level=noise_level)
