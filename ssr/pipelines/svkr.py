"""Spatially Variant Kernel Refinement (SVKR, paper Algorithm 1): its option block, the calls into any estimator /
SR network, and the loop itself.

Notation (paper -> code)::

    LR      lq        (B, 3, h, w)    low-resolution input in [0, 1]
    DE      depth_fn  image -> (B, 1, H', W') relative inverse depth in [0, 1] (any size; consumers resize it)
    KE      kernel_fn (lq, depth) -> (B, k*k, h, w) kernel field, sums to 1 over dim 1
    NBSR    sr_fn     (lq, kernel) -> (B, 3, s*h, s*w) SR image
    T       iterations
    gamma   gamma (paper: 0.9), Eq. 2: K = gamma * K' + (1 - gamma) * K_prev

Algorithm 1 as the paper writes it (``svkr.init: lr``)::

    I^0 = LR;  D^0 = DE(I^0);  K^0 = KE(LR, D^0)
    for t = 0 .. T-1:  D^{t+1} = DE(I^t);  K' = KE(LR, D^{t+1});  K^{t+1} = gamma K' + (1 - gamma) K^t;
                       I^{t+1} = NBSR(LR, K^{t+1})
    return D^T, K^T, I^T

Its first round repeats the initialisation: D^1 = DE(LR) = D^0, so K' = K^0 and Eq. 2 gives K^1 = K^0. The code
reuses D^0 and K^0 there instead of calling DE and KE again (same result, bit for bit). ``I_0 = LR`` is the LR image
itself, not an upsampled one: DE takes any size. With T = 0 Algorithm 1 makes no SR image; the code returns
I = NBSR(LR, K^0).

The default ``svkr.init: nbsr`` (this code's behaviour before the option existed) starts from an SR image::

    D^0 = DE(LR);  K^0 = KE(LR, D^0);  I^0 = NBSR(LR, K^0);  then the same T rounds.

So ``init: nbsr`` with T rounds is Algorithm 1 with T + 1 rounds (its iterate t is Algorithm 1's t + 1), and
``init: lr`` with T >= 1 rounds gives the same output as ``init: nbsr`` with T - 1. The paper's T = 3 is
``{init: lr, iterations: 3}`` = ``{init: nbsr, iterations: 2}``.

Calls made per image (a depth network that is re-run on every SR iterate)::

    init    DE       KE (DKENet)   NBSR    (Algorithm 1 read literally: DE T+1, KE T+1, NBSR T)
    nbsr    T + 1    T + 1         T + 1
    lr      T        T             T       (T >= 1; T = 0: one call each)

With a fixed depth (``svkr.depth: file`` or ``none``, see :class:`FixedDepth`) every round after the first SR image
repeats the one before bit for bit: KE sees the same map, so K' = K^0, Eq. 2 keeps K^t = K^0, and NBSR gets the same
kernel. SVKR then calls KE and NBSR once each whatever T is, and fills the later iterates with the same tensors (DE,
a lookup or a constant, is also asked for D^T of the SR image). Eq. 2 alone does not make rounds differ: the blend
moves K only while KE's estimate moves, i.e. while the depth does.

A convex blend of two fields whose kernels sum to 1 sums to 1, so K^t stays a kernel field. With T = 0 SVKR is the
plain two-stage pipeline (estimate once, then non-blind SR); with gamma = 1 the history is ignored.

Option block (one spelling for every model)::

    svkr: {iterations: 3, gamma: 0.9, depth: midas | file | none, init: nbsr | lr, save_iterates: false}

``SSRModel`` files written before this spelling carried the same keys inside ``conditions:`` (beside
``conditions.source``); :meth:`SVKRConfig.from_options` still reads them there.

Network names: ``network_g`` is always the network a model trains (BasicSR's convention); the networks SVKR calls
are ``network_e`` (estimator KE), ``network_d`` (depth DE) and the non-blind SR network NBSR, which is
``network_g`` in ``BlindSRModel`` (it trains it) and ``network_sr`` in ``SSRModel`` (frozen beside the AMF-UNet).
"""
from __future__ import annotations

import difflib
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

__all__ = ['CONSTANT_DEPTH', 'DEPTH_SOURCES', 'SVKR_INITS', 'SVKR', 'SVKRConfig', 'SVKROutput', 'FixedDepth',
           'OneNetworkSR', 'accepts', 'bare', 'blind_sr', 'depth_function', 'estimate_kernel', 'kernel_field_of',
           'run_sr_network',
           'super_resolve']

DepthFn = Callable[[Tensor], Tensor]
KernelFn = Callable[[Tensor, Tensor], Tensor]
SRFn = Callable[[Tensor, Tensor], Tensor]

DEPTH_SOURCES = ('midas', 'file', 'none')
SVKR_INITS = ('nbsr', 'lr')  # I^0: NBSR(LR, K^0) (default) or LR itself (Algorithm 1)
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
    out = run_sr_network(net, lq, kernel, noise_level)
    return getattr(out, 'sr', out)


def run_sr_network(net: nn.Module, lq: Tensor, kernel: Tensor | None = None, noise_level: Tensor | None = None):
    """The raw output of an SR network (a tensor, or an output with ``.sr`` and maybe ``.kernel``: DCLS, MANet),
    ``kernel`` / ``noise_level`` passed when it takes them; see :func:`super_resolve`."""
    kwargs = {}
    if accepts(net, 'kernel'):
        if kernel is None:
            raise ValueError(f'{type(bare(net)).__name__} needs a kernel field: give the model an estimator '
                             '(network_e) or data with ground-truth kernels')
        kwargs['kernel'] = kernel
    if noise_level is not None and accepts(net, 'noise_level'):
        kwargs['noise_level'] = noise_level
    return net(lq, **kwargs)


def kernel_field_of(kernel: Tensor | None, lq: Tensor) -> Tensor | None:
    """A one-kernel-per-image estimate ``(B, 1, k, k)`` / ``(B, k*k)`` (DCLS) as a ``(B, k*k, h, w)`` field on the
    LR grid of ``lq`` (B, 3, h, w); a per-pixel field already on that grid (MANet's ``(B, k*k, h, w)``) is returned
    as it is; ``None`` stays ``None``."""
    if kernel is None:
        return None
    b, h, w = lq.shape[0], lq.shape[2], lq.shape[3]
    if kernel.dim() == 4 and kernel.shape[0] == b and tuple(kernel.shape[2:]) == (h, w) and kernel.shape[1] > 1:
        return kernel
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
    if name == 'init':
        if value not in SVKR_INITS:
            raise OptionError(where, key, f'{value!r} not in {SVKR_INITS}')
        return value
    if not isinstance(value, bool):
        raise OptionError(where, key, f'expected true or false, got {value!r}')
    return value


@dataclass(frozen=True)
class SVKRConfig:
    """The ``svkr`` option block, parsed once.

    How ``iterations`` (T) maps to Algorithm 1 (module docstring for the derivation)::

        init    start                     = Algorithm 1 with   calls per image, depth re-estimated (DE / KE / NBSR)
        nbsr    I^0 = NBSR(LR, K^0)       T + 1 rounds         T + 1 each
        lr      I^0 = LR (Algorithm 1)    T rounds             T each for T >= 1 (one each for T = 0)

    With ``depth: file`` or ``none`` KE and NBSR run once whatever T and init are (later rounds repeat bit for bit).

    Attributes:
        iterations: T >= 0 refinement rounds.
        gamma: update rate of Eq. 2, in [0, 1].
        depth: ``midas`` (``network_d`` on LR and every SR iterate), ``file`` (the data's depth, fixed) or ``none``
            (a constant ``CONSTANT_DEPTH`` map). Default: ``midas`` when the options have a ``network_d``.
        save_iterates: keep D^t, K^t, I^t of every round (figures).
        init: ``nbsr`` (default; I^0 = NBSR(LR, K^0), so T = 3 is Algorithm 1's T = 4) or ``lr`` (Algorithm 1 as
            written: I^0 = LR, so T = 3 is the paper's T = 3).
    """

    iterations: int = 3
    gamma: float = 0.9
    depth: str = 'none'
    save_iterates: bool = False
    init: str = 'nbsr'

    def __post_init__(self) -> None:
        for name in ('iterations', 'gamma', 'depth', 'save_iterates', 'init'):
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
                    close = difflib.get_close_matches(str(key), allowed, n=1)
                    hint = f' (did you mean {close[0]!r}?)' if close else ''
                    raise OptionError(where, f'{block}.{key}', f'unknown key{hint}; {block} takes {allowed}')
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


class FixedDepth:
    """DE whose map does not depend on the image it is shown: ``svkr.depth: file`` (the data's map) or ``none``
    (a constant ``CONSTANT_DEPTH`` map of the image's batch and size).

    :class:`SVKR` stops refining after the first SR image with such a DE, since every later round would repeat it.
    For ``none`` the constant's size follows the image (LR, then SR); the estimator must give the same field for both
    sizes, which DKENet does bit for bit (area resizing of a constant is exact; ``tests/test_pipelines`` checks it)
    and a depth-free estimator does trivially.

    Args:
        depth_map: (B, 1, H', W') in [0, 1], returned for every image; ``None`` for the constant map.
    """

    def __init__(self, depth_map: Tensor | None = None):
        self.depth_map = depth_map

    def __call__(self, img: Tensor) -> Tensor:
        if self.depth_map is not None:
            return self.depth_map
        return torch.full_like(img[:, :1], CONSTANT_DEPTH)


def depth_function(source: str, depth_net: nn.Module | None = None, depth_map: Tensor | None = None) -> DepthFn:
    """DE of Algorithm 1 for ``svkr.depth``: ``midas`` runs ``depth_net``, ``file`` returns ``depth_map``
    (B, 1, H', W') whatever the image, ``none`` a constant map of the image's batch and size (both a
    :class:`FixedDepth`).

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
        return FixedDepth(depth_map)
    if source == 'none':
        return FixedDepth()
    raise ValueError(f'svkr.depth {source!r} not in {DEPTH_SOURCES}')


class SVKR:
    """Algorithm 1 over three callables (networks or any functions with the signatures above).

    ``iterations`` is T of Algorithm 1 with ``init='lr'``; with the default ``init='nbsr'`` the loop starts from
    the SR image NBSR(LR, K^0), which is Algorithm 1 with T + 1. Calls per image (module docstring):

    - depth re-estimated (``fixed_depth`` False): ``nbsr``: DE, KE and NBSR T + 1 times each; ``lr``: T times each
      (T >= 1), because Algorithm 1's first round repeats its initialisation and is not recomputed.
    - ``fixed_depth``: KE and NBSR once each for any T and init; DE once on LR and, for T >= 1, once on the SR
      image (for D^T). The output, iterates included, is bitwise that of the full loop.

    Args:
        depth_fn: DE; receives LR first, then each SR iterate.
        kernel_fn: KE.
        sr_fn: NBSR.
        iterations: T >= 0.
        gamma: update rate in [0, 1].
        init: ``nbsr`` (I^0 = NBSR(LR, K^0)) or ``lr`` (I^0 = LR, Algorithm 1).
        fixed_depth: whether ``depth_fn``'s map ignores the image (then later rounds repeat the first); ``None``:
            whether ``depth_fn`` is a :class:`FixedDepth`. ``False`` forces every round to run.

    Raises:
        ValueError: ``iterations`` < 0, ``gamma`` outside [0, 1] or ``init`` not in ``SVKR_INITS``.
    """

    def __init__(self, depth_fn: DepthFn, kernel_fn: KernelFn, sr_fn: SRFn, iterations: int = 3, gamma: float = 0.9,
                 *, init: str = 'nbsr', fixed_depth: bool | None = None):
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f'svkr.iterations must be an int >= 0, got {iterations!r}')
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f'svkr.gamma must be in [0, 1], got {gamma!r}')
        if init not in SVKR_INITS:
            raise ValueError(f'svkr.init {init!r} not in {SVKR_INITS}')
        self.depth_fn, self.kernel_fn, self.sr_fn = depth_fn, kernel_fn, sr_fn
        self.iterations, self.gamma, self.init = iterations, float(gamma), init
        self.fixed_depth = isinstance(depth_fn, FixedDepth) if fixed_depth is None else bool(fixed_depth)

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
                   lambda x, k: super_resolve(sr_net, x, k, noise_level), config.iterations, config.gamma,
                   init=config.init)

    def __call__(self, lq: Tensor, return_iterates: bool = False) -> SVKROutput:
        """Run T refinement rounds on ``lq`` (B, 3, h, w).

        ``iterates`` (when asked for) holds t = 0..T; with ``init='lr'`` iterate 0's ``sr`` is LR itself, and with
        a fixed depth the repeated rounds share the tensors of the round they repeat.
        """
        # 1. Initialisation: D^0 = DE(I^0) with I^0 = LR under both inits; K^0 = KE(LR, D^0).
        depth = self.depth_fn(lq)
        kernel = self.kernel_fn(lq, depth)
        sr = self.sr_fn(lq, kernel) if self.init == 'nbsr' else lq
        sr_is_current = self.init == 'nbsr'  # sr == NBSR(LR, kernel)
        iterates = [{'depth': depth, 'kernel': kernel, 'sr': sr}] if return_iterates else []
        # 2. Rounds t = 1..T.
        sr_depth = None  # a FixedDepth's map for SR images (it only depends on their size)
        for t in range(1, self.iterations + 1):
            if self.init == 'lr' and t == 1:
                pass  # D^1 = DE(I^0) = DE(LR) = D^0, so K' = K^0 and Eq. 2 gives K^1 = K^0
            elif self.fixed_depth:
                # KE(LR, D^t) = K^0 and K^{t-1} = K^0, so Eq. 2 gives K^t = K^0: only D^t can change (its size, for
                # depth: none), once, from LR to the SR image
                sr_depth = self.depth_fn(sr) if sr_depth is None else sr_depth
                depth = sr_depth
            else:
                depth = self.depth_fn(sr)
                kernel = torch.lerp(kernel, self.kernel_fn(lq, depth), self.gamma)  # Eq. 2
                sr_is_current = False
            if not sr_is_current:
                sr, sr_is_current = self.sr_fn(lq, kernel), True
            if return_iterates:
                iterates.append({'depth': depth, 'kernel': kernel, 'sr': sr})
        # 3. T = 0 with init lr: Algorithm 1 makes no SR image; the blind path still returns NBSR(LR, K^0).
        if not sr_is_current:
            sr = self.sr_fn(lq, kernel)
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
