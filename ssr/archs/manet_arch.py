"""MANet baseline: the kernel estimator and the RRDB-SFT non-blind SR network, loadable from official checkpoints.

Provenance: the layer order, names and hyper-parameters follow the official definitions in JingyunLiang/MANet
(``codes/models/modules/MANet_arch.py``, ``codes/utils/util.py``, commit 34f90ba8888f4a1dd2a1127b97c2ec3706f06598;
Apache-2.0). The code here is ssr's own; only the module names are kept so that official ``<iter>_G.pth`` files load
strictly. Official stage 1 (``MANet_s1``) = :class:`MANetEstimator` under ``kernel_estimation.``, stage 2
(``MANet_s2``) = :class:`MANetSR`, stage 3 (``MANet_s3``) = :class:`MANetBlindSR`.

Notation (every docstring of this module):

=========  ===========================================================================================================
symbol     meaning
=========  ===========================================================================================================
B          batch size
h, w       LR height and width; H = s*h, W = s*w the SR output size
s          scale factor
k          kernel size (odd, default 21); r = k // 2
L          PCA code length (``code_length``, default 15)
field      kernel field (B, k*k, h, w): one k x k kernel per LR pixel, row-major, each sums to 1 (DESIGN.md §3)
=========  ===========================================================================================================

Conventions, MANet versus ssr (both degrade as ``LR[i] = sum_u HRpad[s*i + u - r] * K[u]``, i.e. ``F.conv2d``
correlation followed by ``[::s]`` subsampling; MANet pads by replication, ssr by reflection):

- **Kernel placement.** MANet builds its Gaussians on a (k - s + 1)^2 grid and stores them in the *top-left* corner of
  the k x k array, so their centre is at index (k - s) / 2 = r - (s - 1) / 2. ssr centres them at r + (s - 1) / 2.
  The same blur is therefore stored s - 1 rows and columns further up-left in MANet's layout:
  :func:`manet_field_to_ssr` / :func:`ssr_field_to_manet` convert by that shift. Its estimator was trained on that
  layout too, so its raw softmax output (``kernel_layout='manet'``) is in it.
- **LR grid.** With correlation, MANet's LR pixel i samples the blurred HR image at s*i - (s - 1) / 2, ssr's at
  s*i + (s - 1) / 2 (the bicubic centre). MANet's networks fed an ssr LR image therefore return an SR image displaced
  by s - 1 HR pixels: ``SR[p] ~ HR[p + (s - 1)]`` in rows and columns.
- **Gaussian widths.** MANet's anisotropic kernels take *variances* (``sig1``, ``sig2`` in its configs, the
  ``sig_min``/``sig_max`` range included) with the same theta convention as ssr; its isotropic ones take a std.
  :func:`manet_variances_to_ssr_sigmas` converts.
- **Kernel codes.** ``pca_matrix`` is MANet's (k*k, L) PCA basis stored as (1, k*k, L, 1, 1); codes are per pixel,
  ``code = K^T P`` with *no* mean subtraction (ssr's :class:`~ssr.ops.kernel_pca.KernelPCA` subtracts a mean), on
  kernels in MANet's layout.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import default_init_weights
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from ssr.archs.maconv import MAConv
from ssr.ops.mmsr_kernels import manet_field_to_ssr, ssr_field_to_manet  # noqa: F401  (re-exported)
from ssr.utils.checkpoint import safe_torch_load

__all__ = [
    'KERNEL_LAYOUTS', 'MANetBlindSR', 'MANetBlindSROutput', 'MANetEstimator', 'MANetSR', 'manet_field_to_ssr',
    'manet_official_to_blind_sr', 'manet_official_to_estimator', 'manet_official_to_sr',
    'manet_variances_to_ssr_sigmas', 'ssr_field_to_manet'
]

KERNEL_LAYOUTS = ('ssr', 'manet')

# The estimator pads its input to a multiple of this (two 2x2 stride-2 stages would need 2; the official code uses 8).
_PAD_MULTIPLE = 8
# Hidden width of the SFT condition convs, fixed in the official SFT_Layer.
_SFT_HIDDEN = 32


# ---------------------------------------------------------------------------------------------------------------------
# Kernel conventions (pure functions)
# ---------------------------------------------------------------------------------------------------------------------
def _check_layout(kernel_layout: str) -> None:
    if kernel_layout not in KERNEL_LAYOUTS:
        raise ValueError(f'kernel_layout {kernel_layout!r} not in {KERNEL_LAYOUTS}')


def manet_variances_to_ssr_sigmas(var1: Tensor | float, var2: Tensor | float,
                                  theta: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    """MANet's anisotropic Gaussian parameters (variances, as in its configs) -> ssr's (std, std, theta).

    Both use covariance = R diag(a, b) R^T in (x = column, y = row) coordinates with R = [[cos, -sin], [sin, cos]]
    (MANet ``anisotropic_gaussian_kernel_matlab``); only a, b differ (variance versus std^2).

    Args:
        var1, var2: variances in HR pixels^2, > 0.
        theta: radians, unchanged.

    Returns:
        ``(sigma1, sigma2, theta)`` float tensors, sigmas in HR pixels.
    """
    var1, var2, theta = (v if isinstance(v, Tensor) and v.is_floating_point() else
                         torch.as_tensor(v, dtype=torch.get_default_dtype()) for v in (var1, var2, theta))
    if not bool((var1 > 0).all() and (var2 > 0).all()):
        raise ValueError('variances must be > 0')
    return var1.sqrt(), var2.sqrt(), theta


# ---------------------------------------------------------------------------------------------------------------------
# Official checkpoint layouts (pure functions; the map is data)
# ---------------------------------------------------------------------------------------------------------------------
# (pattern, replacement); a key matching no pattern of a table is dropped. The first match wins.
_ESTIMATOR_FROM_OFFICIAL = ((re.compile(r'^kernel_estimation\.'), ''), )
_SR_FROM_OFFICIAL = ((re.compile(r'^(pca_matrix|conv_first\.|RRDB_trunk\.|trunk_conv\.|upsampler\.)'), r'\1'), )


def _strip_module(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drops the ``module.`` prefix that (Distributed)DataParallel adds."""
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def _map_keys(state: Mapping[str, Tensor], table: Sequence[tuple[re.Pattern, str]]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, repl in table:
            if pattern.match(key):
                out[pattern.sub(repl, key, count=1)] = value
                break
    return out


def manet_official_to_estimator(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An official MANet file -> :class:`MANetEstimator` keys.

    A stage-1 or stage-3 file (sentinel: any ``kernel_estimation.*`` key) gives its ``kernel_estimation.*`` entries
    with the prefix removed; any other dict (already in the estimator's layout) passes through. ``module.`` is
    stripped in both cases.
    """
    state = _strip_module(state)
    if any(k.startswith('kernel_estimation.') for k in state):
        return _map_keys(state, _ESTIMATOR_FROM_OFFICIAL)
    return state


def manet_official_to_sr(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An official stage-2 or stage-3 file -> :class:`MANetSR` keys (stage 3's ``kernel_estimation.*`` dropped)."""
    return _map_keys(_strip_module(state), _SR_FROM_OFFICIAL)


def manet_official_to_blind_sr(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An official stage-3 file -> :class:`MANetBlindSR` keys: the names already match; ``module.`` is stripped."""
    return _strip_module(state)


# ---------------------------------------------------------------------------------------------------------------------
# Blocks (official names: fc{i}, conv{i}, res, SFT.*, RDB{1,2,3}.conv{1..5})
# ---------------------------------------------------------------------------------------------------------------------
def _sequential(*modules: nn.Module) -> nn.Module:
    """A single module as is, several in an ``nn.Sequential``.

    The official ``sequential`` helper behaves this way, which is why estimator keys depend on ``nb``: with nb = 1,
    ``m_body`` is the bare MABlock (``m_body.res.0.*``) while ``m_down1`` is a Sequential (``m_down1.0.res.*``,
    ``m_down1.1.weight``).
    """
    return modules[0] if len(modules) == 1 else nn.Sequential(*modules)


class _MABlock(nn.Module):
    """``x + MAConv(ReLU(MAConv(x)))`` with MANet's split rounding and key names (``res.{0,2}.fc{i}``, ``conv{i}``)."""

    def __init__(self, *, channels: int, split: int, reduction: int) -> None:
        super().__init__()
        opts = dict(in_ch=channels, out_ch=channels, kernel_size=3, split=split, reduction=reduction,
                    split_rounding='round', module_names='manet')
        self.res = nn.Sequential(MAConv(**opts), nn.ReLU(inplace=True), MAConv(**opts))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res(x)


class _SFTLayer(nn.Module):
    """SFT as in IKC/SFTMD: ``feat * sigmoid(mul(feat ⊕ code)) + add(feat ⊕ code)``."""

    def __init__(self, *, num_feat: int, code_len: int) -> None:
        super().__init__()
        self.mul_conv1 = nn.Conv2d(num_feat + code_len, _SFT_HIDDEN, 3, padding=1)
        self.mul_conv2 = nn.Conv2d(_SFT_HIDDEN, num_feat, 3, padding=1)
        self.add_conv1 = nn.Conv2d(num_feat + code_len, _SFT_HIDDEN, 3, padding=1)
        self.add_conv2 = nn.Conv2d(_SFT_HIDDEN, num_feat, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, feat: Tensor, code: Tensor) -> Tensor:
        cond = torch.cat((feat, code), dim=1)
        mul = torch.sigmoid(self.mul_conv2(self.lrelu(self.mul_conv1(cond))))
        return feat * mul + self.add_conv2(self.lrelu(self.add_conv1(cond)))


class _ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs, residual scaled by 0.2 (ESRGAN)."""

    def __init__(self, *, num_feat: int, num_grow: int) -> None:
        super().__init__()
        for i in range(1, 6):
            setattr(self, f'conv{i}', nn.Conv2d(num_feat + (i - 1) * num_grow, num_feat if i == 5 else num_grow, 3,
                                                padding=1))
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        # Small residual branches at start (official initialize_weights(..., 0.1)).
        default_init_weights([getattr(self, f'conv{i}') for i in range(1, 6)], 0.1)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(self.lrelu(getattr(self, f'conv{i}')(torch.cat(feats, dim=1))))
        return x + 0.2 * self.conv5(torch.cat(feats, dim=1))


class _RRDBSFT(nn.Module):
    """SFT on the input, then three RDBs; residual scaled by 0.2."""

    def __init__(self, *, num_feat: int, num_grow: int, code_len: int) -> None:
        super().__init__()
        self.SFT = _SFTLayer(num_feat=num_feat, code_len=code_len)
        self.RDB1 = _ResidualDenseBlock(num_feat=num_feat, num_grow=num_grow)
        self.RDB2 = _ResidualDenseBlock(num_feat=num_feat, num_grow=num_grow)
        self.RDB3 = _ResidualDenseBlock(num_feat=num_feat, num_grow=num_grow)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        return x + 0.2 * self.RDB3(self.RDB2(self.RDB1(self.SFT(x, code))))


# ---------------------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------------------
@ARCH_REGISTRY.register()
class MANetEstimator(nn.Module):
    """MANet kernel estimator (official ``MANet``): a one-level U-Net of MABlocks, softmax over k*k per LR pixel.

    Keys: ``m_head``, ``m_down1``, ``m_body``, ``m_up1``, ``m_tail`` (their inner names depend on ``nb``, see
    :func:`_sequential`). Official stage-1 and stage-3 files load through :meth:`adapt_state_dict`.

    Args:
        in_nc: input channels.
        kernel_size: k, odd.
        nc: (c0, c1) feature channels of the full- and half-resolution levels (official stage configs: (128, 256)).
        nb: MABlocks per level, >= 0.
        split: channel splits of each MAConv, >= 2.
        reduction: hidden-width divisor of the MAConv affine branches.
        scale: s, used only to convert the output to ``kernel_layout='ssr'``.
        kernel_layout: ``'ssr'`` (kernels centred at r + (s-1)/2, DESIGN.md §3) or ``'manet'`` (the raw softmax,
            centred at r - (s-1)/2, as the official network outputs); see the module docstring.

    Raises:
        ValueError: for an unknown ``kernel_layout``, an even ``kernel_size``, ``nc`` not two positive ints, ``nb < 0``,
            a scale outside [1, k], or splits / hidden widths that come out empty.
    """

    def __init__(self, in_nc: int = 3, kernel_size: int = 21, nc: Sequence[int] = (128, 256), nb: int = 1,
                 split: int = 2, reduction: int = 2, scale: int = 4, kernel_layout: str = 'ssr') -> None:
        super().__init__()
        _check_layout(kernel_layout)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be odd and >= 1, got {kernel_size}')
        if len(nc) != 2 or min(nc) < 1:
            raise ValueError(f'nc must be two positive channel counts, got {nc}')
        if nb < 0:
            raise ValueError(f'nb must be >= 0, got {nb}')
        if not 1 <= scale <= kernel_size:
            raise ValueError(f'scale must be in [1, kernel_size = {kernel_size}], got {scale}')
        self.kernel_size, self.scale, self.kernel_layout = kernel_size, scale, kernel_layout
        c0, c1 = nc

        def blocks(ch: int) -> list[nn.Module]:
            return [_MABlock(channels=ch, split=split, reduction=reduction) for _ in range(nb)]

        self.m_head = nn.Conv2d(in_nc, c0, 3, padding=1)
        self.m_down1 = _sequential(*blocks(c0), nn.Conv2d(c0, c1, 2, stride=2))
        self.m_body = _sequential(*blocks(c1))
        self.m_up1 = _sequential(nn.ConvTranspose2d(c1, c0, 2, stride=2), *blocks(c0))
        self.m_tail = nn.Conv2d(c0, kernel_size**2, 3, padding=1)
        # PyTorch's default initialisation, as the official estimator (it calls no init function).

    def forward(self, lq: Tensor) -> Tensor:
        """Estimates one kernel per LR pixel.

        Args:
            lq: (B, in_nc, h, w) LR image in [0, 1]; any h, w >= 1 (replicate-padded to a multiple of 8 and cropped
                back, as the official code).

        Returns:
            (B, k*k, h, w) kernel field in ``self.kernel_layout``, each kernel sums to 1.
        """
        h, w = lq.shape[-2:]
        x = F.pad(lq, (0, -w % _PAD_MULTIPLE, 0, -h % _PAD_MULTIPLE), mode='replicate')
        x1 = self.m_head(x)
        x2 = self.m_down1(x1)
        x = self.m_up1(self.m_body(x2) + x2)
        kernel = torch.softmax(self.m_tail(x + x1)[..., :h, :w], dim=1)
        return manet_field_to_ssr(kernel, self.scale) if self.kernel_layout == 'ssr' else kernel

    def adapt_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Accepts official stage-1/3 files (``kernel_estimation.*``) and ssr's own; see
        :func:`manet_official_to_estimator`."""
        return manet_official_to_estimator(state)


class _MANetSRBase(nn.Module):
    """RRDB-SFT trunk conditioned on per-pixel PCA codes; top-level keys as in the official stage-2/3 networks."""

    def __init__(self, *, in_nc: int, out_nc: int, nf: int, nb: int, gc: int, scale: int, code_length: int,
                 kernel_size: int, pca_path: str | os.PathLike | None, kernel_layout: str) -> None:
        super().__init__()
        _check_layout(kernel_layout)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be odd and >= 1, got {kernel_size}')
        if not 1 <= code_length <= kernel_size**2:
            raise ValueError(f'code_length must be in [1, k*k = {kernel_size**2}], got {code_length}')
        if not 1 <= scale <= kernel_size:
            raise ValueError(f'scale must be in [1, kernel_size = {kernel_size}], got {scale}')
        if min(in_nc, out_nc, nf, nb, gc) < 1:
            raise ValueError(f'in_nc, out_nc, nf, nb, gc must be >= 1, got {(in_nc, out_nc, nf, nb, gc)}')
        self.kernel_size, self.scale, self.kernel_layout = kernel_size, scale, kernel_layout
        # (1, k*k, L, 1, 1) as in the official checkpoints; zeros until a checkpoint or ``pca_path`` fills it.
        self.register_buffer('pca_matrix', torch.zeros(1, kernel_size**2, code_length, 1, 1))
        if pca_path is not None:
            self.pca_matrix.copy_(self._read_pca(pca_path, kernel_size, code_length))
        self.conv_first = nn.Conv2d(in_nc, nf, 3, padding=1)
        self.RRDB_trunk = nn.Sequential(
            *[_RRDBSFT(num_feat=nf, num_grow=gc, code_len=code_length) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.upsampler = nn.Sequential(nn.Conv2d(nf, out_nc * scale**2, 3, padding=1), nn.PixelShuffle(scale))
        # RDB convs start at 0.1 x Kaiming (in _ResidualDenseBlock); the rest keeps PyTorch's default, as officially.

    @staticmethod
    def _read_pca(path: str | os.PathLike, kernel_size: int, code_length: int) -> Tensor:
        """Reads an official ``pca_matrix_*.pth`` file: a (k*k, L) tensor with orthonormal columns."""
        pca = safe_torch_load(path)
        expected = (kernel_size**2, code_length)
        if not isinstance(pca, Tensor) or tuple(pca.shape) != expected:
            got = tuple(pca.shape) if isinstance(pca, Tensor) else type(pca).__name__
            raise ValueError(f'pca_path {str(path)!r} must hold a {expected} tensor (MANet pca_matrix_*.pth), '
                             f'got {got}')
        return pca.reshape(1, *expected, 1, 1)

    def kernel_codes(self, kernel: Tensor) -> Tensor:
        """Per-pixel PCA codes of a field in MANet's layout: (B, k*k, h, w) -> (B, L, h, w), ``K^T P``, no mean."""
        return torch.einsum('bkhw,kl->blhw', kernel, self.pca_matrix[0, :, :, 0, 0].to(kernel.dtype))

    def super_resolve(self, lq: Tensor, codes: Tensor) -> Tensor:
        """(B, in_nc, h, w) LR and (B, L, h, w) codes -> (B, out_nc, s*h, s*w) SR (not clamped, as officially)."""
        feat = self.conv_first(lq)
        trunk = feat
        for block in self.RRDB_trunk:
            trunk = block(trunk, codes)
        return self.upsampler(feat + self.trunk_conv(trunk))


@ARCH_REGISTRY.register()
class MANetSR(_MANetSRBase):
    """MANet's non-blind SR network (official ``MANet_s2``): RRDB-SFT conditioned on PCA codes of a kernel field.

    Keys: ``pca_matrix`` (1, k*k, L, 1, 1), ``conv_first``, ``RRDB_trunk.{i}.SFT.*`` / ``.RDB{1,2,3}.conv{1..5}``,
    ``trunk_conv``, ``upsampler.0``. Official stage-2 and stage-3 files load through :meth:`adapt_state_dict`.

    Args:
        in_nc, out_nc: image channels.
        nf: trunk features. nb: RRDB-SFT blocks. gc: RDB growth channels.
        scale: s, the PixelShuffle factor.
        code_length: L.
        kernel_size: k, odd.
        pca_path: optional official ``pca_matrix_aniso21_15_x{s}.pth`` ((k*k, L) tensor) to fill ``pca_matrix`` when
            no checkpoint is loaded; ``None`` leaves it zero (all codes 0) until ``load_network``.
        kernel_layout: layout of the ``kernel`` argument of :meth:`forward`, ``'ssr'`` (converted to MANet's before
            the PCA) or ``'manet'``.

    Raises:
        ValueError: for an unknown ``kernel_layout``, an even ``kernel_size``, ``code_length`` outside [1, k*k], a
            scale outside [1, k], a channel or block count < 1, or a ``pca_path`` not holding a (k*k, L) tensor.
    """

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, nb: int = 10, gc: int = 32, scale: int = 4,
                 code_length: int = 15, kernel_size: int = 21, pca_path: str | os.PathLike | None = None,
                 kernel_layout: str = 'ssr') -> None:
        super().__init__(in_nc=in_nc, out_nc=out_nc, nf=nf, nb=nb, gc=gc, scale=scale, code_length=code_length,
                         kernel_size=kernel_size, pca_path=pca_path, kernel_layout=kernel_layout)

    def forward(self, lq: Tensor, kernel: Tensor) -> Tensor:
        """Super-resolves ``lq`` given its kernel field.

        Args:
            lq: (B, in_nc, h, w) in [0, 1].
            kernel: (B, k*k, h, w) field, or (B, k*k, 1, 1) for one kernel per image, in ``self.kernel_layout``.

        Returns:
            (B, out_nc, s*h, s*w) SR image. Fed an LR image degraded with ssr's grid, the output sits s - 1 HR pixels
            up-left of the ground truth (module docstring).
        """
        b, _, h, w = lq.shape
        kk = self.kernel_size**2
        if kernel.dim() != 4 or kernel.shape[:2] != (b, kk) or kernel.shape[2:] not in ((h, w), (1, 1)):
            raise ValueError(f'kernel must be ({b}, {kk}, {h}, {w}) or ({b}, {kk}, 1, 1), got {tuple(kernel.shape)}')
        if self.kernel_layout == 'ssr':
            kernel = ssr_field_to_manet(kernel, self.scale)
        return self.super_resolve(lq, self.kernel_codes(kernel).expand(-1, -1, h, w))

    def adapt_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Accepts official stage-2/3 files; see :func:`manet_official_to_sr`."""
        return manet_official_to_sr(state)


@dataclass
class MANetBlindSROutput:
    """Output of :class:`MANetBlindSR`.

    Attributes:
        sr: (B, out_nc, s*h, s*w) SR image.
        kernel: (B, k*k, h, w) estimated kernel field on the LR grid, in the network's ``kernel_layout``.
    """

    sr: Tensor
    kernel: Tensor


@ARCH_REGISTRY.register()
class MANetBlindSR(_MANetSRBase):
    """MANet's blind SR (official ``MANet_s3``): MANet estimator -> per-pixel PCA codes -> RRDB-SFT.

    Keys: ``kernel_estimation.*`` (a :class:`MANetEstimator`) plus the :class:`MANetSR` keys at the top level, so an
    official stage-3 ``<iter>_G.pth`` (a raw state_dict) loads strictly.

    Args:
        in_nc, out_nc, nf, nb, gc, scale, code_length, kernel_size, pca_path: as :class:`MANetSR` (official stage-3
            configs: 3, 3, 64, 10, 32, s, 15, 21).
        manet_nf: estimator channels c0 (c1 = 2 * c0); official configs 128.
        manet_nb: MABlocks per estimator level; official configs 1.
        split: MAConv splits.
        kernel_layout: layout of the returned kernel field (``'ssr'`` or ``'manet'``); the SR branch always works on
            MANet's layout internally.
        train_estimator: ``False`` (official stage 3): the estimator runs without gradients and its parameters are
            frozen; ``True`` lets gradients from both outputs reach it.
        estimator_path: an official stage-1 file (or a :class:`MANetEstimator` checkpoint) loaded into
            ``kernel_estimation`` at construction: MANet's stage-3 ``pretrain_model_K``.
        sr_path: an official stage-2 file (or a :class:`MANetSR` checkpoint) loaded into the SR part: MANet's
            stage-3 ``pretrain_model_G``. Both strict: every key of their part, nothing else.

    Raises:
        ValueError: as :class:`MANetSR` and :class:`MANetEstimator`; a part file whose keys do not match.
    """

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, nb: int = 10, gc: int = 32, scale: int = 4,
                 code_length: int = 15, kernel_size: int = 21, manet_nf: int = 128, manet_nb: int = 1, split: int = 2,
                 pca_path: str | os.PathLike | None = None, kernel_layout: str = 'ssr',
                 train_estimator: bool = False, estimator_path: str | os.PathLike | None = None,
                 sr_path: str | os.PathLike | None = None) -> None:
        super().__init__(in_nc=in_nc, out_nc=out_nc, nf=nf, nb=nb, gc=gc, scale=scale, code_length=code_length,
                         kernel_size=kernel_size, pca_path=pca_path, kernel_layout=kernel_layout)
        self.kernel_estimation = MANetEstimator(in_nc=in_nc, kernel_size=kernel_size, nc=(manet_nf, 2 * manet_nf),
                                                nb=manet_nb, split=split, scale=scale, kernel_layout='manet')
        self.train_estimator = train_estimator
        self.kernel_estimation.requires_grad_(train_estimator)
        if estimator_path:
            self._load_part(estimator_path, 'kernel_estimation.', manet_official_to_estimator)
        if sr_path:
            self._load_part(sr_path, '', manet_official_to_sr)

    def _load_part(self, path: str | os.PathLike, prefix: str, adapt) -> None:
        """Load a stage-1 file into ``kernel_estimation`` (``prefix`` ``'kernel_estimation.'``) or a stage-2 file into
        the SR part (``prefix`` ``''``), strictly."""
        from ssr.utils.checkpoint import read_state_dict

        state, _ = read_state_dict(path, None)
        part = {prefix + k: v for k, v in adapt(state).items()}
        own = self.state_dict()
        expected = {k for k in own if k.startswith('kernel_estimation.') == bool(prefix)}
        missing, unexpected = sorted(expected - set(part)), sorted(set(part) - expected)
        wrong = sorted(k for k in set(part) & expected if part[k].shape != own[k].shape)
        if missing or unexpected or wrong:
            raise ValueError(f'{path}: does not fit MANetBlindSR\'s {"estimator" if prefix else "SR part"}: missing '
                             f'{missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}')
        own.update(part)
        self.load_state_dict(own)

    def forward(self, lq: Tensor) -> MANetBlindSROutput:
        """Estimates the kernel field of ``lq`` (B, in_nc, h, w) in [0, 1] and super-resolves it with it.

        On an LR image degraded with ssr's grid the SR output sits s - 1 HR pixels up-left of the ground truth, as for
        :meth:`MANetSR.forward` (module docstring).
        """
        with torch.set_grad_enabled(self.train_estimator and torch.is_grad_enabled()):
            kernel = self.kernel_estimation(lq)
        sr = self.super_resolve(lq, self.kernel_codes(kernel))
        if self.kernel_layout == 'ssr':
            kernel = manet_field_to_ssr(kernel, self.scale)
        return MANetBlindSROutput(sr=sr, kernel=kernel)

    def adapt_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Accepts official stage-3 files; see :func:`manet_official_to_blind_sr`."""
        return manet_official_to_blind_sr(state)
