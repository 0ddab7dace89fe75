"""Spatially variant blur followed by s-fold subsampling, and its adjoint.

The forward operator is the degradation model of the SSR paper (Eq. 1) without noise and JPEG::

    LR[b, c, i, j] = sum_{u, v in [-r, r]} HRpad[b, c, s*i + u, s*j + v] * K[b, (u + r) * k + (v + r), i, j]

Notation (used in every docstring of this module):

    =========  ==========================================================
    symbol     meaning
    =========  ==========================================================
    B, C       batch size, channels
    H, W       HR height and width, multiples of s
    s          integer scale factor
    h, w       LR height and width, h = H // s, w = W // s
    k          odd kernel size; r = k // 2
    K          kernel field (B, k*k, h, w) on the LR grid, row-major (tap (u, v) at index (u+r)*k + (v+r)), sums to 1
    HRpad      HR padded by r on every side (reflect by default)
    =========  ==========================================================

A delta kernel (``K[r*k + r] = 1``) therefore returns ``HR[:, :, ::s, ::s]`` exactly. The centring of a Gaussian
kernel at offset (s - 1) / 2 is the kernel sampler's job (``ssr.ops.kernels``), not this module's.

Implementations (all exact, they differ only in speed and peak memory):

- ``'unfold'``: ``F.unfold`` of a band of HRpad rows (stride s) times the field, summed over k*k; one band of LR
  rows at a time so the (B, C*k*k, rows*w) intermediate stays under ``max_chunk_elems``.
- ``'shift'``: k*k fused multiply-adds (``addcmul_``) of stride-s slices of HRpad with one plane of the field; no
  intermediate beyond the output band.
- ``'polyphase'``: as ``'shift'``, but HRpad is first split into its s*s phases ``HRpad[p::s, q::s]`` so that every
  slice has unit stride and the multiply-adds vectorise.
- ``'strided'``: one product of a (B, C, k, k, rows, w) ``as_strided`` view of HRpad with the field, summed over
  the taps: two kernel launches per band instead of k*k, the fastest for small inputs (a data worker's crop).

All four are plain differentiable torch ops, so autograd works through them (w.r.t. both HR and K).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'AUTO_METHOD',
    'METHODS',
    'PAD_MODES',
    'pad_hr',
    'pad_hr_adjoint',
    'sv_blur_downsample',
    'sv_blur_downsample_adjoint',
    'uniform_blur_downsample',
]

METHODS = ('unfold', 'shift', 'polyphase', 'strided')
PAD_MODES = ('reflect', 'replicate', 'zeros')

# method='auto', per device type. Measured with scripts/benchmark_degradation.py --threads 2 (batch 16 of 3x256x256
# HR patches, k=21, s=4, float32, field given, torch 2.14.1, 2-core x86 VM, median of 5):
#   cpu : polyphase 317 patches/s, shift 205, unfold 118.
#   cuda: not measured (no GPU was lent when this table was made). 'unfold' is chosen because it issues a handful of
#         kernels per band where 'shift'/'polyphase' issue k*k = 441 small ones; at batch 16 the launch overhead alone
#         (441 x ~5 us) would cap those near 7,000 patches/s. Re-measure with the benchmark on a GPU and update.
AUTO_METHOD = {'cpu': 'polyphase', 'cuda': 'unfold'}
_AUTO_FALLBACK = 'unfold'
# ... except on the CPU for calls of at most this many taps (B*C*k*k*h*w), which 'auto' sends to 'strided': there the
# 441 per-tap calls of 'polyphase' are mostly Python overhead. 1 thread, k=21, x4: 1 x 3 x 96^2 (762k taps) strided
# 2.4 ms vs polyphase 4.4 ms; 1 x 3 x 128^2 (1.35M) strided 6.2 vs 4.7.
_CPU_SMALL_WORK = 2**20

# Largest intermediate of one band, in elements (2**24 float32 = 64 MiB). One 2048x2048 RGB image with a k=21 field
# then peaks at the inputs (field 462 MB) plus about two bands of 'unfold' (~130 MB).
DEFAULT_MAX_CHUNK_ELEMS = 2**24
# Smaller, cache-friendly bands on the CPU (elements of the band's largest intermediate), measured at batch 16 x 256^2
# with 2 threads: 'unfold' 2**21 -> 118 patches/s vs 47 unbanded; 'shift' 2**16 -> 190 vs 140 at 2**18;
# 'polyphase' 2**20 -> 380 vs 260 at 2**16.
_CPU_BAND_ELEMS = {'unfold': 2**21, 'shift': 2**16, 'polyphase': 2**20, 'strided': 2**20}
# ... and batches run as groups of whole images (each padded, split into phases and blurred while it is in the cache)
# whose accumulator holds at most this many elements. 1 thread, batch 16 x 3 x 256^2, k=21, x4, 'polyphase', median
# of 7: groups of 10 images 41.2 ms, 8: 42.5, 5: 45.2, 2: 53.2, the whole batch at once 46.2.
_CPU_GROUP_ELEMS = 2**17


def _check_scale_padding(scale: int, padding: str) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f'scale must be a positive int, got {scale!r}')
    _check_pad_args(0, padding)


def _check_field(kernels: Tensor, ref: Tensor, hr_shape: tuple[int, ...], scale: int) -> int:
    """Checks a kernel field against an HR shape (B, C, H, W) and a reference tensor's dtype/device; returns k."""
    if kernels.dim() != 4:
        raise ValueError(f'kernels must be (B, k*k, h, w), got shape {tuple(kernels.shape)}')
    b, _, hh, ww = hr_shape
    if hh % scale or ww % scale:
        raise ValueError(f'HR size {hh}x{ww} (shape {tuple(hr_shape)}) is not divisible by scale {scale}')
    kk = kernels.shape[1]
    k = math.isqrt(kk)
    if k * k != kk or k % 2 == 0:
        raise ValueError(f'kernel field has {kk} channels (shape {tuple(kernels.shape)}); expected k*k with k odd')
    expected = (b, kk, hh // scale, ww // scale)
    if tuple(kernels.shape) != expected:
        raise ValueError(f'kernel field shape {tuple(kernels.shape)} does not match HR shape {tuple(hr_shape)} '
                         f'at scale {scale}: expected {expected}')
    if kernels.dtype != ref.dtype or kernels.device != ref.device:
        raise ValueError(f'kernels ({kernels.dtype}, {kernels.device}) and image ({ref.dtype}, {ref.device}) must '
                         'share dtype and device')
    return k


def _pad_index(size: int, r: int, mode: str, device: torch.device) -> Tensor:
    """Source index of every padded position along one axis.

    Args:
        size: unpadded length n >= 1.
        r: padding on each side.
        mode: 'reflect' (edge not repeated, like ``F.pad(mode='reflect')``) or 'replicate'.
        device: device of the returned index.

    Returns:
        (n + 2r,) int64 indices into [0, n). For ``r >= n`` 'reflect' keeps reflecting (period 2(n - 1)), which is
        what ``numpy.pad(mode='reflect')`` does; ``F.pad`` refuses that case.
    """
    pos = torch.arange(-r, size + r, device=device)
    if mode == 'replicate' or size == 1:
        return pos.clamp(0, size - 1)
    period = 2 * (size - 1)
    pos = pos.remainder(period)
    return torch.where(pos < size, pos, period - pos)


def _check_pad_args(r: int, padding: str) -> None:
    if padding not in PAD_MODES:
        raise ValueError(f'padding {padding!r} not in {PAD_MODES}')
    if r < 0:
        raise ValueError(f'padding width r must be >= 0, got {r}')


def pad_hr(hr: Tensor, r: int, padding: str = 'reflect') -> Tensor:
    """Pads the last two dimensions by r on every side.

    Args:
        hr: (B, C, H, W) image, any float dtype.
        r: padding width in pixels, >= 0.
        padding: one of ``PAD_MODES``.

    Returns:
        (B, C, H + 2r, W + 2r) padded image.

    Raises:
        ValueError: for an unknown ``padding`` or ``r < 0``.
    """
    _check_pad_args(r, padding)
    if padding == 'zeros':
        return F.pad(hr, (r, r, r, r))
    if padding == 'replicate' or r < min(hr.shape[-2:]):
        # F.pad's reflect / replicate kernels are ~10x faster than the two index_selects below and bit-identical
        # (F.pad refuses reflect padding of r >= the image side)
        return F.pad(hr, (r, r, r, r), mode=padding)
    idx_h = _pad_index(hr.shape[-2], r, padding, hr.device)
    idx_w = _pad_index(hr.shape[-1], r, padding, hr.device)
    return hr.index_select(-2, idx_h).index_select(-1, idx_w)


def pad_hr_adjoint(padded: Tensor, r: int, padding: str = 'reflect') -> Tensor:
    """Adjoint (transpose) of :func:`pad_hr`: folds the border back onto the pixels it was copied from.

    Args:
        padded: (B, C, H + 2r, W + 2r).
        r: padding width used by the forward pad.
        padding: one of ``PAD_MODES``.

    Returns:
        (B, C, H, W) with ``<pad_hr(x), y> == <x, pad_hr_adjoint(y)>``.

    Raises:
        ValueError: for an unknown ``padding``, ``r < 0`` or a ``padded`` smaller than 2r + 1 pixels.
    """
    _check_pad_args(r, padding)
    if min(padded.shape[-2:]) <= 2 * r:
        raise ValueError(f'padded shape {tuple(padded.shape)} too small for padding r={r}')
    hh, ww = padded.shape[-2] - 2 * r, padded.shape[-1] - 2 * r
    if padding == 'zeros':
        return padded[..., r:r + hh, r:r + ww]
    idx_h = _pad_index(hh, r, padding, padded.device)
    idx_w = _pad_index(ww, r, padding, padded.device)
    rows = padded.new_zeros(*padded.shape[:-2], hh, padded.shape[-1]).index_add_(-2, idx_h, padded)
    return rows.new_zeros(*padded.shape[:-2], hh, ww).index_add_(-1, idx_w, rows)


def _resolve_method(method: str, device: torch.device, work: int | None = None) -> str:
    """The method to run; ``work`` = B*C*k*k*h*w, the taps of the whole call (for ``'auto'`` on the CPU)."""
    if method == 'auto':
        if device.type == 'cpu' and work is not None and work <= _CPU_SMALL_WORK:
            return 'strided'
        return AUTO_METHOD.get(device.type, _AUTO_FALLBACK)
    if method not in METHODS:
        raise ValueError(f"method {method!r} not in {METHODS + ('auto',)}")
    return method


def _rows_per_band(method: str, device: torch.device, per_row: dict[str, int], max_chunk_elems: int | None,
                   h: int) -> int:
    """Number of LR rows per band so that the band's largest intermediate stays under the element budget."""
    if max_chunk_elems is None:
        return h
    budget = max_chunk_elems
    if device.type == 'cpu' and method in _CPU_BAND_ELEMS:
        budget = min(budget, _CPU_BAND_ELEMS[method])
    return max(1, min(h, budget // per_row[method]))


def _images_per_group(method: str, device: torch.device, per_image: int, max_chunk_elems: int | None,
                       batch: int) -> int:
    """Images per group for the per-tap CPU methods ('shift', 'polyphase'): as many whole images as keep the
    accumulator (``per_image`` = C*h*w elements each) within ``_CPU_GROUP_ELEMS``; ``batch`` (no grouping) elsewhere,
    or when one image alone exceeds it (then bands of rows split the image)."""
    if max_chunk_elems is None or device.type != 'cpu' or method not in ('shift', 'polyphase'):
        return batch
    return batch if per_image > _CPU_GROUP_ELEMS else max(1, min(batch, _CPU_GROUP_ELEMS // per_image))


def _band_unfold(hp: Tensor, field: Tensor, k: int, s: int, i0: int) -> Tensor:
    """LR rows i0 .. i0 + n - 1 from the padded HR (B, C, Hp, Wp) and the field band (B, k*k, n, w)."""
    b, c = hp.shape[:2]
    n, w = field.shape[-2:]
    # LR row i reads padded rows s*i .. s*i + k - 1; F.unfold orders its C*k*k channels as (c, a, bb).
    cols = F.unfold(hp[:, :, s * i0:s * (i0 + n - 1) + k], k, stride=s).view(b, c, k * k, n * w)
    return (cols * field.reshape(b, 1, k * k, n * w)).sum(2).view(b, c, n, w)


def _band_shift(hp: Tensor, field: Tensor, k: int, s: int, i0: int) -> Tensor:
    """Same band as :func:`_band_unfold` by k*k strided multiply-adds (no intermediate larger than the output)."""
    n, w = field.shape[-2:]
    out = hp.new_zeros(hp.shape[0], hp.shape[1], n, w)
    for a in range(k):
        rows = hp[:, :, s * i0 + a:s * (i0 + n - 1) + a + 1:s]
        for bb in range(k):
            out.addcmul_(rows[..., bb:bb + s * (w - 1) + 1:s], field[:, a * k + bb].unsqueeze(1))
    return out


def _polyphase(hp: Tensor, s: int) -> Tensor:
    """Splits hp (B, C, Hp, Wp) into (B, C, s, s, ceil(Hp/s), ceil(Wp/s)) with phase [p, q] = hp[p::s, q::s].

    Hp, Wp are zero-padded up to multiples of s first; no tap reads those zeros.
    """
    b, c, hp_h, hp_w = hp.shape
    ph_h, ph_w = -(-hp_h // s), -(-hp_w // s)
    if (ph_h * s, ph_w * s) != (hp_h, hp_w):  # F.pad copies even when it pads nothing
        hp = F.pad(hp, (0, ph_w * s - hp_w, 0, ph_h * s - hp_h))
    return hp.view(b, c, ph_h, s, ph_w, s).permute(0, 1, 3, 5, 2, 4).contiguous()


def _band_polyphase(phases: Tensor, field: Tensor, k: int, s: int, i0: int) -> Tensor:
    """Same band from the phases: tap (a, bb) = (s*m + p, s*n + q) reads phase (p, q) shifted by (m, n).

    The taps run phase by phase, so that the ~k*k/s^2 taps reading one phase find it in the cache (1 thread, batch 16
    x 3 x 256^2, k=21, x4: 35.2 ms against 39.7 in row-major tap order)."""
    n_rows, w = field.shape[-2:]
    out = phases.new_zeros(phases.shape[0], phases.shape[1], n_rows, w)
    for p in range(s):
        for q in range(s):
            phase = phases[:, :, p, q]
            for a in range(p, k, s):
                rows = phase[:, :, i0 + a // s:i0 + a // s + n_rows]
                for bb in range(q, k, s):
                    out.addcmul_(rows[..., bb // s:bb // s + w], field[:, a * k + bb].unsqueeze(1))
    return out


def _band_strided(hp: Tensor, field: Tensor, k: int, s: int, i0: int) -> Tensor:
    """Same band as one product of a (B, C, k, k, n, w) strided view of hp with the field, summed over the taps:
    two kernel launches instead of k*k, for small inputs where per-tap overhead dominates."""
    n, w = field.shape[-2:]
    hp = hp[:, :, s * i0:s * (i0 + n - 1) + k]  # a view: its storage offset and strides address the band
    sb, sc, sh, sw = hp.stride()
    view = hp.as_strided((hp.shape[0], hp.shape[1], k, k, n, w), (sb, sc, sh, sw, s * sh, s * sw))
    return (view * field.view(field.shape[0], 1, k, k, n, w)).sum((2, 3))


_BAND_FN = {'unfold': _band_unfold, 'shift': _band_shift, 'polyphase': _band_polyphase, 'strided': _band_strided}


def sv_blur_downsample(hr: Tensor,
                       kernels: Tensor,
                       scale: int,
                       *,
                       padding: Literal['reflect', 'replicate', 'zeros'] = 'reflect',
                       method: Literal['auto', 'unfold', 'shift', 'polyphase'] = 'auto',
                       max_chunk_elems: int | None = DEFAULT_MAX_CHUNK_ELEMS) -> Tensor:
    """Blurs HR with a per-LR-pixel kernel and subsamples by ``scale`` (paper Eq. 1, without noise and JPEG).

    Args:
        hr: (B, C, H, W) float32/float64 image, typically in [0, 1]; H and W multiples of ``scale``.
        kernels: (B, k*k, H // scale, W // scale) kernel field on the LR grid, same dtype and device as ``hr``,
            k odd, row-major taps. Each pixel's kernel normally sums to 1 (not checked: the operator is linear).
        scale: subsampling factor s >= 1.
        padding: how HR is extended by r = k // 2 pixels: 'reflect' (default; for r >= H it keeps reflecting like
            ``numpy.pad``), 'replicate', or 'zeros'.
        method: 'auto' picks ``AUTO_METHOD[device type]``; otherwise one of ``METHODS``. All agree up to float
            rounding (tested to 1e-5 in float32).
        max_chunk_elems: bound, in elements, on the largest intermediate of one band of LR rows (for 'unfold' the
            (B, C*k*k, n*w) patch matrix, otherwise the (B, C, n, w) accumulator; on the CPU 'shift' and
            'polyphase' use smaller, cache-sized bands). ``None`` processes the whole image in one band.

    Returns:
        (B, C, H // scale, W // scale) LR image, same dtype and device as ``hr``.

    Raises:
        ValueError: if shapes, dtype/device, ``scale``, ``padding``, ``method`` or ``max_chunk_elems`` are invalid.
    """
    _check_scale_padding(scale, padding)
    if hr.dim() != 4:
        raise ValueError(f'hr must be (B, C, H, W), got shape {tuple(hr.shape)}')
    k = _check_field(kernels, hr, tuple(hr.shape), scale)
    method = _resolve_method(method, hr.device, kernels.numel() * hr.shape[1])
    if max_chunk_elems is not None and max_chunk_elems < 1:
        raise ValueError(f'max_chunk_elems must be >= 1 or None, got {max_chunk_elems}')
    b, c, hh, ww = hr.shape
    h, w = hh // scale, ww // scale
    group = _images_per_group(method, hr.device, c * h * w, max_chunk_elems, b)
    if group < b:  # CPU, per-tap methods: groups of whole images, each padded and blurred while it is in the cache
        out = hr.new_empty(b, c, h, w)
        for g0 in range(0, b, group):
            out[g0:g0 + group] = sv_blur_downsample(hr[g0:g0 + group], kernels[g0:g0 + group], scale,
                                                    padding=padding, method=method, max_chunk_elems=max_chunk_elems)
        return out
    source = pad_hr(hr, k // 2, padding)
    if method == 'polyphase':
        source = _polyphase(source, scale)
    per_row = {'unfold': b * c * k * k * w, 'shift': b * c * w, 'polyphase': b * c * w, 'strided': b * c * k * k * w}
    band_fn = _BAND_FN[method]
    rows = _rows_per_band(method, hr.device, per_row, max_chunk_elems, h)
    if rows >= h:
        return band_fn(source, kernels, k, scale, 0)
    out = hr.new_empty(b, c, h, w)
    for i0 in range(0, h, rows):
        i1 = min(h, i0 + rows)
        out[:, :, i0:i1] = band_fn(source, kernels[:, :, i0:i1], k, scale, i0)
    return out


def uniform_blur_downsample(hr: Tensor, kernels: Tensor, scale: int, *,
                            padding: Literal['reflect', 'replicate', 'zeros'] = 'reflect') -> Tensor:
    """:func:`sv_blur_downsample` for a field that is the same kernel at every pixel, as one strided convolution.

    Equal to ``sv_blur_downsample(hr, uniform_kernel_field(kernels, h, w), scale)`` up to float summation order
    (the same taps, read from the same padded image), at the cost of a grouped ``F.conv2d`` with stride ``scale``:
    no field is read and the (B*C) per-image kernels run as one call.

    Args:
        hr: (B, C, H, W) float image; H and W multiples of ``scale``.
        kernels: (B, k, k) one kernel per image, k odd, same dtype and device as ``hr``.
        scale: s >= 1.
        padding: as :func:`sv_blur_downsample`.

    Returns:
        (B, C, H // scale, W // scale).

    Raises:
        ValueError: on bad shapes, dtype / device, ``scale`` or ``padding``.
    """
    _check_scale_padding(scale, padding)
    if hr.dim() != 4:
        raise ValueError(f'hr must be (B, C, H, W), got shape {tuple(hr.shape)}')
    b, c, hh, ww = hr.shape
    if kernels.dim() != 3 or kernels.shape[0] != b or kernels.shape[1] != kernels.shape[2] or kernels.shape[1] % 2 == 0:
        raise ValueError(f'kernels must be ({b}, k, k) with k odd, got {tuple(kernels.shape)}')
    if hh % scale or ww % scale:
        raise ValueError(f'HR size {hh}x{ww} (shape {tuple(hr.shape)}) is not divisible by scale {scale}')
    if kernels.dtype != hr.dtype or kernels.device != hr.device:
        raise ValueError(f'kernels ({kernels.dtype}, {kernels.device}) and image ({hr.dtype}, {hr.device}) must '
                         'share dtype and device')
    k = kernels.shape[1]
    source = pad_hr(hr, k // 2, padding).reshape(1, b * c, hh + k - 1, ww + k - 1)
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, k, k), image-major like `source`
    out = F.conv2d(source, weight, stride=scale, groups=b * c)
    return out.view(b, c, hh // scale, ww // scale)


def sv_blur_downsample_adjoint(lr: Tensor,
                               kernels: Tensor,
                               scale: int,
                               hr_size: tuple[int, int],
                               *,
                               padding: Literal['reflect', 'replicate', 'zeros'] = 'reflect') -> Tensor:
    """Adjoint (transpose) of :func:`sv_blur_downsample`: scatters every LR value back through its kernel.

    With G the forward operator for the same ``kernels``, ``scale`` and ``padding``, ``<G x, y> == <x, G^T y>``
    (KAIR's ``G``/``Gt`` pair); this is what autograd's backward of the forward computes for ``hr``. Taps that land
    in the padded border are folded back onto their source pixels by :func:`pad_hr_adjoint` (dropped for 'zeros').

    Args:
        lr: (B, C, h, w) LR-space tensor, same dtype and device as ``kernels``.
        kernels: (B, k*k, h, w) kernel field, k odd.
        scale: subsampling factor s >= 1.
        hr_size: (H, W) = (s*h, s*w).
        padding: one of ``PAD_MODES``, as used in the forward.

    Returns:
        (B, C, H, W) HR-space tensor.

    Raises:
        ValueError: if the shapes, ``hr_size``, ``scale`` or ``padding`` are inconsistent.
    """
    _check_scale_padding(scale, padding)
    if lr.dim() != 4:
        raise ValueError(f'lr must be (B, C, h, w), got shape {tuple(lr.shape)}')
    b, c, h, w = lr.shape
    hh, ww = (int(x) for x in hr_size)
    if (hh, ww) != (scale * h, scale * w):
        raise ValueError(f'hr_size {(hh, ww)} != scale {scale} x lr size {(h, w)} (lr shape {tuple(lr.shape)})')
    k = _check_field(kernels, lr, (b, c, hh, ww), scale)
    r = k // 2
    acc = lr.new_zeros(b, c, hh + 2 * r, ww + 2 * r)
    # For one tap (a, bb) distinct LR pixels hit distinct padded pixels, so a strided in-place add is a valid scatter.
    for a in range(k):
        for bb in range(k):
            acc[:, :, a:a + scale * (h - 1) + 1:scale,
                bb:bb + scale * (w - 1) + 1:scale].addcmul_(lr, kernels[:, a * k + bb].unsqueeze(1))
    return pad_hr_adjoint(acc, r, padding)
