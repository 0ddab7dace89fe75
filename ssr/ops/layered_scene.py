"""Layered scenes: content-aligned depth for synthetic training and test data, and their thin-lens defocus.

A scene is composed of ``L`` layers of real photo crops, ordered far to near. Layer 0 (the background) covers the
whole image; every nearer layer is cut by a random star-shaped mask and occludes the layers behind it. Each layer
is a slightly slanted plane in relative inverse depth, so the composite depth map has its edges exactly where the
image has its occlusion edges -- the alignment a monocular depth estimator relies on and that independently drawn
depth fields (``ssr.ops.synthetic_depth``) lack.

Defocus follows the thin lens: the blur std grows with ``|d - d_focus|`` in relative inverse depth (the circle of
confusion is proportional to ``|1/Z - 1/Z_f|``; see ``ssr.ops.kernel_field.depth_to_kernel_params``). Occlusions
are rendered as layered depth of field: each layer's premultiplied colour and its alpha are blurred with that
layer's own kernel field, and the results are composited back to front with the *blurred* alpha
(``out = c_l + (1 - a_l) * out``). A defocused near layer therefore spreads softly over a sharp far one, and a far
layer never leaks a sharp halo over a near one -- the standard approximation of partial occlusion.

Notation: B batch, L layers (maximum; images may use fewer), H x W HR size, s scale, K kernel size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ssr.ops._checks import _uniform
from ssr.ops.depth_utils import depth_to_lr_grid
from ssr.ops.kernel_field import depth_to_kernel_params, kernel_field_from_params
from ssr.ops.sv_blur import sv_blur_downsample

__all__ = ['LayeredScene', 'random_shape_masks', 'compose_layered_scene', 'layered_blur_downsample']

_HARMONICS = 4  # star-shape harmonics 2..5


@dataclass
class LayeredScene:
    """A composed scene.

    Attributes:
        layers: (B, L, 3, H, W) float in [0, 1], the photo of each layer, far to near.
        alpha: (B, L, 1, H, W) in {0, 1}; layer 0 is all ones, unused layers are all zeros.
        layer_depth: (B, L, 1, H, W) relative inverse depth of each layer's plane in [0, 1] (near = 1), defined over
            the whole image (also where the layer is hidden), on the composite's normalisation.
        image: (B, 3, H, W) the sharp composite (alpha over, back to front).
        depth: (B, 1, H, W) the composite's depth in [0, 1], spanning [0, 1] per image.
    """

    layers: Tensor
    alpha: Tensor
    layer_depth: Tensor
    image: Tensor
    depth: Tensor


def random_shape_masks(batch: int, height: int, width: int, generator: torch.Generator | None = None, *,
                       area_range: tuple[float, float] = (0.06, 0.35), dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Random star-shaped masks: ``r(phi) = r0 (1 + sum_k a_k cos(k phi + p_k))``, stretched and rotated.

    Args:
        batch: number of masks.
        height, width: mask size, >= 1.
        generator: the only source of randomness (draws on its device).
        area_range: fraction of the image the unstretched disc of radius r0 would cover.

    Returns:
        ``(masks (batch, 1, H, W) in {0, 1}, centres (batch, 2) as (x, y) in [0, 1] image coordinates)``.
    """
    if height < 1 or width < 1:
        raise ValueError(f'height and width must be >= 1, got {(height, width)}')
    area = _uniform((batch,), area_range, generator)
    radius = torch.sqrt(area / math.pi)  # in units of the image's geometric mean side
    centre = _uniform((batch, 2), (0.15, 0.85), generator)
    stretch = torch.exp(_uniform((batch,), (-0.5, 0.5), generator))
    rotation = _uniform((batch,), (0.0, math.pi), generator)
    amplitude = _uniform((batch, _HARMONICS), (0.0, 0.18), generator)
    phase = _uniform((batch, _HARMONICS), (0.0, 2 * math.pi), generator)
    to = {'dtype': dtype, 'device': device}
    area, radius, centre, stretch, rotation, amplitude, phase = (
        t.to(**to) for t in (area, radius, centre, stretch, rotation, amplitude, phase))
    aspect = math.sqrt(width / height)
    ys = (torch.arange(height, **to) + 0.5) / height
    xs = (torch.arange(width, **to) + 0.5) / width
    dx = (xs.view(1, 1, width) - centre[:, 0, None, None]) * aspect
    dy = (ys.view(1, height, 1) - centre[:, 1, None, None]) / aspect
    cos, sin = torch.cos(rotation)[:, None, None], torch.sin(rotation)[:, None, None]
    u = (cos * dx + sin * dy) / stretch[:, None, None]
    v = (-sin * dx + cos * dy) * stretch[:, None, None]
    phi, dist = torch.atan2(v, u), torch.hypot(u, v)
    k = torch.arange(2, 2 + _HARMONICS, **to).view(1, _HARMONICS, 1, 1)
    wobble = (amplitude[..., None, None] * torch.cos(k * phi[:, None] + phase[..., None, None])).sum(1)
    masks = (dist <= radius[:, None, None] * (1 + wobble)).to(dtype)
    return masks[:, None], centre


def compose_layered_scene(layers: Tensor, generator: torch.Generator | None = None, *, min_layers: int = 2,
                          slant: float = 0.15) -> LayeredScene:
    """Compose a scene from ``L`` photos: depth planes, occlusion masks, the sharp composite and its depth.

    Per image: the number of layers n ~ U{min_layers, ..., L} (layers >= n are unused); depths are L sorted draws
    from U(0, 1), far to near; each layer's plane tilts by up to ``slant`` per image width / height around its mask
    centre (the background's by twice that); the composite depth is normalised to [0, 1] and the same affine map is
    applied to every layer's plane (clamped to [0, 1]).

    Args:
        layers: (B, L, 3, H, W) photos in [0, 1], L >= 1; layer 0 is the background.
        generator: the only source of randomness.
        min_layers: fewest layers an image uses, in [1, L].
        slant: the largest tilt of a plane, in relative inverse depth per image side, >= 0.

    Returns:
        :class:`LayeredScene`.

    Raises:
        ValueError: on a wrong shape or ``min_layers`` outside [1, L].
    """
    if layers.dim() != 5 or layers.shape[2] != 3:
        raise ValueError(f'layers must be (B, L, 3, H, W), got {tuple(layers.shape)}')
    b, count, _, h, w = layers.shape
    if not 1 <= min_layers <= count:
        raise ValueError(f'min_layers must lie in [1, {count}] (the number of layers given), got {min_layers}')
    if slant < 0:
        raise ValueError(f'slant must be >= 0, got {slant}')
    to = {'dtype': layers.dtype, 'device': layers.device}
    used = (_uniform((b,), (min_layers, count + 1), generator).floor().clamp_max(count)).to(**to)
    base = _uniform((b, count), (0.0, 1.0), generator).sort(dim=1).values.to(**to)
    tilt = _uniform((b, count, 2), (-slant, slant), generator).to(**to)
    tilt[:, 0] *= 2
    masks, centres = random_shape_masks(b * count, h, w, generator, dtype=layers.dtype, device=layers.device)
    alpha = masks.view(b, count, 1, h, w).clone()
    centres = centres.view(b, count, 2)
    alpha[:, 0] = 1
    alpha *= (torch.arange(count, **to).view(1, count) < used.view(b, 1)).view(b, count, 1, 1, 1)

    ys = ((torch.arange(h, **to) + 0.5) / h).view(1, 1, 1, h, 1)
    xs = ((torch.arange(w, **to) + 0.5) / w).view(1, 1, 1, 1, w)
    centres = centres.to(**to)
    plane = (base[..., None, None, None] + tilt[..., 0, None, None, None] * (xs - centres[..., 0, None, None, None])
             + tilt[..., 1, None, None, None] * (ys - centres[..., 1, None, None, None]))  # (B, L, 1, H, W)

    image, depth = layers[:, 0], plane[:, 0]
    for i in range(1, count):  # back to front
        a = alpha[:, i]
        image = a * layers[:, i] + (1 - a) * image
        depth = a * plane[:, i] + (1 - a) * depth
    low = depth.amin(dim=(1, 2, 3), keepdim=True)
    span = (depth.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
    depth = ((depth - low) / span).clamp(0, 1)
    plane = ((plane - low[:, None]) / span[:, None]).clamp(0, 1)
    return LayeredScene(layers=layers, alpha=alpha, layer_depth=plane, image=image, depth=depth)


def layered_blur_downsample(scene: LayeredScene, settings: dict[str, Tensor], kernel_size: int,
                            scale: int) -> tuple[Tensor, Tensor]:
    """Thin-lens defocus of a layered scene with occlusions, then s-fold subsampling (Eq. 1 per layer).

    Args:
        scene: the composed scene, HR size a multiple of ``scale``.
        settings: per-image camera settings, each (B,): ``focus``, ``sigma_min``, ``sigma_max``, ``anisotropy``,
            ``theta``, ``motion_sigma``, ``motion_angle`` (the ``settings`` of
            ``ssr.ops.kernel_field.sample_depth_kernel_params``), shared by every layer of an image.
        kernel_size: K, odd.
        scale: s.

    Returns:
        ``(lr (B, 3, H/s, W/s), kernel (B, K*K, H/s, W/s))``: the composited LR image and, per LR pixel, the kernel
        of the front-most layer covering at least half of the pixel's s x s block (the field a kernel estimator
        should recover).
    """
    b, count, _, hh, ww = scene.layers.shape
    h, w = hh // scale, ww // scale
    flat_depth = depth_to_lr_grid(scene.layer_depth.flatten(0, 1), h, w)  # (B*L, 1, h, w)
    repeated = {key: value.repeat_interleave(count) for key, value in settings.items()}
    params = depth_to_kernel_params(flat_depth, **repeated)
    # unused layers (alpha all 0: scenes with fewer than L layers) add nothing and are never front-most: only the
    # used ones get a field and a blur
    alpha = scene.alpha.flatten(0, 1)  # (B*L, 1, H, W)
    used = alpha.flatten(1).amax(dim=1) > 0
    used[::count] = True  # layer 0, the background, covers everything
    idx = used.nonzero().squeeze(1)
    fields = kernel_field_from_params(params['sigma1'][idx], params['sigma2'][idx], params['theta'][idx],
                                      kernel_size, scale)  # (N, K*K, h, w), N used layers
    premultiplied = torch.cat([scene.layers.flatten(0, 1) * alpha, alpha], dim=1)[idx]
    blurred = premultiplied.new_zeros(b * count, 4, h, w)
    blurred[idx] = sv_blur_downsample(premultiplied, fields.to(premultiplied.dtype), scale)
    blurred = blurred.view(b, count, 4, h, w)
    lr = blurred[:, 0, :3]
    for i in range(1, count):  # back to front with the blurred alpha
        lr = blurred[:, i, :3] + (1 - blurred[:, i, 3:]) * lr

    coverage = depth_to_lr_grid(alpha, h, w).view(b, count, h, w)
    ranks = torch.arange(count, device=coverage.device).view(1, count, 1, 1)
    front = torch.where(coverage >= 0.5, ranks, torch.zeros_like(ranks)).amax(dim=1)  # (B, h, w)
    position = torch.full((b * count,), -1, dtype=torch.int64, device=idx.device)
    position[idx] = torch.arange(idx.numel(), device=idx.device)  # flat layer -> its row of `fields`
    rows = position[front + count * torch.arange(b, device=front.device).view(b, 1, 1)]  # (B, h, w)
    index = rows[:, None].expand(b, kernel_size * kernel_size, h, w)
    kernel = torch.gather(fields, 0, index)
    return lr.clamp(0, 1), kernel
