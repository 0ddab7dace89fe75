"""Additive Gaussian and Poisson noise for the degradation pipeline (paper Eq. 1, the "+ n" term).

Sampling is separate from applying: :func:`sample_noise_params` draws per-image parameters from an options dict with
a ``torch.Generator``; :func:`add_gaussian_noise`, :func:`add_poisson_noise` and :func:`apply_noise` apply them and
draw the noise itself from the generator passed in (or take an injected standard-normal ``noise`` tensor, like
diffusers' ``variance_noise``). Nothing reads the global RNG.

Shapes: B batch, C channels (1 or 3 for gray noise), H, W image size. Images are float in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    'NOISE_OPT_DEFAULTS',
    'NoiseParams',
    'add_gaussian_noise',
    'add_poisson_noise',
    'apply_noise',
    'poisson_noise_level',
    'sample_noise_params',
]

# Real-ESRGAN's first-stage defaults (options/train_realesrnet_x4plus.yml: noise_range [1, 30],
# poisson_scale_range [0.05, 3], gaussian_noise_prob 0.5, gray_noise_prob 0.4); there Poisson is used whenever
# Gaussian is not, i.e. poisson_prob = 1 - gaussian_prob.
NOISE_OPT_DEFAULTS: dict[str, Any] = {
    'gaussian_prob': 0.5,
    'gaussian_sigma_range': (1.0, 30.0),  # std, in 0-255 units
    'poisson_prob': 0.5,
    'poisson_scale_range': (0.05, 3.0),
    'gray_prob': 0.4,
}
# ITU-R BT.601 luma weights, as in torchvision's rgb_to_grayscale (used by BasicSR's gray Poisson noise).
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
# Poisson "photon count" per unit intensity. BasicSR uses 2 ** ceil(log2(n_unique)) with n_unique the number of
# distinct 8-bit levels of each image (basicsr/data/degradations.py, generate_poisson_noise_pt); for any natural
# image with more than 128 distinct levels that is 256. We use that constant: no per-image torch.unique (a host sync
# on the GPU), and the noise level no longer depends on how many grey levels a crop happens to contain.
DEFAULT_POISSON_LEVELS = 256.0


@dataclass
class NoiseParams:
    """Per-image noise parameters; at most one noise type is active per image.

    Attributes:
        gaussian_sigma: (B,) std of the Gaussian noise in [0, 1] intensity units, 0 where none.
        poisson_scale: (B,) multiplier of the Poisson noise, 0 where none.
        gray: (B,) bool, True for noise shared by all channels.
    """

    gaussian_sigma: Tensor
    poisson_scale: Tensor
    gray: Tensor


def _check_image(img: Tensor) -> None:
    if img.dim() != 4:
        raise ValueError(f'img must be (B, C, H, W), got shape {tuple(img.shape)}')


def _per_image(value: Tensor | float, img: Tensor, name: str) -> Tensor:
    """Broadcasts a float or (B,) tensor to (B,) in img's dtype and device; rejects negative values."""
    b = img.shape[0]
    value = torch.as_tensor(value, dtype=img.dtype, device=img.device)
    if value.dim() == 0:
        value = value.expand(b)
    if tuple(value.shape) != (b,):
        raise ValueError(f'{name} must be a float or shape ({b},), got shape {tuple(value.shape)}')
    if bool((value < 0).any()):
        raise ValueError(f'{name} must be >= 0, got min {value.min().item():g}')
    return value


def _gray_mask(gray: Tensor | bool | None, img: Tensor) -> Tensor:
    b = img.shape[0]
    if gray is None:
        gray = False
    gray = torch.as_tensor(gray, device=img.device)
    if gray.dtype != torch.bool:
        raise ValueError(f'gray must be bool, got dtype {gray.dtype}')
    if gray.dim() == 0:
        gray = gray.expand(b)
    if tuple(gray.shape) != (b,):
        raise ValueError(f'gray must be a bool or shape ({b},), got shape {tuple(gray.shape)}')
    return gray


def _finish(out: Tensor, clip: bool, rounds: bool) -> Tensor:
    if clip:
        out = out.clamp(0, 1)
    if rounds:
        # BasicSR's random_add_*_noise_pt(rounds=True): quantise to 8 bit as a saved PNG would.
        out = (out * 255.0).round() / 255.0
    return out


def add_gaussian_noise(img: Tensor,
                       sigma: Tensor | float,
                       gray: Tensor | bool | None = None,
                       generator: torch.Generator | None = None,
                       *,
                       noise: Tensor | None = None,
                       clip: bool = True,
                       rounds: bool = False) -> Tensor:
    """Adds zero-mean Gaussian noise with a per-image standard deviation.

    Args:
        img: (B, C, H, W) float image in [0, 1].
        sigma: (B,) or scalar std in [0, 1] intensity units (i.e. sigma_255 / 255), >= 0.
        gray: (B,) bool or scalar; True uses channel 0 of the noise for every channel. Default False.
        generator: generator on ``img.device`` for the noise; ignored when ``noise`` is given.
        noise: optional (B, C, H, W) standard-normal noise to use instead of drawing it.
        clip: clamp the result to [0, 1].
        rounds: quantise the result to multiples of 1/255 (after clipping).

    Returns:
        (B, C, H, W) noisy image, same dtype and device as ``img``. ``sigma == 0`` returns ``img`` unchanged
        (up to clip/round).

    Raises:
        ValueError: on a bad shape, dtype or negative sigma.
    """
    _check_image(img)
    sigma = _per_image(sigma, img, 'sigma')
    gray = _gray_mask(gray, img)
    if noise is None:
        noise = torch.randn(img.shape, generator=generator, dtype=img.dtype, device=img.device)
    elif noise.shape != img.shape:
        raise ValueError(f'noise shape {tuple(noise.shape)} != img shape {tuple(img.shape)}')
    noise = torch.where(gray.view(-1, 1, 1, 1), noise[:, :1].expand_as(noise), noise)
    return _finish(img + noise * sigma.view(-1, 1, 1, 1), clip, rounds)


def _to_gray(img: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luma; (B, 1, H, W) is returned as is."""
    if img.shape[1] == 1:
        return img
    if img.shape[1] != 3:
        raise ValueError(f'gray noise needs 1 or 3 channels, got shape {tuple(img.shape)}')
    weights = torch.tensor(_GRAY_WEIGHTS, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img * weights).sum(1, keepdim=True)


def _quantise(img: Tensor) -> Tensor:
    return (img * 255.0).round().clamp(0, 255) / 255.0


def add_poisson_noise(img: Tensor,
                      scale: Tensor | float,
                      gray: Tensor | bool | None = None,
                      generator: torch.Generator | None = None,
                      *,
                      levels: float = DEFAULT_POISSON_LEVELS,
                      clip: bool = True,
                      rounds: bool = False) -> Tensor:
    """Adds signal-dependent Poisson (shot) noise, as BasicSR's ``add_poisson_noise_pt`` but with fixed ``levels``.

    The noise is ``scale * (Poisson(q * levels) / levels - q)`` with q the image quantised to 8 bit (gray: its
    BT.601 luma, shared by all channels), added to the unquantised image. Its variance is
    ``scale**2 * q / levels``.

    Args:
        img: (B, C, H, W) float image in [0, 1]; C must be 1 or 3 where ``gray`` is True.
        scale: (B,) or scalar noise multiplier, >= 0 (Real-ESRGAN samples it in [0.05, 3]).
        gray: (B,) bool or scalar; True for luma noise shared by all channels. Default False.
        generator: generator on ``img.device`` for ``torch.poisson``.
        levels: counts per unit intensity (see ``DEFAULT_POISSON_LEVELS`` for why 256).
        clip: clamp the result to [0, 1].
        rounds: quantise the result to multiples of 1/255 (after clipping).

    Returns:
        (B, C, H, W) noisy image, same dtype and device as ``img``.

    Raises:
        ValueError: on a bad shape, dtype, negative scale or non-positive ``levels``.
    """
    _check_image(img)
    scale = _per_image(scale, img, 'scale')
    gray = _gray_mask(gray, img)
    if levels <= 0:
        raise ValueError(f'levels must be > 0, got {levels}')
    q = _quantise(img)
    noise = torch.poisson(q * levels, generator=generator) / levels - q
    if bool(gray.any()):
        q_gray = _quantise(_to_gray(img))
        noise_gray = torch.poisson(q_gray * levels, generator=generator) / levels - q_gray
        noise = torch.where(gray.view(-1, 1, 1, 1), noise_gray.expand_as(noise), noise)
    return _finish(img + noise * scale.view(-1, 1, 1, 1), clip, rounds)


def poisson_noise_level(img: Tensor,
                        scale: Tensor | float,
                        gray: Tensor | bool | None = None,
                        *,
                        levels: float = DEFAULT_POISSON_LEVELS) -> Tensor:
    """Expected RMS std of :func:`add_poisson_noise` per image (before clipping): ``scale * sqrt(mean(q) / levels)``.

    Args:
        img: (B, C, H, W) float image in [0, 1] (the clean image the noise is added to).
        scale: (B,) or scalar noise multiplier, >= 0.
        gray: (B,) bool or scalar; True measures the luma image's mean.
        levels: counts per unit intensity, as in :func:`add_poisson_noise`.

    Returns:
        (B,) std in [0, 1] intensity units, same dtype as ``img``.
    """
    _check_image(img)
    scale = _per_image(scale, img, 'scale')
    gray = _gray_mask(gray, img)
    mean_color = _quantise(img).mean(dim=(1, 2, 3))
    mean_gray = _quantise(_to_gray(img)).mean(dim=(1, 2, 3)) if bool(gray.any()) else mean_color
    return scale * (torch.where(gray, mean_gray, mean_color) / levels).sqrt()


def _check_prob(opt: Mapping[str, Any], key: str) -> float:
    value = opt[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f'noise option {key!r} must be a probability in [0, 1], got {value!r}')
    return float(value)


def _check_range(opt: Mapping[str, Any], key: str, upper: float) -> tuple[float, float]:
    value = opt[key]
    ok = (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok or not 0.0 <= value[0] <= value[1] <= upper:
        raise ValueError(f'noise option {key!r} must be [low, high] with 0 <= low <= high <= {upper:g}, got {value!r}')
    return float(value[0]), float(value[1])


def sample_noise_params(batch: int,
                        opt: Mapping[str, Any] | None = None,
                        generator: torch.Generator | None = None,
                        *,
                        device: torch.device | str = 'cpu') -> NoiseParams:
    """Draws per-image noise parameters: Gaussian with ``gaussian_prob``, Poisson with ``poisson_prob``, else none.

    Args:
        batch: number of images B >= 1.
        opt: options dict; missing keys take ``NOISE_OPT_DEFAULTS``:
            ``gaussian_prob`` (float in [0, 1]), ``gaussian_sigma_range`` ([low, high] std in 0-255 units, <= 255),
            ``poisson_prob`` (float in [0, 1], ``gaussian_prob + poisson_prob <= 1``),
            ``poisson_scale_range`` ([low, high], >= 0), ``gray_prob`` (float in [0, 1]).
        generator: generator on ``device``. Four (B,) uniform vectors are always drawn, in a fixed order, so the same
            seed gives the same parameters whatever the probabilities are.
        device: device of the returned tensors.

    Returns:
        :class:`NoiseParams` with float32 (B,) ``gaussian_sigma`` (in [0, 1] units) and ``poisson_scale``, bool
        ``gray``.

    Raises:
        ValueError: naming the bad key or value.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f'batch must be a positive int, got {batch!r}')
    opt = dict(NOISE_OPT_DEFAULTS if opt is None else {**NOISE_OPT_DEFAULTS, **opt})
    unknown = sorted(set(opt) - set(NOISE_OPT_DEFAULTS))
    if unknown:
        raise ValueError(f'unknown noise option(s) {unknown}; allowed: {sorted(NOISE_OPT_DEFAULTS)}')
    p_gauss, p_poisson, p_gray = (_check_prob(opt, key) for key in ('gaussian_prob', 'poisson_prob', 'gray_prob'))
    if p_gauss + p_poisson > 1.0 + 1e-9:
        raise ValueError(f"noise options 'gaussian_prob' + 'poisson_prob' = {p_gauss + p_poisson:g} > 1")
    sigma_lo, sigma_hi = _check_range(opt, 'gaussian_sigma_range', 255.0)
    scale_lo, scale_hi = _check_range(opt, 'poisson_scale_range', float('inf'))

    draws = torch.rand(4, batch, generator=generator, device=device)
    kind, u_sigma, u_scale, u_gray = draws
    is_gauss = kind < p_gauss
    is_poisson = (kind >= p_gauss) & (kind < p_gauss + p_poisson)
    sigma = (sigma_lo + (sigma_hi - sigma_lo) * u_sigma) / 255.0
    scale = scale_lo + (scale_hi - scale_lo) * u_scale
    zero = torch.zeros_like(sigma)
    return NoiseParams(gaussian_sigma=torch.where(is_gauss, sigma, zero),
                       poisson_scale=torch.where(is_poisson, scale, zero),
                       gray=u_gray < p_gray)


def apply_noise(img: Tensor,
                params: NoiseParams,
                generator: torch.Generator | None = None,
                *,
                noise: Tensor | None = None,
                clip: bool = True,
                rounds: bool = False) -> tuple[Tensor, Tensor]:
    """Applies sampled :class:`NoiseParams` and returns the per-image noise level the model conditions on.

    Args:
        img: (B, C, H, W) float image in [0, 1].
        params: from :func:`sample_noise_params` (tensors on any device; moved to ``img.device``).
        generator: generator on ``img.device``; the Gaussian noise is drawn first, then the Poisson counts.
        noise: optional (B, C, H, W) standard-normal noise for the Gaussian part (see :func:`add_gaussian_noise`).
        clip: clamp the result to [0, 1].
        rounds: quantise the result to multiples of 1/255.

    Returns:
        ``(noisy, level)``: noisy (B, C, H, W); level (B,) noise std in [0, 1] units, 0 for noise-free images
        (Gaussian: sigma; Poisson: :func:`poisson_noise_level`).
    """
    sigma = params.gaussian_sigma.to(device=img.device, dtype=img.dtype)
    scale = params.poisson_scale.to(device=img.device, dtype=img.dtype)
    gray = params.gray.to(img.device)
    out = add_gaussian_noise(img, sigma, gray, generator, noise=noise, clip=False)
    if bool((scale > 0).any()):
        out = add_poisson_noise(out, scale, gray, generator, clip=False)
    level = torch.where(sigma > 0, sigma, poisson_noise_level(img, scale, gray))
    return _finish(out, clip, rounds), level
