"""Colour correction of an SR output towards its LR: AdaIN statistics matching and wavelet low-frequency swap.

Both take the reference at the SR size, normally the bicubic-upsampled LR, and leave the SR's detail alone:

- :func:`adain_color_fix`: per-image, per-channel mean and standard deviation of ``sr`` set to those of the
  reference (AdaIN, Huang & Belongie 2017, Eq. 8);
- :func:`wavelet_color_fix`: low-frequency band of the reference plus high-frequency bands of ``sr``, from an
  à-trous decomposition (repeated 3x3 binomial blur with dilation 2**i), as StableSR's wavelet colour fix.

Images are (B, C, H, W) float in [0, 1]; results are not clamped.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ['COLOR_FIXES', 'adain_color_fix', 'wavelet_blur', 'wavelet_decompose', 'wavelet_color_fix',
           'apply_color_fix']

COLOR_FIXES = ('none', 'adain', 'wavelet')
STD_EPS = 1e-5  # keeps a flat SR channel finite


def _check_pair(sr: Tensor, reference: Tensor) -> None:
    if sr.ndim != 4 or sr.shape != reference.shape:
        raise ValueError(f'colour fix: sr and reference must be (B, C, H, W) of one shape, got {tuple(sr.shape)} '
                         f'and {tuple(reference.shape)}')


def adain_color_fix(sr: Tensor, reference: Tensor) -> Tensor:
    """``(sr - mean(sr)) / std(sr) * std(ref) + mean(ref)`` per image and channel.

    Args:
        sr: (B, C, H, W) SR output.
        reference: (B, C, H, W) colour reference (bicubic-upsampled LR).

    Returns:
        (B, C, H, W) in sr's dtype, with the reference's per-channel mean and (population) std.

    Raises:
        ValueError: on mismatched shapes.
    """
    _check_pair(sr, reference)
    x, ref = sr.float(), reference.float()
    mean_x, std_x = x.mean((-2, -1), keepdim=True), x.std((-2, -1), keepdim=True, correction=0)
    mean_r, std_r = ref.mean((-2, -1), keepdim=True), ref.std((-2, -1), keepdim=True, correction=0)
    return ((x - mean_x) / (std_x + STD_EPS) * std_r + mean_r).to(sr.dtype)


def wavelet_blur(img: Tensor, dilation: int) -> Tensor:
    """3x3 binomial blur ``[1, 2, 1]^T [1, 2, 1] / 16`` with holes of ``dilation`` px, replicate borders.

    Args:
        img: (B, C, H, W).
        dilation: spacing of the taps (2**i at level i of the à-trous transform).

    Returns:
        (B, C, H, W); constants are preserved exactly up to rounding (the taps sum to 1).
    """
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=img.dtype, device=img.device) / 4
    kernel = (taps[:, None] * taps[None, :]).expand(img.shape[1], 1, 3, 3)
    padded = F.pad(img, (dilation, ) * 4, mode='replicate')
    return F.conv2d(padded, kernel, groups=img.shape[1], dilation=dilation)


def wavelet_decompose(img: Tensor, levels: int = 5) -> tuple[Tensor, Tensor]:
    """À-trous split into (high, low) with ``high + low == img``.

    Args:
        img: (B, C, H, W).
        levels: number of blurs, dilations 1, 2, ..., 2**(levels-1).

    Returns:
        ``(high, low)``: the sum of the detail bands and the residual low-pass, both (B, C, H, W).

    Raises:
        ValueError: if ``levels`` < 1.
    """
    if levels < 1:
        raise ValueError(f'wavelet_decompose: levels must be >= 1, got {levels}')
    low = img
    for i in range(levels):
        low = wavelet_blur(low, 2**i)
    return img - low, low


def wavelet_color_fix(sr: Tensor, reference: Tensor, levels: int = 5) -> Tensor:
    """High frequencies of ``sr`` plus the low frequencies of ``reference``.

    Args:
        sr: (B, C, H, W) SR output.
        reference: (B, C, H, W) colour reference (bicubic-upsampled LR).
        levels: à-trous levels; the low band keeps structures wider than about 2**levels px.

    Returns:
        (B, C, H, W) in sr's dtype.

    Raises:
        ValueError: on mismatched shapes or ``levels`` < 1.
    """
    _check_pair(sr, reference)
    high, _ = wavelet_decompose(sr.float(), levels)
    _, low = wavelet_decompose(reference.float(), levels)
    return (high + low).to(sr.dtype)


def apply_color_fix(kind: str, sr: Tensor, reference: Tensor) -> Tensor:
    """Dispatches ``kind`` in ``COLOR_FIXES`` (``'none'`` returns ``sr``).

    Raises:
        ValueError: on an unknown ``kind``.
    """
    if kind == 'none':
        return sr
    if kind == 'adain':
        return adain_color_fix(sr, reference)
    if kind == 'wavelet':
        return wavelet_color_fix(sr, reference)
    raise ValueError(f'color_fix {kind!r} not in {COLOR_FIXES}')
