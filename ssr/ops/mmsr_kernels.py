"""The fixed test kernels of MMSR-style option files (MANet's ``mode: GT`` test sets), as ssr kernel fields.

MANet's test files describe the blur of their on-the-fly LR synthesis with top-level keys. Read as MANet's code
reads them:

- ``rate_iso: 1``: isotropic Gaussian of standard deviation ``sig`` (HR pixels);
- ``rate_iso: 0``: anisotropic Gaussian whose covariance has the eigenvalues ``sig1``, ``sig2`` (variances, px²) and
  the angle ``theta`` (radians); a ``rate_iso`` in between draws one of the two per image;
- ``sv_mode: 1..6``: spatially variant patterns over blocks of 40 x 40 HR pixels (MANet's Table 2), with
  eigenvalues between ``b = 0.175 s`` and ``a + b``, ``a = (2.5 - 0.175) s``:

  ====  ================================================================================
  mode  per block (bh, bw) of (BH, BW) blocks
  ====  ================================================================================
  1     var1 = a + b, var2 = a bh / BH + b, theta = 0
  2     var1 = a bw / BW + b, var2 = a bh / BH + b, theta = 0
  3     var1 = a + b, var2 = b, theta = pi bh / BH
  4     var1 = a bw / BW + b, var2 = a bh / BH + b, theta = pi bh / BH
  5     var1, var2 ~ U[b, a + b], theta ~ U[0, pi), drawn per block
  6     var1 = a + b, var2 = b, theta = pi / 4 where bh + bw is even, 3 pi / 4 elsewhere
  ====  ================================================================================

:func:`mmsr_kernel_params` returns per-LR-pixel ``(sigma1, sigma2, theta)`` (standard deviations: the square roots
of MANet's eigenvalues; the angle convention is the same) for :func:`ssr.ops.kernel_field.kernel_field_from_params`;
LR pixel (i, j) takes the block of HR pixel (s i, s j), the one MANet's stride-s subsampling keeps.

Kernel layouts: MANet stores its Gaussians in the top-left (k - s + 1)^2 corner of the k x k array (centre at
r - (s - 1) / 2), ssr centres them at r + (s - 1) / 2; :func:`ssr_field_to_manet` / :func:`manet_field_to_ssr` move a
field between the two (``ssr.archs.manet_arch`` explains what that does to the LR grid).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ['SV_MODES', 'MMSRKernelSpec', 'manet_field_to_ssr', 'mmsr_kernel_params', 'random_mmsr_kernel_spec',
           'ssr_field_to_manet']

SV_MODES = (0, 1, 2, 3, 4, 5, 6)
BLOCK = 40  # MANet's divide_H / divide_W: HR pixels per block side


def _shift_field(field: Tensor, shift: int) -> Tensor:
    """Moves every kernel of a field ``shift`` taps down-right (negative: up-left), zero fill, renormalised.

    Mass pushed off the k x k support is dropped and the rest rescaled to sum 1; kernels with no mass left stay 0.
    """
    if field.dim() != 4:
        raise ValueError(f'kernel field must be (B, k*k, h, w), got shape {tuple(field.shape)}')
    k = math.isqrt(field.shape[1])
    if k * k != field.shape[1]:
        raise ValueError(f'kernel field channel count {field.shape[1]} is not a square k*k')
    if abs(shift) >= k:
        raise ValueError(f'shift {shift} must be smaller than the kernel size {k}')
    if shift == 0:
        return field
    b, _, h, w = field.shape
    kernels = field.reshape(b, k, k, h, w)
    out = torch.zeros_like(kernels)
    src = slice(0, k - shift) if shift > 0 else slice(-shift, k)
    dst = slice(shift, k) if shift > 0 else slice(0, k + shift)
    out[:, dst, dst] = kernels[:, src, src]
    out = out.reshape(b, k * k, h, w)
    total = out.sum(dim=1, keepdim=True)
    return out / torch.where(total == 0, torch.ones_like(total), total)


def manet_field_to_ssr(field: Tensor, scale: int) -> Tensor:
    """Kernel field in MANet's layout (centre at r - (s-1)/2) -> ssr's (centre at r + (s-1)/2).

    Args:
        field: (B, k*k, h, w), each kernel sums to 1.
        scale: s >= 1; the kernels move s - 1 taps down and right.

    Returns:
        (B, k*k, h, w), each kernel sums to 1 (the last s - 1 rows and columns, which are empty for MANet's own
        Gaussians, are dropped and the remainder renormalised).

    Raises:
        ValueError: for a field that is not (B, k*k, h, w) or a scale < 1 or >= k + 1.
    """
    if scale < 1:
        raise ValueError(f'scale must be >= 1, got {scale}')
    return _shift_field(field, scale - 1)


def ssr_field_to_manet(field: Tensor, scale: int) -> Tensor:
    """Inverse of :func:`manet_field_to_ssr`: moves every kernel s - 1 taps up and left (renormalised)."""
    if scale < 1:
        raise ValueError(f'scale must be >= 1, got {scale}')
    return _shift_field(field, 1 - scale)


@dataclass(frozen=True)
class MMSRKernelSpec:
    """The blur of an MMSR test file.

    Attributes:
        sig: isotropic standard deviation, HR pixels (``rate_iso`` draws).
        sig1, sig2: anisotropic covariance eigenvalues, px² (MANet's ``sig1`` / ``sig2``).
        theta: anisotropic angle, radians.
        rate_iso: probability of the isotropic kernel per image, in [0, 1].
        sv_mode: 0 (one kernel per image) or a spatially variant pattern 1..6 (anisotropic only, as in MANet).
    """

    sig: float = 2.6
    sig1: float = 2.6
    sig2: float = 2.6
    theta: float = 0.0
    rate_iso: float = 1.0
    sv_mode: int = 0

    def __post_init__(self):
        if self.sv_mode not in SV_MODES:
            raise ValueError(f'sv_mode {self.sv_mode!r} not in {SV_MODES}')
        if not 0.0 <= self.rate_iso <= 1.0:
            raise ValueError(f'rate_iso {self.rate_iso} not in [0, 1]')
        if self.sv_mode and self.rate_iso != 0:
            raise ValueError(f'sv_mode {self.sv_mode} needs rate_iso: 0 (MANet builds its spatially variant '
                             'patterns from anisotropic kernels only)')
        for name in ('sig', 'sig1', 'sig2'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)!r}')


def _block_patterns(mode: int, scale: int, bh: Tensor, bw: Tensor, blocks: tuple[int, int],
                    generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
    a, b = (2.5 - 0.175) * scale, 0.175 * scale
    fh, fw = bh / blocks[0], bw / blocks[1]
    full = torch.full_like(fh, a + b)
    if mode == 1:
        return full, a * fh + b, torch.zeros_like(fh)
    if mode == 2:
        return a * fw + b, a * fh + b, torch.zeros_like(fh)
    if mode == 3:
        return full, torch.full_like(fh, b), math.pi * fh
    if mode == 4:
        return a * fw + b, a * fh + b, math.pi * fh
    if mode == 5:
        draws = torch.rand(3, *blocks, generator=generator, dtype=torch.float64)
        pick = (bh.long(), bw.long())
        return (b + a * draws[0][pick]), (b + a * draws[1][pick]), math.pi * draws[2][pick]
    parity = (bh.long() + bw.long()) % 2 == 0
    return full, torch.full_like(fh, b), torch.where(parity, math.pi / 4, 3 * math.pi / 4)


def mmsr_kernel_params(spec: MMSRKernelSpec, hr_size: tuple[int, int], scale: int,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Per-LR-pixel kernel parameters of one image.

    Args:
        spec: the file's blur.
        hr_size: (H, W), multiples of ``scale``.
        scale: s.
        generator: draws of ``rate_iso`` strictly between 0 and 1 and of ``sv_mode: 5``.

    Returns:
        ``{'sigma1', 'sigma2', 'theta'}``, each ``(1, H / s, W / s)`` float32 (standard deviations in HR pixels,
        radians), and ``'isotropic'`` (a bool tensor: which kernel ``rate_iso`` picked).
    """
    hh, ww = hr_size
    if hh % scale or ww % scale:
        raise ValueError(f'HR size {hr_size} is not a multiple of the scale {scale}')
    h, w = hh // scale, ww // scale
    iso = spec.rate_iso >= 1 or (spec.rate_iso > 0 and
                                 float(torch.rand((), generator=generator, dtype=torch.float64)) < spec.rate_iso)
    if iso:
        sigma = torch.full((1, h, w), float(spec.sig))
        return {'sigma1': sigma, 'sigma2': sigma.clone(), 'theta': torch.zeros(1, h, w),
                'isotropic': torch.tensor(True)}
    if spec.sv_mode == 0:
        var1, var2 = torch.full((h, w), float(spec.sig1)), torch.full((h, w), float(spec.sig2))
        theta = torch.full((h, w), float(spec.theta))
    else:
        rows = (torch.arange(h, dtype=torch.float64) * scale // BLOCK).view(h, 1).expand(h, w)
        cols = (torch.arange(w, dtype=torch.float64) * scale // BLOCK).view(1, w).expand(h, w)
        blocks = (math.ceil(hh / BLOCK), math.ceil(ww / BLOCK))
        var1, var2, theta = _block_patterns(spec.sv_mode, scale, rows, cols, blocks, generator)
    return {'sigma1': var1.sqrt().float()[None], 'sigma2': var2.sqrt().float()[None], 'theta': theta.float()[None],
            'isotropic': torch.tensor(False)}


def random_mmsr_kernel_spec(sig_min: float, sig_max: float, rate_iso: float,
                            generator: torch.Generator | None = None) -> MMSRKernelSpec:
    """One training kernel as MANet draws it (``random_batch_kernel``): with probability ``rate_iso`` an isotropic
    Gaussian of std ~ U[sig_min, sig_max]; else eigenvalues var1 ~ U[sig_min, sig_max], var2 ~ U[sig_min, var1]
    (px²) and theta ~ U[0, pi). (MANet reads the same range as a std for the one and a variance for the other.)

    Raises:
        ValueError: ``0 < sig_min <= sig_max`` or ``0 <= rate_iso <= 1`` does not hold.
    """
    if not 0 < sig_min <= sig_max or not 0 <= rate_iso <= 1:
        raise ValueError(f'need 0 < sig_min <= sig_max and 0 <= rate_iso <= 1, got sig_min {sig_min}, sig_max '
                         f'{sig_max}, rate_iso {rate_iso}')
    u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
    if u[0] < rate_iso:
        return MMSRKernelSpec(sig=sig_min + (sig_max - sig_min) * u[1], rate_iso=1.0)
    var1 = sig_min + (sig_max - sig_min) * u[1]
    var2 = sig_min + (var1 - sig_min) * u[2]
    return MMSRKernelSpec(sig1=var1, sig2=var2, theta=math.pi * u[3], rate_iso=0.0)
