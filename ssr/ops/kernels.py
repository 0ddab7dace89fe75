"""Blur kernel shapes (Gaussian, generalised Gaussian, plateau, motion, delta) and a mixed kernel sampler.

Every function broadcasts over a leading shape ``(...)`` and returns ``(..., K, K)`` kernels that sum to 1.

Notation (DESIGN.md §3):

==========  ==================================================================================================
symbol      meaning
==========  ==================================================================================================
K           kernel size, odd, default 21; r = K // 2
s           scale factor; LR[i, j] = sum_{u, v} HR[s*i + u, s*j + v] * k[u + r, v + r] (paper Eq. 1)
u, v        row / column offset of kernel entry [a, b]: u = a - r, v = b - r
c           kernel centre, c = (s - 1) / 2 in rows and columns, so the LR grid sits centred on the HR grid
            as with bicubic downsampling; a delta kernel at offset (0, 0) reproduces HR[::s, ::s]
x, y        centred offsets x = v - c (column, rightwards), y = u - c (row, downwards)
sigma1/2    standard deviations in HR pixels (not variances; MANet's configs use variances)
theta       radians; the sigma1 axis points along (x, y) = (cos theta, sin theta), as in BasicSR's
            ``bivariate_Gaussian``: covariance = R diag(sigma1^2, sigma2^2) R^T, R = [[cos, -sin], [sin, cos]]
==========  ==================================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ssr.ops._checks import Number, _check_non_negative, _check_positive, _check_range, _uniform

KERNEL_TYPES: tuple[str, ...] = (
    'iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso', 'motion')

# Real-ESRGAN's first-degradation settings (options/train_realesrgan_x4plus.yml: kernel_list, kernel_prob,
# blur_sigma, betag_range, betap_range) are the defaults of ``random_mixed_kernels``.
DEFAULT_KERNEL_LIST: tuple[str, ...] = KERNEL_TYPES[:6]
DEFAULT_KERNEL_PROB: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)



# ---------------------------------------------------------------------------------------------------------------------
# Input checks and grids
# ---------------------------------------------------------------------------------------------------------------------
def _resolve(*values: Tensor | Number, dtype: torch.dtype | None,
             device: torch.device | str | None) -> tuple[torch.dtype, torch.device]:
    """Pick dtype / device: explicit arguments first, then the first floating tensor input, then float32 / CPU."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    if dtype is None:
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    if device is None:
        device = tensors[0].device if tensors else torch.device('cpu')
    return dtype, torch.device(device)


def _broadcast(*values: Tensor | Number, dtype: torch.dtype, device: torch.device) -> list[Tensor]:
    """Convert floats / tensors to ``dtype`` on ``device`` and broadcast them to one shape."""
    return list(torch.broadcast_tensors(*[torch.as_tensor(v, dtype=dtype, device=device) for v in values]))


def kernel_offsets(kernel_size: int = 21, scale: int = 4, *, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Centred offsets of the kernel taps: ``x = v - c`` (columns) and ``y = u - c`` (rows), ``c = (s - 1) / 2``.

    Args:
        kernel_size: K, odd and >= 3.
        scale: s >= 1; the kernel centre c = (s - 1) / 2 must lie strictly inside the kernel (c < K // 2).
        dtype: Floating dtype of the result.
        device: Device of the result.

    Returns:
        ``(x, y)``, each ``(K, K)``: ``x[a, b] = b - r - c``, ``y[a, b] = a - r - c``.

    Raises:
        ValueError: If ``kernel_size`` is not an odd int >= 3, ``scale < 1``, or the centre falls outside the kernel.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f'kernel_size must be an odd int >= 3, got {kernel_size!r}')
    if not scale >= 1:
        raise ValueError(f'scale must be >= 1, got {scale!r}')
    radius, centre = kernel_size // 2, (scale - 1) / 2
    if centre >= radius:
        raise ValueError(f'kernel_size {kernel_size} too small for scale {scale}: centre (s - 1) / 2 = {centre} '
                         f'must be < kernel_size // 2 = {radius}')
    axis = torch.arange(kernel_size, dtype=dtype, device=device) - (radius + centre)
    y, x = torch.meshgrid(axis, axis, indexing='ij')
    return x, y


# ---------------------------------------------------------------------------------------------------------------------
# Gaussian covariance <-> (sigma1, sigma2, theta)
# ---------------------------------------------------------------------------------------------------------------------
def gaussian_covariance(sigma1: Tensor | Number, sigma2: Tensor | Number, theta: Tensor | Number) -> Tensor:
    """Covariance ``R diag(sigma1^2, sigma2^2) R^T`` in (x, y) = (column, row) coordinates.

    Args:
        sigma1: ``(...)`` standard deviation along the theta axis, HR pixels.
        sigma2: ``(...)`` standard deviation across it, HR pixels.
        theta: ``(...)`` angle of the sigma1 axis in radians, from +x (columns) towards +y (rows, downwards).

    Returns:
        ``(..., 2, 2)`` symmetric covariance ``[[var_x, cov_xy], [cov_xy, var_y]]``.
    """
    dtype, device = _resolve(sigma1, sigma2, theta, dtype=None, device=None)
    sigma1, sigma2, theta = _broadcast(sigma1, sigma2, theta, dtype=dtype, device=device)
    cos, sin = torch.cos(theta), torch.sin(theta)
    var1, var2 = sigma1.square(), sigma2.square()
    var_x = var1 * cos.square() + var2 * sin.square()
    var_y = var1 * sin.square() + var2 * cos.square()
    cov_xy = (var1 - var2) * cos * sin
    return torch.stack([torch.stack([var_x, cov_xy], -1), torch.stack([cov_xy, var_y], -1)], -2)


def covariance_to_gaussian_params(cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Closed-form eigen-decomposition of symmetric 2x2 covariances into (sigma1, sigma2, theta).

    For ``[[a, b], [b, d]]`` the eigenvalues are ``(a + d) / 2 +- sqrt(((a - d) / 2)^2 + b^2)`` and the major axis
    angle is ``atan2(2 b, a - d) / 2``; no per-pixel ``torch.linalg`` call, so it vectorises over any shape.

    Args:
        cov: ``(..., 2, 2)`` symmetric positive semi-definite covariance in (x, y) coordinates, HR pixels^2.

    Returns:
        ``(sigma1, sigma2, theta)``, each ``(...)``: ``sigma1 >= sigma2 >= 0`` and ``theta`` in (-pi/2, pi/2]
        (theta is 0 for an isotropic covariance).

    Raises:
        ValueError: If ``cov`` is not ``(..., 2, 2)``.
    """
    if cov.dim() < 2 or cov.shape[-2:] != (2, 2):
        raise ValueError(f'cov must have shape (..., 2, 2), got {tuple(cov.shape)}')
    a, b, d = cov[..., 0, 0], 0.5 * (cov[..., 0, 1] + cov[..., 1, 0]), cov[..., 1, 1]
    mean, half_diff = 0.5 * (a + d), 0.5 * (a - d)
    radius = torch.sqrt(half_diff.square() + b.square())
    sigma1 = (mean + radius).clamp_min(0).sqrt()
    sigma2 = (mean - radius).clamp_min(0).sqrt()
    theta = 0.5 * torch.atan2(2 * b, a - d)
    theta = torch.where(theta <= -0.5 * math.pi, theta + math.pi, theta)  # atan2(-0.0, negative) gives -pi
    return sigma1, sigma2, theta


def _gaussian_quadratic_form(sigma1: Tensor, sigma2: Tensor, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Mahalanobis distance ``[x y] Sigma^-1 [x y]^T`` with the closed-form inverse (rotated coordinates)."""
    cos, sin = torch.cos(theta)[..., None, None], torch.sin(theta)[..., None, None]
    along = (cos * x + sin * y) / sigma1[..., None, None]
    across = (cos * y - sin * x) / sigma2[..., None, None]
    return along.square() + across.square()


def _normalise_logits(logits: Tensor) -> Tensor:
    """Exponentiate and normalise ``(..., K, K)`` log-weights to sum 1; softmax subtracts the maximum first, so
    very narrow kernels (whose every tap would underflow in float32) still normalise.

    Weights below ``tiny / eps`` (1e-31 in float32) are set to 0: they change no sum by more than rounding, and as
    denormal numbers (or products of them) they make every multiply that reads them tens of times slower on x86
    (a BasicSR-style batch of 16 such kernels convolves 5-7x slower than with them flushed)."""
    weights = torch.softmax(logits.flatten(-2), dim=-1).view(logits.shape)
    info = torch.finfo(weights.dtype)
    return weights.masked_fill_(weights < info.tiny / info.eps, 0)


# ---------------------------------------------------------------------------------------------------------------------
# Kernel shapes
# ---------------------------------------------------------------------------------------------------------------------
def gaussian_kernels(sigma1: Tensor | Number, sigma2: Tensor | Number, theta: Tensor | Number, kernel_size: int = 21,
                     scale: int = 4, *, dtype: torch.dtype | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """Anisotropic Gaussian kernels centred at ``c = (s - 1) / 2``: ``k ∝ exp(-0.5 [x y] Sigma^-1 [x y]^T)``.

    Args:
        sigma1: ``(...)`` or float, std along the theta axis in HR pixels, > 0.
        sigma2: ``(...)`` or float, std across the theta axis in HR pixels, > 0.
        theta: ``(...)`` or float, radians (see the module notation table).
        kernel_size: K, odd, >= 3.
        scale: s; sets the centre offset c.
        dtype: Result dtype; default: that of the first floating tensor input, else float32.
        device: Result device; default: that of the first tensor input, else CPU.

    Returns:
        ``(..., K, K)`` kernels, the broadcast shape of the parameters, each summing to 1.

    Raises:
        ValueError: On a bad ``kernel_size`` / ``scale`` or a sigma <= 0.
    """
    _check_positive('sigma1', sigma1)
    _check_positive('sigma2', sigma2)
    dtype, device = _resolve(sigma1, sigma2, theta, dtype=dtype, device=device)
    x, y = kernel_offsets(kernel_size, scale, dtype=dtype, device=device)
    sigma1, sigma2, theta = _broadcast(sigma1, sigma2, theta, dtype=dtype, device=device)
    return _normalise_logits(-0.5 * _gaussian_quadratic_form(sigma1, sigma2, theta, x, y))


def isotropic_gaussian_kernels(sigma: Tensor | Number, kernel_size: int = 21, scale: int = 4, *,
                               dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
    """Isotropic Gaussian kernels ``(..., K, K)``; ``sigma`` ``(...)`` is the std in HR pixels, > 0.

    See ``gaussian_kernels`` for the other arguments, the return value and the errors.
    """
    _check_positive('sigma', sigma)
    return gaussian_kernels(sigma, sigma, 0.0, kernel_size, scale, dtype=dtype, device=device)


def _powered_quadratic_form(sigma1, sigma2, theta, beta, kernel_size: int, scale: int, dtype, device) -> Tensor:
    """``(x^T Sigma^-1 x)^beta`` on the kernel taps, ``(..., K, K)``: the shared core of the generalised-Gaussian and
    plateau shapes, with their argument checks."""
    _check_positive('sigma1', sigma1)
    _check_positive('sigma2', sigma2)
    _check_positive('beta', beta)
    dtype, device = _resolve(sigma1, sigma2, theta, beta, dtype=dtype, device=device)
    x, y = kernel_offsets(kernel_size, scale, dtype=dtype, device=device)
    sigma1, sigma2, theta, beta = _broadcast(sigma1, sigma2, theta, beta, dtype=dtype, device=device)
    return _gaussian_quadratic_form(sigma1, sigma2, theta, x, y).pow(beta[..., None, None])


def generalized_gaussian_kernels(sigma1: Tensor | Number, sigma2: Tensor | Number, theta: Tensor | Number,
                                 beta: Tensor | Number, kernel_size: int = 21, scale: int = 4, *,
                                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
    """Generalised Gaussian kernels ``k ∝ exp(-0.5 (x^T Sigma^-1 x)^beta)`` (BasicSR
    ``bivariate_generalized_Gaussian``); ``beta = 1`` is the Gaussian, ``beta > 1`` flattens the top.

    Args:
        sigma1, sigma2, theta: As in ``gaussian_kernels``.
        beta: ``(...)`` or float, shape exponent, > 0.
        kernel_size, scale, dtype, device: As in ``gaussian_kernels``.

    Returns:
        ``(..., K, K)`` kernels summing to 1.

    Raises:
        ValueError: On a bad ``kernel_size`` / ``scale``, a sigma <= 0 or ``beta <= 0``.
    """
    quad_beta = _powered_quadratic_form(sigma1, sigma2, theta, beta, kernel_size, scale, dtype, device)
    return _normalise_logits(-0.5 * quad_beta)


def plateau_kernels(sigma1: Tensor | Number, sigma2: Tensor | Number, theta: Tensor | Number, beta: Tensor | Number,
                    kernel_size: int = 21, scale: int = 4, *, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None) -> Tensor:
    """Plateau kernels ``k ∝ 1 / (1 + (x^T Sigma^-1 x)^beta)`` (BasicSR ``bivariate_plateau``): heavy-tailed, with
    the same elliptic level sets as the Gaussian of the same (sigma1, sigma2, theta).

    Args:
        sigma1, sigma2, theta: As in ``gaussian_kernels``.
        beta: ``(...)`` or float, tail exponent, > 0.
        kernel_size, scale, dtype, device: As in ``gaussian_kernels``.

    Returns:
        ``(..., K, K)`` kernels summing to 1.

    Raises:
        ValueError: On a bad ``kernel_size`` / ``scale``, a sigma <= 0 or ``beta <= 0``.
    """
    quad_beta = _powered_quadratic_form(sigma1, sigma2, theta, beta, kernel_size, scale, dtype, device)
    return _normalise_logits(-torch.log1p(quad_beta))


def motion_kernels(length: Tensor | Number, angle: Tensor | Number, kernel_size: int = 21, scale: int = 4, *,
                   dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
    """Anti-aliased straight motion-blur segments centred at ``c = (s - 1) / 2``.

    Each tap is weighted by a tent ``max(0, 1 - dist)`` of its distance (HR pixels) to the segment of the given
    length through the centre, so the line is about two pixels wide at half-pixel positions and one at integer ones,
    with round caps. Segments longer than the kernel are cut at its border (then renormalised).

    Args:
        length: ``(...)`` or float, segment length in HR pixels, >= 0 (0 gives a point, spread bilinearly-like).
        angle: ``(...)`` or float, radians; the segment points along (x, y) = (cos angle, sin angle).
        kernel_size, scale, dtype, device: As in ``gaussian_kernels``.

    Returns:
        ``(..., K, K)`` kernels summing to 1.

    Raises:
        ValueError: On a bad ``kernel_size`` / ``scale`` or ``length < 0``.
    """
    _check_non_negative('length', length)
    dtype, device = _resolve(length, angle, dtype=dtype, device=device)
    x, y = kernel_offsets(kernel_size, scale, dtype=dtype, device=device)
    length, angle = _broadcast(length, angle, dtype=dtype, device=device)
    half = 0.5 * length[..., None, None]
    cos, sin = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
    # Distance to a segment: project onto its axis, clamp to the segment, measure the remainder.
    along = torch.minimum(torch.maximum(cos * x + sin * y, -half), half)
    dist = torch.hypot(x - along * cos, y - along * sin)
    weights = (1 - dist).clamp_min(0)
    # The tap nearest the centre lies within sqrt(0.5) of the segment, so every sum is > 0.
    return weights / weights.sum(dim=(-2, -1), keepdim=True)


def delta_kernel(kernel_size: int = 21, offset: tuple[int, int] = (0, 0), *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> Tensor:
    """A one-hot kernel ``(K, K)`` with ``k[r + du, r + dv] = 1``; offset (0, 0) makes the degradation
    ``HR[::s, ::s]`` exactly (no centre shift is applied).

    Args:
        kernel_size: K, odd, >= 3.
        offset: ``(du, dv)`` integer row / column offset of the one, each in [-r, r].
        dtype: Result dtype.
        device: Result device.

    Returns:
        ``(K, K)`` kernel summing to 1.

    Raises:
        ValueError: On a bad ``kernel_size`` or an offset that is not an integer within [-r, r].
    """
    kernel_offsets(kernel_size, 1)  # validates kernel_size
    radius = kernel_size // 2
    if len(offset) != 2 or not all(isinstance(o, int) and -radius <= o <= radius for o in offset):
        raise ValueError(f'offset must be two ints in [-{radius}, {radius}], got {offset!r}')
    kernel = torch.zeros(kernel_size, kernel_size, dtype=dtype, device=device)
    kernel[radius + offset[0], radius + offset[1]] = 1
    return kernel


# ---------------------------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------------------------
def _sample_beta(batch: int, beta_range: Sequence[float], generator: torch.Generator | None) -> Tensor:
    """Shape exponents as in BasicSR's samplers: half below 1 (heavier / sharper), half above 1, when 1 is inside
    the range; otherwise uniform over it. Always consumes the same number of draws."""
    low, high = beta_range
    coin = _uniform((batch,), (0, 1), generator) < 0.5
    below = _uniform((batch,), (low, min(max(low, 1.0), high)), generator)
    above = _uniform((batch,), (max(min(high, 1.0), low), high), generator)
    return torch.where(coin, below, above) if low < 1 < high else _uniform((batch,), beta_range, generator)


def random_mixed_kernels(
        batch: int,
        kernel_list: Sequence[str] = DEFAULT_KERNEL_LIST,
        kernel_prob: Sequence[float] = DEFAULT_KERNEL_PROB,
        sigma_range: tuple[float, float] = (0.2, 3.0),
        rotation_range: tuple[float, float] = (-math.pi, math.pi),
        betag_range: tuple[float, float] = (0.5, 4.0),
        betap_range: tuple[float, float] = (1.0, 2.0),
        motion_length_range: tuple[float, float] = (3.0, 11.0),
        generator: torch.Generator | None = None,
        kernel_size: int = 21,
        scale: int = 4,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Sample ``batch`` kernels of mixed types, like BasicSR's ``random_mixed_kernels`` but batched, in torch and
    drawn from ``generator`` only.

    Per sample: the type is drawn with ``kernel_prob``; ``*_iso`` types use one sigma and theta = 0, ``*_aniso``
    draw sigma1, sigma2 independently from ``sigma_range`` (so either may be the larger) and theta from
    ``rotation_range``; ``motion`` draws a length and an angle (from ``rotation_range``). All parameters are drawn
    for every sample whatever its type, so a sample's draws do not depend on the other samples' types.

    Args:
        batch: B, number of kernels.
        kernel_list: Names from ``KERNEL_TYPES``.
        kernel_prob: Probability of each name (normalised to sum 1), same length as ``kernel_list``.
        sigma_range: Std range in HR pixels, ``0 < lo <= hi``.
        rotation_range: Angle range in radians.
        betag_range: Generalised-Gaussian exponent range, ``0 < lo <= hi``.
        betap_range: Plateau exponent range, ``0 < lo <= hi``.
        motion_length_range: Motion segment length range in HR pixels, ``0 <= lo <= hi``.
        generator: Source of randomness (its device is where draws happen); ``None`` uses torch's default CPU one.
        kernel_size: K.
        scale: s, sets the kernel centre.
        dtype: Dtype of the kernels and parameters.
        device: Device of the kernels and parameters.

    Returns:
        ``(kernels, params)``: kernels ``(B, K, K)`` each summing to 1; params, each ``(B,)``:
        ``kernel_type`` (int64 index into ``KERNEL_TYPES``), ``sigma1``, ``sigma2``, ``theta``, ``beta``
        (1 for Gaussian types), ``length``, ``angle``. Entries that do not apply to a sample's type are 0.

    Raises:
        ValueError: On an unknown kernel name, mismatched / invalid probabilities or an invalid range.
    """
    unknown = [name for name in kernel_list if name not in KERNEL_TYPES]
    if unknown or not kernel_list:
        raise ValueError(f'kernel_list {list(kernel_list)} has unknown names {unknown}; valid: {KERNEL_TYPES}')
    if len(kernel_prob) != len(kernel_list) or any(p < 0 for p in kernel_prob) or sum(kernel_prob) <= 0:
        raise ValueError(f'kernel_prob {list(kernel_prob)} must be {len(kernel_list)} non-negative numbers with a '
                         f'positive sum (one per kernel_list entry)')
    _check_range('sigma_range', sigma_range, low=1e-6)
    _check_range('betag_range', betag_range, low=1e-6)
    _check_range('betap_range', betap_range, low=1e-6)
    _check_range('motion_length_range', motion_length_range, low=0.0)
    _check_range('rotation_range', rotation_range)

    prob = torch.tensor(kernel_prob, dtype=torch.float64, device=generator.device if generator is not None else None)
    choice = torch.multinomial(prob, batch, replacement=True, generator=generator).cpu()
    kernel_type = torch.tensor([KERNEL_TYPES.index(name) for name in kernel_list])[choice]
    sigma_x = _uniform((batch,), sigma_range, generator).cpu()
    sigma_y = _uniform((batch,), sigma_range, generator).cpu()
    rotation = _uniform((batch,), rotation_range, generator).cpu()
    beta_g = _sample_beta(batch, betag_range, generator).cpu()
    beta_p = _sample_beta(batch, betap_range, generator).cpu()
    length = _uniform((batch,), motion_length_range, generator).cpu()

    names = [KERNEL_TYPES[i] for i in kernel_type.tolist()]
    is_iso = torch.tensor([n.endswith('_iso') or n == 'iso' for n in names], dtype=torch.bool)
    is_motion = kernel_type == KERNEL_TYPES.index('motion')
    is_general = torch.tensor([n.startswith('generalized') for n in names], dtype=torch.bool)
    is_plateau = torch.tensor([n.startswith('plateau') for n in names], dtype=torch.bool)
    zero = torch.zeros(batch)
    params = {
        'kernel_type': kernel_type,
        'sigma1': torch.where(is_motion, zero, sigma_x),
        'sigma2': torch.where(is_motion, zero, torch.where(is_iso, sigma_x, sigma_y)),
        'theta': torch.where(is_motion | is_iso, zero, rotation),
        'beta': torch.where(is_general, beta_g, torch.where(is_plateau, beta_p, torch.where(is_motion, zero, 1.0))),
        'length': torch.where(is_motion, length, zero),
        'angle': torch.where(is_motion, rotation, zero),
    }
    params = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in params.items()}

    kernels = torch.empty(batch, kernel_size, kernel_size, dtype=dtype, device=device)
    groups = [(~(is_general | is_plateau | is_motion), gaussian_kernels, ('sigma1', 'sigma2', 'theta')),
              (is_general, generalized_gaussian_kernels, ('sigma1', 'sigma2', 'theta', 'beta')),
              (is_plateau, plateau_kernels, ('sigma1', 'sigma2', 'theta', 'beta')),
              (is_motion, motion_kernels, ('length', 'angle'))]
    for mask, build, keys in groups:  # at most four calls, each vectorised over its samples
        if mask.any():
            mask = mask.to(kernels.device)
            kernels[mask] = build(*[params[k][mask] for k in keys], kernel_size, scale)
    return kernels, params


# ---------------------------------------------------------------------------------------------------------------------
# Moments
# ---------------------------------------------------------------------------------------------------------------------
def kernel_moments(kernels: Tensor) -> tuple[Tensor, Tensor]:
    """First and second central moments of kernels (offsets relative to the kernel's middle tap, no centre shift).

    Args:
        kernels: ``(..., K, K)`` non-negative weights (normalised here, so they need not sum to 1).

    Returns:
        ``(centroid, covariance)``: centroid ``(..., 2)`` as (row, col) offsets from tap [r, r], so a scale-s
        Gaussian gives ((s - 1) / 2, (s - 1) / 2); covariance ``(..., 2, 2)`` in (x, y) = (col, row) coordinates,
        ``[[var_x, cov_xy], [cov_xy, var_y]]``, HR pixels^2.

    Raises:
        ValueError: If ``kernels`` is not ``(..., K, K)`` with odd square K.
    """
    if kernels.dim() < 2 or kernels.shape[-1] != kernels.shape[-2] or kernels.shape[-1] % 2 == 0:
        raise ValueError(f'kernels must have shape (..., K, K) with odd K, got {tuple(kernels.shape)}')
    x, y = kernel_offsets(kernels.shape[-1], 1, dtype=kernels.dtype, device=kernels.device)
    weights = kernels / kernels.sum(dim=(-2, -1), keepdim=True)
    mean_x, mean_y = (weights * x).sum((-2, -1)), (weights * y).sum((-2, -1))
    dx, dy = x - mean_x[..., None, None], y - mean_y[..., None, None]
    var_x = (weights * dx * dx).sum((-2, -1))
    var_y = (weights * dy * dy).sum((-2, -1))
    cov_xy = (weights * dx * dy).sum((-2, -1))
    covariance = torch.stack([torch.stack([var_x, cov_xy], -1), torch.stack([cov_xy, var_y], -1)], -2)
    return torch.stack([mean_y, mean_x], -1), covariance


def kernel_params_from_moments(kernels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gaussian parameters with the same second moments as ``kernels`` ``(..., K, K)``.

    Returns:
        ``(sigma1, sigma2, theta)``, each ``(...)``, with ``sigma1 >= sigma2`` and theta in (-pi/2, pi/2]. Kernels
        truncated by the K x K window have smaller moments than their untruncated parameters.
    """
    return covariance_to_gaussian_params(kernel_moments(kernels)[1])


def sample_gaussian_kernels(num: int, kernel_size: int, scale: int, sigma_range: tuple[float, float],
                            iso_prob: float, generator: torch.Generator, device: torch.device | str = 'cpu') -> Tensor:
    """Draws (num, k, k) float64 Gaussian kernels (the kernel PCA's fitting distribution): sigma1, sigma2 ~ U[sigma_range] std, theta ~ U[0, pi).

    With probability ``iso_prob`` a kernel is isotropic (sigma2 = sigma1). Four (num,) uniform vectors are drawn
    from ``generator`` in a fixed order.
    """
    low, high = sigma_range
    u_sigma1, u_sigma2, u_theta, u_iso = torch.rand(4, num, generator=generator, dtype=torch.float64, device=device)
    sigma1 = low + (high - low) * u_sigma1
    sigma2 = torch.where(u_iso < iso_prob, sigma1, low + (high - low) * u_sigma2)
    return gaussian_kernels(sigma1, sigma2, math.pi * u_theta, kernel_size, scale)


# ---------------------------------------------------------------------------------------------------------------------
# Deviated kernels (paper Fig. 8)
# ---------------------------------------------------------------------------------------------------------------------
def spread_kernels(kernels: Tensor, factor: float) -> Tensor:
    """Kernels stretched about their centroids by ``factor``: every standard deviation times ``factor``.

    ``out(p) ∝ k(m + (p - m) / factor)`` with ``m`` each kernel's centroid, evaluated by bicubic interpolation of the
    taps (zero outside the window), clipped at 0 and renormalised to sum 1. For a Gaussian well inside the window
    the result is the Gaussian with ``sigma1``, ``sigma2`` times ``factor`` and the same ``theta`` and centre (for
    sigmas >= 1: taps within 3 % of the peak, moment sigmas within 5 %; a factor below 1 resamples the taps more
    coarsely, so very narrow kernels, sigma < 1, are approximated less well);
    ``factor == 1`` returns the kernels unchanged. This is the deviated K_1 / K_2 of the paper's Fig. 8.

    Args:
        kernels: ``(..., K, K)`` non-negative, odd K.
        factor: > 0.

    Returns:
        ``(..., K, K)`` summing to 1.

    Raises:
        ValueError: ``factor`` is not > 0, or the kernels are not ``(..., K, K)`` with odd K.
    """
    if not factor > 0:
        raise ValueError(f'factor must be > 0, got {factor!r}')
    centroid, _ = kernel_moments(kernels)  # validates the shape
    if factor == 1:
        return kernels
    size = kernels.shape[-1]
    flat = kernels.reshape(-1, 1, size, size)
    radius = size // 2
    # centroid as (row, col) tap coordinates; kernel_moments' offsets are relative to tap [r, r]
    m = centroid.reshape(-1, 2).to(flat.dtype) + radius
    taps = torch.arange(size, dtype=flat.dtype, device=flat.device)
    rows = m[:, 0, None] + (taps - m[:, 0, None]) / factor  # (N, K) source row of each output row
    cols = m[:, 1, None] + (taps - m[:, 1, None]) / factor
    # grid_sample's normalised coordinates with align_corners=True: -1 / +1 are the first / last tap
    gy = (rows / (size - 1) * 2 - 1)[:, :, None].expand(-1, size, size)
    gx = (cols / (size - 1) * 2 - 1)[:, None, :].expand(-1, size, size)
    out = torch.nn.functional.grid_sample(flat, torch.stack([gx, gy], -1), mode='bicubic', padding_mode='zeros',
                                          align_corners=True).clamp_min(0)
    out = out / out.sum((-2, -1), keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)
    return out.reshape(kernels.shape)
