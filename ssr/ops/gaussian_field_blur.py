"""Build a Gaussian kernel field and apply it in one pass: ``kernel_field_from_params`` + ``sv_blur_downsample``.

The two-step torch path writes the ``(B, K*K, h, w)`` field (116 MB for 16 x 64^2 LR pixels at K = 21) and then
reads it back for the blur. The fused native CPU kernel (``ssr/ops/csrc/gaussian_field_blur.cpp``, see
:mod:`ssr.ops.native`) computes each LR pixel's weights, blurs with them while they are in the cache, and writes
them into the field once; the field is still returned (the training sets use it as ground truth). Results equal
the torch path up to float rounding: the field to ~1e-7, the LR image to ~1e-6 (max abs, images in [0, 1]).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ssr.ops.kernel_field import _check_gaussian_params, gaussian_field_terms, kernel_field_from_params
from ssr.ops.native import native_op
from ssr.ops.sv_blur import _check_scale_padding, _pad_index, sv_blur_downsample

__all__ = ['gaussian_field_blur_downsample', 'native_applies']


def _padding_index(size: int, r: int, padding: str) -> Tensor:
    """``(size + 2r,)`` int64: the source index of every position of :func:`ssr.ops.sv_blur.pad_hr`'s padded
    axis, -1 where ``padding='zeros'`` puts a zero."""
    if padding != 'zeros':
        return _pad_index(size, r, padding, torch.device('cpu'))
    pos = torch.arange(-r, size + r)
    return torch.where((pos >= 0) & (pos < size), pos, -1)


def native_applies(hr: Tensor, *params: Tensor) -> bool:
    """Whether :func:`gaussian_field_blur_downsample` runs the native kernel for these inputs: CPU float32
    tensors, no autograd, ``SSR_NATIVE`` not ``0`` and the library built (this call builds it on first use)."""
    tensors = (hr, *params)
    if any(t.device.type != 'cpu' or t.dtype != torch.float32 for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    return native_op('gaussian_field_blur') is not None


def gaussian_field_blur_downsample(hr: Tensor, sigma1: Tensor, sigma2: Tensor, theta: Tensor,
                                   kernel_size: int = 21, scale: int = 4, *,
                                   padding: Literal['reflect', 'replicate', 'zeros'] = 'reflect',
                                   out: Tensor | None = None, native: bool | None = None) -> tuple[Tensor, Tensor]:
    """``kernel_field_from_params(sigma1, sigma2, theta, K, s)`` and ``sv_blur_downsample(hr, field, s)`` at once.

    Args:
        hr: ``(B, C, H, W)`` image, typically in [0, 1]; ``(H, W) = (s*h, s*w)``.
        sigma1: ``(B, h, w)`` std along theta in HR pixels, > 0; of ``hr``'s dtype and device.
        sigma2: ``(B, h, w)`` std across theta in HR pixels, > 0.
        theta: ``(B, h, w)`` radians.
        kernel_size: K, odd, >= 3.
        scale: s; every kernel is centred at offset (s - 1) / 2.
        padding: how HR is extended by K // 2 pixels, as :func:`ssr.ops.sv_blur.sv_blur_downsample`.
        out: optional contiguous ``(B, K*K, h, w)`` tensor to write the field into, as
            :func:`ssr.ops.kernel_field.kernel_field_from_params`.
        native: ``None`` runs the native kernel where :func:`native_applies`; ``False`` forces the torch path;
            ``True`` requires the native kernel (``RuntimeError`` where it does not apply).

    Returns:
        ``(lr, field)``: ``lr (B, C, h, w)`` of ``hr``'s dtype, ``field (B, K*K, h, w)`` (``out`` when given), each
        pixel's kernel summing to 1.

    Raises:
        ValueError: On invalid parameters, shapes, ``scale``, ``padding`` or ``out``.
        RuntimeError: If ``native=True`` and the native kernel does not apply.
    """
    _check_scale_padding(scale, padding)
    _check_gaussian_params(sigma1, sigma2, theta)
    if hr.dim() != 4:
        raise ValueError(f'hr must be (B, C, H, W), got shape {tuple(hr.shape)}')
    batch, height, width = sigma1.shape
    if (hr.shape[0], hr.shape[2], hr.shape[3]) != (batch, scale * height, scale * width):
        raise ValueError(f'hr shape {tuple(hr.shape)} does not match the (B, h, w) = {tuple(sigma1.shape)} '
                         f'parameters at scale {scale}')
    use_native = native is not False and native_applies(hr, sigma1, sigma2, theta)
    if native and not use_native:
        raise RuntimeError('the native gaussian_field_blur kernel does not apply (it needs CPU float32 tensors '
                           'without autograd, SSR_NATIVE not 0 and a working C++ build; see ssr.ops.native)')
    if not use_native:
        field = kernel_field_from_params(sigma1, sigma2, theta, kernel_size, scale, out=out)
        return sv_blur_downsample(hr, field, scale, padding=padding), field

    taps = kernel_size * kernel_size
    prec, monomials, stabiliser = gaussian_field_terms(sigma1, sigma2, theta, kernel_size, scale)
    if out is None:
        field = torch.empty(batch, taps, height, width)
    elif tuple(out.shape) != (batch, taps, height, width) or out.dtype != torch.float32 or out.device.type != 'cpu' \
            or not out.is_contiguous():
        raise ValueError(f'out must be a contiguous {(batch, taps, height, width)} float32 CPU tensor, got '
                         f'{tuple(out.shape)} {out.dtype} on {out.device}')
    else:
        field = out
    lr = hr.new_empty(batch, hr.shape[1], height, width)
    r = kernel_size // 2  # the kernel reads HR padded by r: the C++ side pads through these index maps
    native_op('gaussian_field_blur')(hr.contiguous(), _padding_index(hr.shape[2], r, padding),
                                     _padding_index(hr.shape[3], r, padding),
                                     prec.view(batch, 3, height, width).contiguous(),
                                     stabiliser.neg().view(batch, height, width).contiguous(),
                                     monomials.contiguous(), field, lr, kernel_size, scale)
    return lr, field
