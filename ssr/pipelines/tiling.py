"""Overlapping tiles blended with Gaussian weights, for large images: latent tiles (tiled denoising and decoding
in :class:`~ssr.pipelines.ssr_pipeline.SSRPipeline`) and pixel tiles (any tensor-to-fields model, e.g. the
inference script).

Approach (chosen as the simplest one that is exact where it can be): the condition features ``[f1, f2, f3]`` are
encoded **once on the whole image** and each tile reads the matching crop of every level (level l has stride 2**l),
so a tile sees exactly the features of the untiled run; only the UNet itself (GroupNorm statistics, attention) sees a
tile instead of the whole latent. Tile origins and sizes are multiples of ``multiple`` = 2**(n-1) (the UNet's
downsampling), which makes the crops of every level integral. Overlapping predictions are blended with separable
Gaussian windows (MultiDiffusion-style averaging, Bar-Tal et al. 2023, Eq. 3 with per-pixel weights) by one
:class:`GaussianBlender`, whatever the tiles hold. An input that fits into one tile is processed in a single call,
so tiling is then bit-identical to untiled processing.

Notation: B batch, C channels, (h, w) size of the tiled input (latent or LR px), T tile side, O overlap, f the grid
factor of a field relative to the tiled input (the first stage's downscale for decoded latents, the scale s for an SR
image, 1 for a kernel field on the LR grid).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from ssr.archs.amf_unet_arch import AMFUNetOutput

__all__ = ['GaussianBlender', 'TiledUNet', 'gaussian_window', 'tile_origins', 'tiled_decode', 'tiled_denoise',
           'tiled_fields']

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


class GaussianBlender:
    """Gaussian-weighted average of overlapping tiles of one field.

    A tile cut at ``(y, x)`` with size ``(th, tw)`` from a ``(h, w)`` input yields a field tile of
    ``(B, C, th * f, tw * f)``; f is read from the first tile and must be the same integer for every tile.

    Args:
        height, width: (h, w) of the tiled input.
    """

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.factor = self.acc = self.norm = None

    def add(self, tile: Tensor, y: int, x: int, th: int, tw: int) -> None:
        """Adds ``tile`` (B, C, th * f, tw * f), the field of the input crop ``[y, y + th) x [x, x + tw)``.

        Raises:
            ValueError: the tile is not on an integer multiple of the crop's grid, or not on the first tile's.
        """
        fh, fw = tile.shape[-2], tile.shape[-1]
        if self.factor is None:
            self.factor = fh // th
            if self.factor < 1 or fh != self.factor * th or fw != self.factor * tw:
                raise ValueError(f'a {fh}x{fw} field from a {th}x{tw} tile is not on an integer multiple grid')
            f = self.factor
            self.acc = tile.new_zeros((*tile.shape[:-2], self.height * f, self.width * f), dtype=torch.float32)
            self.norm = tile.new_zeros((self.height * f, self.width * f), dtype=torch.float32)
        f = self.factor
        if fh != f * th or fw != f * tw:
            raise ValueError(f'tile field of {fh}x{fw} does not match the {f}x grid of a {th}x{tw} tile')
        win = gaussian_window(fh, fw, device=tile.device)
        ys, xs = slice(y * f, (y + th) * f), slice(x * f, (x + tw) * f)
        self.acc[..., ys, xs] += tile.float() * win
        self.norm[ys, xs] += win

    def result(self) -> Tensor:
        """(B, C, h * f, w * f) float32 weighted average."""
        if self.acc is None:
            raise ValueError('GaussianBlender.result: no tile was added')
        return self.acc / self.norm


def _blend(tiles: list[tuple[int, int, int, int]], run: Callable[[int, int, int, int], Tensor], h: int,
           w: int) -> Tensor:
    """Gaussian-weighted average of ``run(y, x, th, tw)`` over ``tiles`` of an (h, w) input."""
    blender = GaussianBlender(h, w)
    for y, x, th, tw in tiles:
        blender.add(run(y, x, th, tw), y, x, th, tw)
    return blender.result()


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

    return _blend(tiles, run, h, w).to(z_t.dtype)


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

    out = _blend(tiles, run, h, w)
    if out.shape[-2:] != (h * downscale, w * downscale):
        raise ValueError(f'tiled_decode: the decoder gives a {tuple(out.shape[-2:])} image for a {(h, w)} latent, '
                         f'not downscale {downscale} times larger')
    return out


def tiled_fields(run: Callable[[Tensor], Mapping[str, Tensor | None]], x: Tensor, tile: int,
                 overlap: int) -> dict[str, Tensor | None]:
    """Runs ``run`` on overlapping pixel tiles of ``x`` and blends every field it returns with Gaussian weights.

    Args:
        run: ``x`` crop (B, C, th, tw) -> ``{name: (B, C_name, th * f_name, tw * f_name) or None}``, e.g. an SR image
            (f = s), a kernel field (f = 1) and a depth map; a fully convolutional model, so tiles may be processed
            independently.
        x: (B, C, h, w) input, e.g. an LR image in [0, 1].
        tile: tile side in px; 0 runs ``x`` whole.
        overlap: px shared by neighbouring tiles, 0 <= overlap < tile.

    Returns:
        ``{name: (B, C_name, h * f_name, w * f_name) float32 or None}``; exactly ``run(x)`` when ``x`` fits in one
        tile.

    Raises:
        ValueError: on a negative tile or an overlap outside [0, tile).
    """
    if tile < 0 or overlap < 0 or (tile and overlap >= tile):
        raise ValueError(f'need tile >= 0 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}')
    h, w = x.shape[-2:]
    if not tile or (h <= tile and w <= tile):
        return dict(run(x))
    blenders: dict[str, GaussianBlender | None] = {}
    for y, x0, th, tw in _tiles(h, w, tile, overlap, 1):
        for name, field in run(x[..., y:y + th, x0:x0 + tw]).items():
            if field is None:
                blenders.setdefault(name, None)
                continue
            if blenders.get(name) is None:
                blenders[name] = GaussianBlender(h, w)
            blenders[name].add(field, y, x0, th, tw)
    return {name: None if b is None else b.result() for name, b in blenders.items()}


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
