"""The spatially variant degradation pipeline: kernel field -> SV blur + subsampling -> noise -> JPEG (paper Eq. 1).

:class:`SVDegradation` reads the ``degradation:`` block of an option file once, checks it, and then degrades batches
``(B, 3, H, W)`` on any device with a ``torch.Generator``. The same object runs in data workers (one image at a time,
CPU) and in a model's ``feed_data`` (whole batch, GPU), and writes the fixed test sets.

Option block (every key optional; defaults cover x4 blind SR with k = 21)::

    degradation:
      kernel_size: 21                  # odd, taps per side
      kernel:
        modes: [uniform, random, depth]  # kernel-field families, one drawn per image
        mode_prob: [0.2, 0.3, 0.5]
        sigma_range: [0.2, 4.0]        # Gaussian std in HR pixels (all modes)
        anisotropy_range: [0.5, 1.0]   # sigma2 / sigma1 (random, depth)
        kernel_list: [iso, aniso]      # uniform: shapes of ssr.ops.kernels.random_mixed_kernels
        kernel_prob: [0.5, 0.5]
        betag_range: [0.5, 4.0]        # uniform: generalized-Gaussian shape
        betap_range: [1.0, 2.0]        # uniform: plateau shape
        grid: 4                        # random: control points per side of the smooth parameter field
        motion_prob: 0.25              # depth: probability of a global motion term
        motion_sigma_range: [0.5, 2.0] # depth: motion std along its angle, HR pixels
        gaussian8_sigmas: [1.8, 3.2]   # gaussian8: DCLS test kernels, 8 isotropic widths in this range
      noise: {gaussian_prob: 0.5, gaussian_sigma_range: [1, 30], poisson_prob: 0.0, poisson_scale_range: [0.05, 3],
              gray_prob: 0.4}          # see ssr.ops.noise.sample_noise_params; gaussian_sigma_range in 0-255 units
      jpeg: {prob: 0.0, quality_range: [30, 95]}
      synthetic_depth_kinds: [plane, gradient, blobs]   # when no depth map is given
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ssr.ops.depth_utils import depth_to_lr_grid
from ssr.ops.gaussian_field_blur import gaussian_field_blur_downsample, native_applies
from ssr.ops.jpeg import jpeg_compress, sample_jpeg_quality
from ssr.ops.kernel_field import (kernel_field_from_params, sample_depth_kernel_params, sample_smooth_params,
                                   uniform_kernel_field)
from ssr.ops.kernels import KERNEL_TYPES, isotropic_gaussian_kernels, random_mixed_kernels
from ssr.ops.layered_scene import LayeredScene, layered_blur_downsample
from ssr.ops.noise import apply_noise, sample_noise_params
from ssr.ops.sv_blur import sv_blur_downsample, uniform_blur_downsample
from ssr.ops.synthetic_depth import DEPTH_KINDS, synthetic_depth

KERNEL_MODES = ('uniform', 'random', 'depth', 'gaussian8')
UNIFORM_MODES = ('uniform', 'gaussian8')  # one kernel per image: blurred by a strided convolution
KERNEL_DEFAULTS: dict[str, Any] = {
    'modes': ['uniform', 'random', 'depth'], 'mode_prob': [0.2, 0.3, 0.5], 'sigma_range': [0.2, 4.0],
    'anisotropy_range': [0.5, 1.0], 'kernel_list': ['iso', 'aniso'], 'kernel_prob': [0.5, 0.5],
    'betag_range': [0.5, 4.0], 'betap_range': [1.0, 2.0], 'grid': 4, 'motion_prob': 0.25,
    'motion_sigma_range': [0.5, 2.0], 'gaussian8_sigmas': [1.8, 3.2]}
TOP_KEYS = ('kernel_size', 'kernel', 'noise', 'jpeg', 'synthetic_depth_kinds')
NO_NOISE = {'gaussian_prob': 0.0, 'poisson_prob': 0.0}
NO_JPEG = {'prob': 0.0, 'quality_range': [95, 95]}


def _runs(pick: Tensor) -> list[tuple[int, int]]:
    """``[(i0, i1), ...]``: the maximal runs of consecutive True entries of a (B,) bool tensor."""
    runs, start = [], None
    for i, flag in enumerate(pick.tolist() + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


class SVDegradation:
    """Samples and applies depth-driven spatially variant degradations.

    Args:
        opt: the ``degradation`` option block (see module docstring); ``None`` = defaults.
        scale: s, the subsampling factor.
        source: where ``opt`` came from, named in error messages (e.g. ``'train.yml: datasets.train.degradation'``).

    Raises:
        ValueError: an unknown key, mode or kernel shape, probabilities of the wrong length, an even kernel size.
    """

    def __init__(self, opt: Mapping[str, Any] | None = None, scale: int = 4, source: str = 'degradation'):
        opt = copy.deepcopy(dict(opt or {}))
        unknown = sorted(set(opt) - set(TOP_KEYS))
        if unknown:
            raise ValueError(f'{source}: unknown key(s) {unknown}; allowed: {list(TOP_KEYS)}')
        self.scale, self.source = int(scale), source
        self.kernel_size = int(opt.get('kernel_size', 21))
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f'{source}.kernel_size must be odd and >= 3, got {self.kernel_size}')
        kernel = dict(opt.get('kernel') or {})
        unknown = sorted(set(kernel) - set(KERNEL_DEFAULTS))
        if unknown:
            raise ValueError(f'{source}.kernel: unknown key(s) {unknown}; allowed: {sorted(KERNEL_DEFAULTS)}')
        self.kernel = {**KERNEL_DEFAULTS, **kernel}
        modes, probs = list(self.kernel['modes']), [float(p) for p in self.kernel['mode_prob']]
        if 'modes' in kernel and 'mode_prob' not in kernel:
            probs = [1.0 / len(modes)] * len(modes)
        for mode in modes:
            if mode not in KERNEL_MODES:
                raise ValueError(f'{source}.kernel.modes: {mode!r} not in {KERNEL_MODES}')
        if len(probs) != len(modes) or any(p < 0 for p in probs) or sum(probs) <= 0:
            raise ValueError(f'{source}.kernel.mode_prob must hold {len(modes)} non-negative numbers, got {probs}')
        for name in self.kernel['kernel_list']:
            if name not in KERNEL_TYPES:
                raise ValueError(f'{source}.kernel.kernel_list: {name!r} not in {KERNEL_TYPES}')
        self.modes, self.mode_prob = modes, torch.tensor(probs, dtype=torch.float64) / sum(probs)
        self.noise_opt = dict(NO_NOISE if opt.get('noise') is None else opt['noise'])
        self.jpeg_opt = {**NO_JPEG, **(opt.get('jpeg') or {})}
        unknown = sorted(set(self.jpeg_opt) - set(NO_JPEG))
        if unknown:
            raise ValueError(f'{source}.jpeg: unknown key(s) {unknown}; allowed: {sorted(NO_JPEG)}')
        self.depth_kinds = tuple(opt.get('synthetic_depth_kinds', DEPTH_KINDS))
        # fail now, not at the first batch: sample once with the checks of the samplers themselves
        sample_noise_params(1, self.noise_opt)
        sample_jpeg_quality(1, float(self.jpeg_opt['prob']), list(self.jpeg_opt['quality_range']))

    # ------------------------------------------------------------------------------------------------------------
    def sample_kernel_field(self, depth_lr: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw one kernel-field family per image and build the field.

        Args:
            depth_lr: (B, 1, h, w) depth on the LR grid in [0, 1] (drives the ``depth`` mode).
            generator: on ``depth_lr.device``. Every family's parameters are drawn for the whole batch in a fixed
                order, so an image's draws do not depend on the other images' families.

        Returns:
            ``(kernels (B, k*k, h, w) summing to 1 over dim 1, mode (B,) int64 index into self.modes)``.
        """
        field, mode, _, _ = self._kernel_field(depth_lr, generator)
        return field, mode

    def _kernel_field(self, depth_lr: Tensor, generator: torch.Generator | None,
                      gt: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """:meth:`sample_kernel_field` (the same draws in the same order), and with ``gt`` (B, C, H, W) also the
        blur of the Gaussian-family images (``random``, ``depth``) where the fused native kernel applies (CPU
        float32, ``ssr.ops.gaussian_field_blur``), which builds their field and blurs with it in one pass.

        Returns:
            ``(kernels, mode, lq, done)``: ``lq`` (B, C, H/s, W/s) holds the blurred images where ``done`` (B,)
            is True (its other rows are uninitialised); both ``None`` without ``gt`` or the native kernel.
        """
        b, _, h, w = depth_lr.shape
        dev, k, s, opt = depth_lr.device, self.kernel_size, self.scale, self.kernel
        sigma_range = tuple(opt['sigma_range'])
        u = torch.rand(b, generator=generator, device=dev, dtype=torch.float64)
        mode = torch.searchsorted(self.mode_prob.to(dev).cumsum(0), u, right=True).clamp(max=len(self.modes) - 1)
        field = torch.empty(b, k * k, h, w, device=dev)
        lq = done = None
        if gt is not None and field.dtype == torch.float32 and native_applies(gt, field):
            lq = gt.new_empty(b, gt.shape[1], h, w)
            done = torch.zeros(b, dtype=torch.bool)
        for i, name in enumerate(self.modes):
            # every family's parameters are drawn for the whole batch (the draws of an image do not depend on the
            # other images' families); only the images of this family are built, straight into their rows of
            # `field` (no masked copies: `field[pick] = x` costs more than building the field)
            if name == 'uniform':
                kernels, _ = random_mixed_kernels(
                    b, opt['kernel_list'], opt['kernel_prob'], sigma_range, betag_range=tuple(opt['betag_range']),
                    betap_range=tuple(opt['betap_range']), generator=generator, kernel_size=k, scale=s, device=dev)
                for i0, i1 in _runs(mode == i):
                    field[i0:i1].copy_(uniform_kernel_field(kernels[i0:i1], h, w))
            elif name == 'gaussian8':
                low, high = opt['gaussian8_sigmas']
                index = torch.randint(0, 8, (b,), generator=generator, device=dev)
                sigma = low + (high - low) * index.float() / 7.0
                for i0, i1 in _runs(mode == i):
                    field[i0:i1].copy_(uniform_kernel_field(isotropic_gaussian_kernels(sigma[i0:i1], k, s), h, w))
            else:
                if name == 'random':
                    params = sample_smooth_params(b, h, w, sigma_range, tuple(opt['anisotropy_range']), generator,
                                                  grid=int(opt['grid']), device=dev)
                else:  # depth
                    params, _ = sample_depth_kernel_params(depth_lr, sigma_range, tuple(opt['anisotropy_range']),
                                                           float(opt['motion_prob']),
                                                           tuple(opt['motion_sigma_range']), generator)
                for i0, i1 in _runs(mode == i):
                    sigma1, sigma2, theta = (params[n][i0:i1] for n in ('sigma1', 'sigma2', 'theta'))
                    if done is None:
                        kernel_field_from_params(sigma1, sigma2, theta, k, s, out=field[i0:i1])
                    else:  # the field and the blur in one pass
                        lq[i0:i1], _ = gaussian_field_blur_downsample(gt[i0:i1], sigma1, sigma2, theta, k, s,
                                                                      out=field[i0:i1])
                        done[i0:i1] = True
        return field, mode, lq, done

    def __call__(self, gt: Tensor, depth: Tensor | None = None,
                 generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Degrade a batch.

        Args:
            gt: (B, C, H, W) float32 in [0, 1]; H and W multiples of the scale.
            depth: (B, 1, H, W) relative inverse depth in [0, 1], or ``None`` for synthetic depth.
            generator: on ``gt.device``; the only source of randomness.

        Returns:
            dict with ``lq`` (B, C, H/s, W/s) in [0, 1], ``kernel`` (B, k*k, H/s, W/s), ``depth`` (B, 1, H, W),
            ``noise_level`` (B,) std in [0, 1] units, ``jpeg_quality`` (B,) (100 = none), ``mode`` (B,).
        """
        if gt.dim() != 4:
            raise ValueError(f'gt must be (B, C, H, W), got {tuple(gt.shape)}')
        b, _, hh, ww = gt.shape
        if hh % self.scale or ww % self.scale:
            raise ValueError(f'image size {hh}x{ww} is not a multiple of the scale {self.scale}: mod-crop it first')
        if depth is None:
            depth = synthetic_depth(b, hh, ww, generator, self.depth_kinds, device=gt.device)
        elif depth.shape != (b, 1, hh, ww):
            raise ValueError(f'depth must be {(b, 1, hh, ww)} to match gt, got {tuple(depth.shape)}')
        h, w = hh // self.scale, ww // self.scale
        kernels, mode, lq, done = self._kernel_field(depth_to_lr_grid(depth, h, w), generator, gt)
        if done is None or not done.any():
            lq = self.blur_downsample(gt, kernels.to(gt.dtype), mode)
        else:  # the Gaussian-family images are blurred already
            for i0, i1 in _runs(~done):
                lq[i0:i1] = self.blur_downsample(gt[i0:i1], kernels[i0:i1].to(gt.dtype), mode[i0:i1])
        return self._noise_and_jpeg(lq, kernels, depth, mode, generator)

    def blur_downsample(self, gt: Tensor, kernels: Tensor, mode: Tensor) -> Tensor:
        """``sv_blur_downsample(gt, kernels, scale)``, with the images of a uniform family (``uniform``,
        ``gaussian8``: one kernel everywhere) blurred by one strided convolution instead of the SV operator.

        Args:
            gt: (B, C, H, W); kernels: (B, k*k, H/s, W/s) of ``gt``'s dtype; mode: (B,) index into ``self.modes``.

        Returns:
            (B, C, H/s, W/s), equal to the SV operator's result up to float summation order.
        """
        uniform = torch.tensor([self.modes[m] in UNIFORM_MODES for m in mode.tolist()], dtype=torch.bool)
        if not uniform.any():
            return sv_blur_downsample(gt, kernels, self.scale)
        b, c, hh, ww = gt.shape
        k, s = self.kernel_size, self.scale
        lq = gt.new_empty(b, c, hh // s, ww // s)
        for i0, i1 in _runs(uniform):
            lq[i0:i1] = uniform_blur_downsample(gt[i0:i1], kernels[i0:i1, :, 0, 0].reshape(-1, k, k), s)
        for i0, i1 in _runs(~uniform):
            lq[i0:i1] = sv_blur_downsample(gt[i0:i1], kernels[i0:i1], s)
        return lq

    def _noise_and_jpeg(self, lq: Tensor, kernels: Tensor, depth: Tensor, mode: Tensor,
                        generator: torch.Generator | None) -> dict[str, Tensor]:
        b = lq.shape[0]
        noise_params = sample_noise_params(b, self.noise_opt, generator, device=lq.device)
        lq, noise_level = apply_noise(lq.clamp(0, 1), noise_params, generator)
        quality, mask = sample_jpeg_quality(b, float(self.jpeg_opt['prob']), list(self.jpeg_opt['quality_range']),
                                            generator, device=lq.device)
        if mask.any():
            lq = jpeg_compress(lq, quality, mask=mask)
        return {'lq': lq.clamp(0, 1), 'kernel': kernels, 'depth': depth, 'noise_level': noise_level,
                'jpeg_quality': torch.where(mask, quality, torch.full_like(quality, 100)), 'mode': mode}

    def degrade_layered(self, scene: LayeredScene, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Degrade a layered scene (``ssr.ops.layered_scene``): thin-lens defocus per layer with occlusions.

        The camera (focus, sigma range from ``kernel.sigma_range``, astigmatism, optional motion with
        ``kernel.motion_prob``) is drawn per image as in the ``depth`` mode and shared by the image's layers; the
        ``modes`` / ``mode_prob`` draw does not apply. Noise and JPEG as in :meth:`__call__`.

        Args:
            scene: HR size a multiple of the scale.
            generator: on the scene's device; the only source of randomness.

        Returns:
            as :meth:`__call__`, with ``depth`` the scene's composite depth, ``kernel`` the front-most layer's
            field at each LR pixel and ``mode`` (B,) filled with -1 (layered).
        """
        b, _, _, hh, ww = scene.layers.shape
        if hh % self.scale or ww % self.scale:
            raise ValueError(f'scene size {hh}x{ww} is not a multiple of the scale {self.scale}: mod-crop it first')
        opt = self.kernel
        _, settings = sample_depth_kernel_params(
            depth_to_lr_grid(scene.depth, 1, 1), tuple(opt['sigma_range']), tuple(opt['anisotropy_range']),
            float(opt['motion_prob']), tuple(opt['motion_sigma_range']), generator)
        lq, kernels = layered_blur_downsample(scene, settings, self.kernel_size, self.scale)
        mode = torch.full((b,), -1, dtype=torch.int64, device=lq.device)
        return self._noise_and_jpeg(lq, kernels, scene.depth, mode, generator)
