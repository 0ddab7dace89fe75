"""Latent tiles with Gaussian-weighted overlap for large images: tiled denoising and tiled decoding.

Approach (chosen as the simplest one that is exact where it can be): the condition features ``[f1, f2, f3]`` are
encoded **once on the whole image** and each tile reads the matching crop of every level (level l has stride 2**l),
so a tile sees exactly the features of the untiled run; only the UNet itself (GroupNorm statistics, attention) sees a
tile instead of the whole latent. Tile origins and sizes are multiples of ``multiple`` = 2**(n-1) (the UNet's
downsampling), which makes the crops of every level integral. Overlapping predictions are blended with separable
Gaussian windows (MultiDiffusion-style averaging, Bar-Tal et al. 2023, Eq. 3 with per-pixel weights). A latent that
fits into one tile is processed in a single call, so tiling is then bit-identical to untiled sampling.

Notation: B batch, C latent channels, (h, w) latent size, T tile side (latent px), O overlap (latent px), f the first
stage's downscale.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ssr.archs.amf_unet_arch import AMFUNetOutput

__all__ = ['gaussian_window', 'tile_origins', 'tiled_denoise', 'tiled_decode', 'TiledUNet']

SIGMA_FRACTION = 0.25  # window std as a fraction of the tile side: weight ~0.14 at the edge, never zero


def gaussian_window(height: int, width: int, sigma_fraction: float = SIGMA_FRACTION,
                    device: torch.device | str | None = None) -> Tensor:
    """Separable Gaussian weights centred on the tile, peak 1.

    Args:
        height, width: tile size in pixels.
        sigma_fraction: standard deviation of each axis as a fraction of that axis' length.
        device: device of the result.

    Returns:
        (height, width) float32, in (0, 1].

    Raises:
        ValueError: on a non-positive size or ``sigma_fraction``.
    """
    if height < 1 or width < 1 or sigma_fraction <= 0:
        raise ValueError(f'gaussian_window: need positive sizes and sigma_fraction, got {(height, width)}, '
                         f'{sigma_fraction}')

    def axis(n: int) -> Tensor:
        x = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
        sigma_x = sigma_fraction * n
        return torch.exp(-0.5 * (x / sigma_x)**2)

    return axis(height)[:, None] * axis(width)[None, :]


def tile_origins(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``[0, length)`` with at least ``overlap`` shared pixels.

    The last tile is aligned to the end, so every tile lies inside the image. A length not longer than ``tile``
    gives one tile at 0 (the caller clips the tile to the length).

    Args:
        length: image side (px), a multiple of ``multiple``.
        tile: tile side (px), a multiple of ``multiple``.
        overlap: minimum overlap of neighbours (px), a multiple of ``multiple``, 0 <= overlap < tile.
        multiple: alignment of every origin.

    Returns:
        Ascending origins, all multiples of ``multiple``.

    Raises:
        ValueError: on sizes that are not multiples of ``multiple`` or an overlap outside [0, tile).
    """
    bad = {k: v for k, v in {'length': length, 'tile': tile, 'overlap': overlap}.items() if v % multiple}
    if bad or length < 1 or tile < 1:
        raise ValueError(f'tile_origins: {bad or (length, tile)} must be positive multiples of {multiple}')
    if not 0 <= overlap < tile:
        raise ValueError(f'tile_origins: overlap {overlap} not in [0, {tile})')
    if length <= tile:
        return [0]
    stride = tile - overlap
    origins = list(range(0, length - tile, stride)) + [length - tile]
    return origins


def _tiles(h: int, w: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int, int, int]]:
    """``(y, x, th, tw)`` of every tile; a side not longer than ``tile`` gets one tile clipped to it."""
    th, tw = min(tile, h), min(tile, w)
    return [(y, x, th, tw) for y in tile_origins(h, tile, overlap, multiple)
            for x in tile_origins(w, tile, overlap, multiple)]


def _blend(tiles: list[tuple[int, int, int, int]], run: Callable[[int, int, int, int], Tensor], out_shape: tuple,
           scale: int, like: Tensor) -> Tensor:
    """Gaussian-weighted average of ``run(y, x, th, tw)`` (output ``scale`` times the tile) over ``tiles``."""
    acc = like.new_zeros(out_shape, dtype=torch.float32)
    norm = like.new_zeros(out_shape[-2:], dtype=torch.float32)
    for y, x, th, tw in tiles:
        win = gaussian_window(th * scale, tw * scale, device=like.device)
        ys, xs = slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale)
        acc[..., ys, xs] += run(y, x, th, tw).float() * win
        norm[ys, xs] += win
    return acc / norm


def _crop_features(features: list[list[Tensor]], y: int, x: int, th: int, tw: int) -> list[list[Tensor]]:
    """Crops level l (stride 2**l) of every modality to the tile ``[y, y + th) x [x, x + tw)`` of the latent."""
    return [[f[..., y >> lvl:(y + th) >> lvl, x >> lvl:(x + tw) >> lvl] for lvl, f in enumerate(levels)]
            for levels in features]


def tiled_denoise(unet: nn.Module, z_t: Tensor, t: Tensor, z_lr: Tensor, features: list[list[Tensor]], tile: int,
                  overlap: int, multiple: int) -> Tensor:
    """epsilon_theta(z_t, t) computed on overlapping latent tiles and blended with Gaussian weights.

    Args:
        unet: an :class:`~ssr.archs.amf_unet_arch.AMFUNet` (``unet(z_t, t, z_lr, features=...) -> .sample``).
        z_t: (B, C, h, w) noisy latent; h, w multiples of ``multiple``.
        t: scalar or (B,) timestep.
        z_lr: (B, C_lr, h, w) LR latent.
        features: ``[f1, f2, f3]`` of the whole image, level l of shape (B, ch_l, h / 2**l, w / 2**l).
        tile: T, tile side in latent px (a multiple of ``multiple``).
        overlap: O, overlap in latent px (a multiple of ``multiple``, < T).
        multiple: 2**(n-1) of the UNet (n levels).

    Returns:
        (B, C, h, w) float32 blended prediction; exactly ``unet(...)`` when the latent fits in one tile.
    """
    h, w = z_t.shape[-2:]
    tiles = _tiles(h, w, tile, overlap, multiple)
    if len(tiles) == 1:
        return unet(z_t, t, z_lr, features=features).sample

    def run(y: int, x: int, th: int, tw: int) -> Tensor:
        crop = (..., slice(y, y + th), slice(x, x + tw))
        return unet(z_t[crop], t, z_lr[crop], features=_crop_features(features, y, x, th, tw)).sample

    return _blend(tiles, run, tuple(z_t.shape), 1, z_t).to(z_t.dtype)


def tiled_decode(decode: Callable[[Tensor], Tensor], z: Tensor, tile: int, overlap: int, downscale: int) -> Tensor:
    """Decodes ``z`` in overlapping latent tiles, blending the decoded tiles with Gaussian windows.

    Exact (up to float rounding of the weight normalisation) for a local decoder such as pixel-unshuffle; a VAE
    decoder sees only its tile, so seams are averaged away by the overlap.

    Args:
        decode: latent (B, C, th, tw) -> image (B, 3, th * f, tw * f).
        z: (B, C, h, w) latent.
        tile: tile side in latent px.
        overlap: overlap in latent px, < ``tile``.
        downscale: f of the first stage.

    Returns:
        (B, 3, h * f, w * f) float32; exactly ``decode(z)`` when the latent fits in one tile.
    """
    h, w = z.shape[-2:]
    tiles = _tiles(h, w, tile, overlap, 1)
    if len(tiles) == 1:
        return decode(z)

    def run(y: int, x: int, th: int, tw: int) -> Tensor:
        return decode(z[..., y:y + th, x:x + tw])

    return _blend(tiles, run, (z.shape[0], 3, h * downscale, w * downscale), downscale, z)


class TiledUNet:
    """Callable with the AMFUNet interface used by the sampler, evaluating the UNet with :func:`tiled_denoise`.

    Args:
        unet: the AMF-UNet.
        tile, overlap, multiple: see :func:`tiled_denoise`.
    """

    def __init__(self, unet: nn.Module, tile: int, overlap: int, multiple: int) -> None:
        self.unet, self.tile, self.overlap, self.multiple = unet, tile, overlap, multiple

    def __call__(self, z_t: Tensor, t: Tensor, z_lr: Tensor, features: list[list[Tensor]]) -> AMFUNetOutput:
        eps = tiled_denoise(self.unet, z_t, t, z_lr, features, self.tile, self.overlap, self.multiple)
        return AMFUNetOutput(sample=eps, features=features)
