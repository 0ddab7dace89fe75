"""Spatially variant Gaussian kernel fields on the LR grid: building them from per-pixel parameters, and sampling those
parameters (smooth random fields, or a depth-driven defocus + motion model).

Sampling functions take a ``generator``; building functions are deterministic. Notation as in ``ssr.ops.kernels``:

==========  ==================================================================================================
symbol      meaning
==========  ==================================================================================================
B, h, w     batch size and LR grid size (h = H // s)
K           kernel size (odd, default 21); a field is ``(B, K*K, h, w)``, taps flattened row-major (index a*K + b),
            each pixel's kernel summing to 1 over dim 1 (DESIGN.md §3)
sigma1/2    per-pixel standard deviations in HR pixels; theta per-pixel angle in radians
d, f        relative inverse depth in [0, 1] (near = large) and the in-focus depth
==========  ==================================================================================================
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ssr.ops._checks import _check_depth, _check_non_negative, _check_positive, _check_range, _uniform
from ssr.ops.kernels import covariance_to_gaussian_params, gaussian_covariance, kernel_offsets

Number = float | int


def _check_param_map(name: str, value: Tensor) -> None:
    if not isinstance(value, Tensor) or value.dim() != 3:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f'{name} must be a (B, h, w) tensor, got {shape}')


# ---------------------------------------------------------------------------------------------------------------------
# Building fields (deterministic)
# ---------------------------------------------------------------------------------------------------------------------
def _chunks(batch: int, pixels: int, taps: int, max_elements: int) -> list[tuple[int, int, int, int]]:
    """``(b0, b1, p0, p1)`` blocks of images x flattened pixels, each with at most ``max_elements`` output elements
    (but at least one pixel)."""
    per_image = taps * pixels
    if per_image <= max_elements:
        step = max_elements // per_image
        return [(b, min(b + step, batch), 0, pixels) for b in range(0, batch, step)]
    step = max(1, max_elements // taps)
    return [(b, b + 1, p, min(p + step, pixels)) for b in range(batch) for p in range(0, pixels, step)]


def _check_gaussian_params(sigma1: Tensor, sigma2: Tensor, theta: Tensor) -> None:
    for name, value in (('sigma1', sigma1), ('sigma2', sigma2), ('theta', theta)):
        _check_param_map(name, value)
    if not sigma1.shape == sigma2.shape == theta.shape:
        raise ValueError(f'sigma1, sigma2, theta shapes differ: {tuple(sigma1.shape)}, {tuple(sigma2.shape)}, '
                         f'{tuple(theta.shape)}')
    _check_positive('sigma1', sigma1)
    _check_positive('sigma2', sigma2)


def gaussian_field_terms(sigma1: Tensor, sigma2: Tensor, theta: Tensor, kernel_size: int = 21,
                         scale: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    """The per-pixel and per-tap terms of the log-weights of :func:`kernel_field_from_params` (unchecked inputs).

    The log-weight of tap t at pixel p is ``sum_n monomials[n, t] * prec[b, n, p]``; the field's stabiliser is
    the largest log-weight among the (up to) four taps nearest the kernel centre.

    Args:
        sigma1, sigma2, theta: ``(B, h, w)``, as :func:`kernel_field_from_params`.
        kernel_size: K, odd, >= 3.
        scale: s; the kernel centre is at offset (s - 1) / 2.

    Returns:
        ``(prec, monomials, stabiliser)``: ``prec (B, 3, h*w)`` the precision entries ``(A, B, C)`` of
        ``Sigma^-1 = [[A, B], [B, C]]``, ``monomials (3, K*K)`` = ``-0.5 * (x^2, 2xy, y^2)`` of the tap offsets,
        ``stabiliser (B, h*w)``; all of ``sigma1``'s floating dtype (float32 otherwise) and device.
    """
    dtype = sigma1.dtype if sigma1.is_floating_point() else torch.float32
    device = sigma1.device
    # Closed-form precision of R diag(s1^2, s2^2) R^T: R diag(1 / s1^2, 1 / s2^2) R^T.
    theta = theta.to(device, dtype)
    cos, sin = torch.cos(theta), torch.sin(theta)
    prec1, prec2 = sigma1.to(dtype).pow(-2), sigma2.to(device, dtype).pow(-2)
    prec = torch.stack([prec1 * cos.square() + prec2 * sin.square(),
                        (prec1 - prec2) * cos * sin,
                        prec1 * sin.square() + prec2 * cos.square()], dim=1).flatten(2)  # (B, 3, h*w)
    x, y = kernel_offsets(kernel_size, scale, dtype=dtype, device=device)
    monomials = -0.5 * torch.stack([x.square(), 2 * x * y, y.square()], dim=0).view(3, -1, 1)  # (3, K*K, 1)
    # Stabiliser: the largest log-weight among the (up to) four taps nearest the kernel centre, per pixel. It is at
    # most the pixel's maximum (a maximum over fewer taps) and at least -80 for every kernel wider than ~0.06 HR px at
    # x4, so exp(logit - m) cannot overflow and its largest value is >= 1: the amax pass over all taps is only needed
    # for the rare pixels with m < -80, where the pixel's exact maximum is used instead.
    nearest = (x.abs() + y.abs()).flatten().argsort(stable=True)[:4]
    stabiliser = torch.einsum('kn,bkp->bnp', monomials[:, nearest, 0], prec).amax(dim=1)  # (B, h*w)
    return prec, monomials.view(3, -1), stabiliser


def kernel_field_from_params(sigma1: Tensor, sigma2: Tensor, theta: Tensor, kernel_size: int = 21, scale: int = 4, *,
                             max_chunk_elements: int | None = None, out: Tensor | None = None) -> Tensor:
    """Per-pixel anisotropic Gaussian kernels, the field form of ``ssr.ops.kernels.gaussian_kernels``.

    The log-weights ``-0.5 q`` of every tap are three broadcast multiply-adds, ``q = A x^2 + 2 B xy + C y^2`` with
    the closed-form precision ``Sigma^-1 = [[A, B], [B, C]]`` per pixel and the tap monomials ``(x^2, 2xy, y^2)``
    shared by all pixels. Before ``exp`` each pixel's log-weights are shifted by the largest of its four taps nearest
    the kernel centre (by the pixel's exact maximum for kernels so narrow that this is below -80), so that no weight
    overflows and none of a pixel's weights all underflow to 0 / 0; the result equals the exact-maximum form up to
    float rounding (~1e-7).

    Memory: the output is ``B*K*K*h*w`` elements (460 MB in float32 for B = 1, K = 21, h = w = 512). The work runs
    over blocks of images x pixels with at most ``max_chunk_elements`` elements, so the one temporary (the block's
    log-weights) stays that small, and each block's weights are normalised straight into the field. Default: 2^18
    (1 MB in float32, within the L2 cache) on CPU, 2^24 (64 MB, few kernel launches) elsewhere. About 47 ms for a
    (16, 441, 64, 64) field on one CPU thread (2^18: 47, 2^17: 54, 2^20: 53, 2^16: 78).

    Args:
        sigma1: ``(B, h, w)`` std along theta in HR pixels, > 0. Its floating dtype and device set the result's.
        sigma2: ``(B, h, w)`` std across theta in HR pixels, > 0.
        theta: ``(B, h, w)`` radians, sigma1 axis along (x, y) = (cos theta, sin theta).
        kernel_size: K, odd, >= 3.
        scale: s; every kernel is centred at offset (s - 1) / 2.
        max_chunk_elements: Bound on the elements of the temporary block, >= 1; ``None`` picks by device.
        out: optional contiguous ``(B, K*K, h, w)`` tensor of the result's dtype and device to write into (for
            example one image of a larger batch's field), instead of a new one.

    Returns:
        ``(B, K*K, h, w)`` kernel field, each pixel's kernel summing to 1.

    Raises:
        ValueError: If the parameters are not equal-shaped ``(B, h, w)`` tensors, a sigma is <= 0,
            ``kernel_size`` / ``scale`` is invalid, ``max_chunk_elements < 1`` or ``out`` does not fit.
    """
    _check_gaussian_params(sigma1, sigma2, theta)
    if max_chunk_elements is not None and max_chunk_elements < 1:
        raise ValueError(f'max_chunk_elements must be >= 1, got {max_chunk_elements}')
    dtype = sigma1.dtype if sigma1.is_floating_point() else torch.float32
    device = sigma1.device
    batch, height, width = sigma1.shape
    if max_chunk_elements is None:
        max_chunk_elements = 2**18 if device.type == 'cpu' else 2**24

    prec, monomials, stabiliser = gaussian_field_terms(sigma1, sigma2, theta, kernel_size, scale)
    taps, pixels = kernel_size * kernel_size, height * width
    monomials = monomials.view(3, taps, 1)
    if out is None:
        field = torch.empty(batch, taps, pixels, dtype=dtype, device=device)
    elif (tuple(out.shape) != (batch, taps, height, width) or out.dtype != dtype or out.device != device
          or not out.is_contiguous()):
        raise ValueError(f'out must be a contiguous {(batch, taps, height, width)} {dtype} tensor on {device}, got '
                         f'{tuple(out.shape)} {out.dtype} on {out.device}')
    else:
        field = out.view(batch, taps, pixels)
    neg_stabiliser = stabiliser.neg().unsqueeze(1)  # (B, 1, h*w)
    any_narrow = bool((stabiliser < -80).any())  # one host sync per call, not one per block
    chunks = _chunks(batch, pixels, taps, max_chunk_elements)
    # one scratch block reused by every chunk: a fresh multi-MB tensor per chunk costs its page faults each time
    scratch = torch.empty(max(b1 - b0 for b0, b1, _, _ in chunks) * taps * max(p1 - p0 for _, _, p0, p1 in chunks),
                          dtype=dtype, device=device)
    for b0, b1, p0, p1 in chunks:  # blocks of pixels, each vectorised
        # three broadcast multiply-adds, not a (K*K, 3) @ (3, p) matmul: with an inner dimension of 3 BLAS runs
        # at ~6 ns per output element on the CPU, these at ~0.25 ns
        block = prec[b0:b1, :, p0:p1].unsqueeze(2)  # (b, 3, 1, p)
        logits = torch.addcmul(neg_stabiliser[b0:b1, :, p0:p1], monomials[0], block[:, 0], out=scratch[
            :(b1 - b0) * taps * (p1 - p0)].view(b1 - b0, taps, p1 - p0))  # (b, K*K, p): log-weight - m
        logits.addcmul_(monomials[1], block[:, 1]).addcmul_(monomials[2], block[:, 2])
        if any_narrow:  # very narrow kernels: their own maximum, so that no weight overflows
            narrow = stabiliser[b0:b1, p0:p1].unsqueeze(1) < -80
            logits -= torch.where(narrow, logits.amax(dim=1, keepdim=True), 0)
        # exp(-80) ~ 2e-35 is still a normal float32: denormal results make exp several times slower on x86, and
        # taps that small carry no weight anyway.
        # exp in place on the contiguous block; the normalised weights are written straight into the field
        weights = logits.clamp_(min=-80).exp_()
        torch.div(weights, weights.sum(dim=1, keepdim=True), out=field[b0:b1, :, p0:p1])
    return field.view(batch, taps, height, width)


def uniform_kernel_field(kernels: Tensor, h: int, w: int) -> Tensor:
    """The same kernel at every LR pixel, as an expanded view (no copy for contiguous ``kernels``).

    Args:
        kernels: ``(B, K, K)`` kernels, each summing to 1.
        h: LR height.
        w: LR width.

    Returns:
        ``(B, K*K, h, w)`` view; call ``.contiguous()`` before writing to it.

    Raises:
        ValueError: If ``kernels`` is not ``(B, K, K)`` or ``h``, ``w`` < 1.
    """
    if kernels.dim() != 3 or kernels.shape[1] != kernels.shape[2]:
        raise ValueError(f'kernels must have shape (B, K, K), got {tuple(kernels.shape)}')
    if h < 1 or w < 1:
        raise ValueError(f'h and w must be >= 1, got {(h, w)}')
    batch, size = kernels.shape[0], kernels.shape[1]
    return kernels.reshape(batch, size * size, 1, 1).expand(batch, size * size, h, w)


# ---------------------------------------------------------------------------------------------------------------------
# Sampling parameters
# ---------------------------------------------------------------------------------------------------------------------
def sample_smooth_params(batch: int, h: int, w: int, sigma_range: tuple[float, float] = (0.2, 3.0),
                         anisotropy_range: tuple[float, float] = (0.25, 1.0), generator: torch.Generator | None = None,
                         grid: int = 4, *, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> dict[str, Tensor]:
    """Smooth random (sigma1, sigma2, theta) maps: random values on a ``grid x grid`` control lattice, upsampled
    bicubically (corners aligned) to ``(h, w)``.

    Orientation is interpolated as the vector ``(1 - ratio) * (cos 2 theta, sin 2 theta)`` (ratio = sigma2 / sigma1),
    which has no wrap-around at theta = pi and shrinks where neighbouring orientations disagree, so the kernel becomes
    rounder exactly where theta turns quickly and the kernel field stays continuous. Consequently ratios reach
    ``anisotropy_range[1]`` only at control points and may be rounder (up to 1) between them.

    Args:
        batch: B.
        h: LR height.
        w: LR width.
        sigma_range: ``(lo, hi)``, sigma1 range in HR pixels, ``0 < lo <= hi``.
        anisotropy_range: ``(lo, hi)``, sigma2 / sigma1 range at the control points, ``0 < lo <= hi <= 1``.
        generator: Source of randomness; draws happen on its device (CPU without one).
        grid: Control points per side, >= 1 (1 gives a uniform field).
        dtype: Result dtype.
        device: Result device.

    Returns:
        ``{'sigma1', 'sigma2', 'theta'}``, each ``(B, h, w)``: sigma1 in ``sigma_range``, sigma2 in
        ``[anisotropy_range[0] * sigma1, sigma1]``, theta in (-pi/2, pi/2].

    Raises:
        ValueError: On invalid ranges, ``grid < 1`` or ``h``, ``w`` < 1.
    """
    _check_range('sigma_range', sigma_range, low=1e-6)
    _check_range('anisotropy_range', anisotropy_range, low=1e-6)
    if anisotropy_range[1] > 1:
        raise ValueError(f'anisotropy_range must lie in (0, 1], got {tuple(anisotropy_range)}')
    if grid < 1 or h < 1 or w < 1:
        raise ValueError(f'grid, h and w must be >= 1, got grid={grid}, h={h}, w={w}')
    shape = (batch, 1, grid, grid)
    sigma1 = _uniform(shape, sigma_range, generator)
    elongation = 1 - _uniform(shape, anisotropy_range, generator)
    double_angle = _uniform(shape, (0.0, 2 * math.pi), generator)
    control = torch.cat([sigma1, elongation * torch.cos(double_angle), elongation * torch.sin(double_angle)], dim=1)
    dense = F.interpolate(control.to(device=device, dtype=torch.float32), size=(h, w), mode='bicubic',
                          align_corners=True)
    # Bicubic overshoots between control points; clamp back into the sampled ranges.
    sigma1 = dense[:, 0].clamp(*sigma_range)
    elongation = torch.hypot(dense[:, 1], dense[:, 2]).clamp(0, 1 - anisotropy_range[0])
    theta = 0.5 * torch.atan2(dense[:, 2], dense[:, 1])
    theta = torch.where(theta <= -0.5 * math.pi, theta + math.pi, theta)  # atan2(-0.0, negative) gives -pi
    params = {'sigma1': sigma1, 'sigma2': (1 - elongation) * sigma1, 'theta': theta}
    return {k: v.to(dtype) for k, v in params.items()}


def _as_map(name: str, value: Tensor | Number, batch: int, h: int, w: int, like: Tensor) -> Tensor:
    """A scalar, per-image ``(B,)`` or per-pixel ``(B, h, w)`` value as a tensor broadcastable to ``(B, h, w)``."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if value.dim() == 0:
        return value
    if value.shape == (batch,):
        return value.view(batch, 1, 1)
    if value.shape == (batch, h, w):
        return value
    raise ValueError(f'{name} must be a float, a (B,) or a (B, h, w) tensor with B, h, w = {(batch, h, w)}, '
                     f'got shape {tuple(value.shape)}')


def depth_to_kernel_params(depth: Tensor, focus: Tensor | Number, sigma_min: Tensor | Number,
                           sigma_max: Tensor | Number, anisotropy: Tensor | Number = 1.0, theta: Tensor | Number = 0.0,
                           motion_sigma: Tensor | Number = 0.0,
                           motion_angle: Tensor | Number = 0.0) -> dict[str, Tensor]:
    """Depth-driven kernel parameters: a thin-lens-like defocus blur plus an optional global motion blur.

    Defocus: the std grows linearly with the distance from the focal plane in relative inverse depth, as the circle
    of confusion of a thin lens does (its diameter is proportional to ``|1 / Z - 1 / Z_f|``):
    ``sigma = sigma_min + (sigma_max - sigma_min) * |d - f| / max(f, 1 - f)``,
    so it is ``sigma_min`` at ``d = f`` and ``sigma_max`` at the depth in [0, 1] farthest from ``f``. The defocus
    Gaussian has stds ``(sigma, anisotropy * sigma)`` along ``theta`` (lens astigmatism / tilt).
    Motion: a Gaussian with std ``motion_sigma`` along ``motion_angle`` and none across. Blurring by both is their
    convolution, a Gaussian whose covariance is the sum; it is converted back to (sigma1, sigma2, theta) in closed
    form. Where ``motion_sigma == 0`` the defocus parameters pass through unchanged up to the canonical form
    (sigma1 >= sigma2, theta in (-pi/2, pi/2], theta = 0 where the kernel is isotropic).

    Args:
        depth: ``(B, 1, h, w)`` relative inverse depth in [0, 1] on the LR grid (``ssr.ops.depth_utils.
            depth_to_lr_grid`` brings an HR depth there). Every other argument is a float (all images), a per-image
            ``(B,)`` tensor or a per-pixel ``(B, h, w)`` tensor.
        focus: In-focus depth f, in [0, 1].
        sigma_min: Defocus std at the focal plane, HR pixels, > 0.
        sigma_max: Defocus std at the depth farthest from f, HR pixels, >= sigma_min.
        anisotropy: sigma2 / sigma1 of the defocus term, in (0, 1].
        theta: Orientation of the defocus sigma1 axis, radians.
        motion_sigma: Motion std in HR pixels, >= 0 (0: no motion).
        motion_angle: Motion direction in radians, (x, y) = (cos, sin).

    Returns:
        ``{'sigma1', 'sigma2', 'theta'}``, each ``(B, h, w)`` in depth's dtype (float32 for integer depth).

    Raises:
        ValueError: On a wrong depth shape, a parameter of the wrong shape, ``focus`` outside [0, 1],
            ``sigma_min <= 0``, ``sigma_max < sigma_min``, anisotropy outside (0, 1] or ``motion_sigma < 0``.
    """
    _check_depth(depth)
    depth = depth if depth.is_floating_point() else depth.float()
    batch, _, h, w = depth.shape
    d = depth[:, 0]
    focus, sigma_min, sigma_max, anisotropy, theta, motion_sigma, motion_angle = [
        _as_map(name, value, batch, h, w, d) for name, value in (
            ('focus', focus), ('sigma_min', sigma_min), ('sigma_max', sigma_max), ('anisotropy', anisotropy),
            ('theta', theta), ('motion_sigma', motion_sigma), ('motion_angle', motion_angle))]
    if not bool(((focus >= 0) & (focus <= 1)).all()):
        raise ValueError(f'focus must lie in [0, 1], got {focus.flatten().tolist()[:8]}')
    _check_positive('sigma_min', sigma_min)
    if not bool((sigma_max >= sigma_min).all()):
        raise ValueError(f'sigma_max must be >= sigma_min, got {sigma_max.flatten().tolist()[:8]} < '
                         f'{sigma_min.flatten().tolist()[:8]}')
    if not bool(((anisotropy > 0) & (anisotropy <= 1)).all()):
        raise ValueError(f'anisotropy must lie in (0, 1], got {anisotropy.flatten().tolist()[:8]}')
    _check_non_negative('motion_sigma', motion_sigma)

    blur = sigma_min + (sigma_max - sigma_min) * (d - focus).abs() / torch.maximum(focus, 1 - focus)
    # Convolving two Gaussians adds their covariances; the motion term is rank one (no spread across its angle).
    cov = gaussian_covariance(blur, anisotropy * blur, theta)
    cov = cov + gaussian_covariance(motion_sigma, torch.zeros_like(motion_sigma), motion_angle)
    sigma1, sigma2, theta_out = covariance_to_gaussian_params(cov)
    return {'sigma1': sigma1, 'sigma2': sigma2, 'theta': theta_out}


def sample_depth_kernel_params(depth: Tensor, sigma_range: tuple[float, float] = (0.2, 3.0),
                               anisotropy_range: tuple[float, float] = (0.5, 1.0), motion_prob: float = 0.25,
                               motion_sigma_range: tuple[float, float] = (0.5, 2.0),
                               generator: torch.Generator | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Sample per-image defocus / motion settings and turn them into per-pixel kernel parameters.

    Per image: focus f ~ U(0, 1); two draws from ``sigma_range`` sorted into (sigma_min, sigma_max); anisotropy ~
    U(anisotropy_range); theta ~ U(0, pi); with probability ``motion_prob`` a motion std ~ U(motion_sigma_range) along
    an angle ~ U(0, pi), else no motion. Every draw is made for every image, so images do not affect each other.

    Args:
        depth: ``(B, 1, h, w)`` relative inverse depth in [0, 1] on the LR grid.
        sigma_range: Defocus std range in HR pixels, ``0 < lo <= hi``.
        anisotropy_range: Defocus sigma2 / sigma1 range, ``0 < lo <= hi <= 1``.
        motion_prob: Probability of a motion term, in [0, 1].
        motion_sigma_range: Motion std range in HR pixels, ``0 <= lo <= hi``.
        generator: Source of randomness; draws happen on its device (CPU without one).

    Returns:
        ``(params, settings)``: params ``{'sigma1', 'sigma2', 'theta'}`` each ``(B, h, w)`` (see
        ``depth_to_kernel_params``); settings ``{'focus', 'sigma_min', 'sigma_max', 'anisotropy', 'theta',
        'motion_sigma', 'motion_angle'}`` each ``(B,)``, the drawn per-image values.

    Raises:
        ValueError: On a wrong depth shape or invalid ranges / probability.
    """
    _check_depth(depth)
    _check_range('sigma_range', sigma_range, low=1e-6)
    _check_range('anisotropy_range', anisotropy_range, low=1e-6)
    if anisotropy_range[1] > 1:
        raise ValueError(f'anisotropy_range must lie in (0, 1], got {tuple(anisotropy_range)}')
    _check_range('motion_sigma_range', motion_sigma_range, low=0.0)
    if not 0 <= motion_prob <= 1:
        raise ValueError(f'motion_prob must lie in [0, 1], got {motion_prob}')
    batch = depth.shape[0]
    focus = _uniform((batch,), (0.0, 1.0), generator)
    sigma_pair = _uniform((batch, 2), sigma_range, generator).sort(dim=1).values
    anisotropy = _uniform((batch,), anisotropy_range, generator)
    theta = _uniform((batch,), (0.0, math.pi), generator)
    has_motion = _uniform((batch,), (0.0, 1.0), generator) < motion_prob
    motion_sigma = _uniform((batch,), motion_sigma_range, generator) * has_motion
    motion_angle = _uniform((batch,), (0.0, math.pi), generator)
    dtype = depth.dtype if depth.is_floating_point() else torch.float32
    settings = {'focus': focus, 'sigma_min': sigma_pair[:, 0], 'sigma_max': sigma_pair[:, 1], 'anisotropy': anisotropy,
                'theta': theta, 'motion_sigma': motion_sigma, 'motion_angle': motion_angle}
    settings = {k: v.to(device=depth.device, dtype=dtype) for k, v in settings.items()}
    return depth_to_kernel_params(depth, **settings), settings


def spread_kernel_field(field: Tensor, factor: float, chunk: int = 65536) -> Tensor:
    """A kernel field ``(B, K*K, h, w)`` with every kernel stretched by ``factor`` about its centroid
    (:func:`ssr.ops.kernels.spread_kernels`: Gaussian sigmas times ``factor``), processed ``chunk`` kernels at a time.

    Raises:
        ValueError: ``field`` is not ``(B, K*K, h, w)`` with odd K, or ``factor`` is not > 0.
    """
    from ssr.ops.kernels import spread_kernels

    k = math.isqrt(field.shape[1]) if field.dim() == 4 else 0
    if field.dim() != 4 or k * k != field.shape[1] or k % 2 == 0:
        raise ValueError(f'field must be (B, K*K, h, w) with odd K, got {tuple(field.shape)}')
    if not factor > 0:
        raise ValueError(f'factor must be > 0, got {factor!r}')
    if factor == 1:
        return field
    b, taps, h, w = field.shape
    kernels = field.permute(0, 2, 3, 1).reshape(-1, k, k)
    out = torch.cat([spread_kernels(part, factor) for part in kernels.split(chunk)])
    return out.reshape(b, h, w, taps).permute(0, 3, 1, 2).contiguous()
