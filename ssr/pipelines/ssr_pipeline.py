"""SSR's inference pipeline (paper §3.3): SVKR conditions, AMF-UNet sampling in a first-stage latent, decoding, colour
fix, callable on a tensor outside BasicSR (diffusers-style)::

    pipe = SSRPipeline.from_option_file('options/test_ssr_lite_x4.yml')
    out = pipe(lr)                      # lr (B, 3, h, w) in [0, 1]
    out.sr, out.blind_sr, out.kernel, out.depth

Notation (paper -> code): LR ``lq`` (B, 3, h, w), s = ``scale``; z_lr = E(bicubic_s(LR)) (B, C, H / f, W / f) with
the first stage E of downscale f; f1, f2, f3 = kernel, depth and LR encoder features; epsilon_theta = ``unet``
(:class:`~ssr.archs.amf_unet_arch.AMFUNet`); K^T, D^T, I^T the outputs of SVKR (Algorithm 1).

Kernel-consistent sampling (``sampler.consistency``, off by default): at the chosen sampler steps the predicted z_0
is decoded to an image x0_hat, moved towards ``S(K^T * x) = LR`` by :func:`~ssr.ops.consistency.consistent_projection`
(conjugate gradients with the exact adjoint, stopped at the discrepancy principle), encoded again (exact for the
pixel-unshuffle first stage, a decode / encode round trip for a VAE / VQ) and the scheduler continues from it.
"""
from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ssr.archs.amf import MODALITIES
from ssr.ops.color_correction import apply_color_fix
from ssr.ops.consistency import ConsistencyInfo, consistent_projection, estimate_noise_sigma
from ssr.pipelines.loading import network_from_options, option_file
from ssr.pipelines.sampling import SamplerConfig, diffusion_config, sample_latents
from ssr.pipelines.svkr import SVKR, SVKRConfig
from ssr.pipelines.tiling import TiledUNet, tiled_decode
from ssr.utils.options import OptionError

__all__ = ['CONDITION_SOURCES', 'SSROutput', 'SSRPipeline', 'SSRPipelineConfig']

CONDITION_SOURCES = ('data', 'svkr')


def _correct_residual(correct: Callable[[Tensor], Tensor], z_base: Tensor, scale: float, r: Tensor) -> Tensor:
    """A z_0 correction of images applied to a residual latent ``r`` = (z - z_base) * scale."""
    return (correct(z_base.to(r.dtype) + r / scale) - z_base.to(r.dtype)) * scale


@dataclass
class SSROutput:
    """Result of :class:`SSRPipeline`.

    Attributes:
        sr: (B, 3, s*h, s*w) in [0, 1], the SSR image.
        blind_sr: (B, 3, s*h, s*w), I^T of SVKR (the blind path), or ``None`` when the conditions were given.
        kernel: (B, k*k, h, w) kernel field the UNet was conditioned on (K^T, or the given one), or ``None`` when
            the UNet fuses no kernel (``amf_modalities``) and none was given or needed.
        depth: (B, 1, H', W') depth in [0, 1] the UNet was conditioned on (D^T, or the given one; H', W' are those of
            the depth source, e.g. (s*h, s*w) for MiDaS on I^T), or ``None`` when none was computed.
        consistency: one :class:`~ssr.ops.consistency.ConsistencyInfo` per corrected sampler step, in order (empty
            when ``sampler.consistency`` is off); residuals are those of the padded image the sampler works on.
    """

    sr: Tensor
    blind_sr: Tensor | None
    kernel: Tensor
    depth: Tensor | None
    consistency: list[ConsistencyInfo] = field(default_factory=list)


@dataclass(frozen=True)
class SSRPipelineConfig:
    """Every option of an SSR option file that the pipeline reads, parsed once.

    Attributes:
        scale: s.
        diffusion: the training schedule (:func:`~ssr.pipelines.sampling.diffusion_config`).
        sampler: the ``sampler`` block.
        source: ``conditions.source``: ``data`` (kernel and depth given to the call) or ``svkr``.
        svkr: the ``svkr`` block (also read from ``conditions``, the old spelling).
        bf16: ``train.bf16``: CUDA bfloat16 autocast.
        first_stage: the ``first_stage`` block, ``{kind, path, ...}``.
    """

    scale: int
    diffusion: dict
    sampler: SamplerConfig
    source: str
    svkr: SVKRConfig
    bf16: bool
    first_stage: dict

    @classmethod
    def from_options(cls, opt: Mapping, where: str = '<options>') -> SSRPipelineConfig:
        """Reads and checks the options before any network is built.

        Raises:
            ValueError: naming the bad key (``conditions.source``, ``svkr.*``, ``sampler.*``, ``diffusion.*``), or
                the networks that ``conditions.source: svkr`` lacks.
        """
        diffusion = diffusion_config(opt.get('diffusion'))
        conditions = opt.get('conditions') or {}
        if not isinstance(conditions, Mapping):
            raise OptionError(where, 'conditions', f'expected a mapping, got {conditions!r}')
        source = conditions.get('source', 'data')
        if source not in CONDITION_SOURCES:
            raise ValueError(f'conditions.source {source!r} not in {CONDITION_SOURCES}')
        svkr = SVKRConfig.from_options(opt, where)
        if source == 'svkr':
            missing = [k for k in ('network_e', 'network_sr') if k not in opt]
            if svkr.depth == 'midas' and 'network_d' not in opt:
                missing.append('network_d')
            if missing:
                raise ValueError(f'conditions.source: svkr needs {missing} (estimator, non-blind SR, depth for '
                                 f'svkr.depth: midas)')
        sampler = SamplerConfig.from_options(opt.get('sampler'), diffusion)
        if sampler.start_from == 'nbsr' and source != 'svkr':
            raise ValueError('sampler.start_from: nbsr needs conditions.source: svkr (the NBSR output I^T)')
        return cls(scale=int(opt.get('scale', 4)), diffusion=diffusion, sampler=sampler, source=source, svkr=svkr,
                   bf16=bool((opt.get('train') or {}).get('bf16', False)),
                   first_stage=dict(opt.get('first_stage') or {'kind': 'pixel_unshuffle'}))

    def build_first_stage(self):
        """The frozen first stage of ``first_stage`` (:func:`~ssr.archs.first_stage.load_first_stage`)."""
        from ssr.archs.first_stage import load_first_stage

        fs = dict(self.first_stage)
        return load_first_stage(fs.pop('kind'), fs.pop('path', None), **fs)


class SSRPipeline:
    """First stage + AMF-UNet + sampler + SVKR + latent tiling + colour fix.

    Args:
        unet: epsilon_theta, an :class:`~ssr.archs.amf_unet_arch.AMFUNet` (eval mode is the caller's choice).
        first_stage: the frozen first stage (``encode`` / ``decode``, ``latent_channels``, ``downscale``).
        config: the parsed options.
        estimator, sr_net, depth_net: SVKR's networks (KE, NBSR, DE) for ``conditions.source: svkr``; ``depth_net``
            only for ``svkr.depth: midas``.

    Raises:
        ValueError: the UNet's latent channels differ from the first stage's, the tiles are not multiples of the
            UNet's 2**(levels - 1), or SVKR's networks are missing for ``conditions.source: svkr``.
    """

    def __init__(self, unet: nn.Module, first_stage, config: SSRPipelineConfig, estimator: nn.Module | None = None,
                 sr_net: nn.Module | None = None, depth_net: nn.Module | None = None):
        cfg = unet.config
        lr_ch = cfg.lr_latent_channels or cfg.latent_channels
        if cfg.latent_channels != first_stage.latent_channels or lr_ch != first_stage.latent_channels:
            raise ValueError(f'network_g latent_channels {cfg.latent_channels} / lr_latent_channels {lr_ch} must '
                             f'equal the first stage\'s {first_stage.latent_channels} channels')
        self.latent_multiple = 2**(len(cfg.block_out_channels) - 1)
        tile, overlap = config.sampler.tile_size, config.sampler.tile_overlap
        if tile % self.latent_multiple or overlap % self.latent_multiple:
            raise ValueError(f'sampler.tile size {tile} / overlap {overlap} must be multiples '
                             f'of {self.latent_multiple} (2**(levels - 1) of network_g)')
        if config.source == 'svkr' and (estimator is None or sr_net is None):
            raise ValueError('conditions.source: svkr needs the estimator and the non-blind SR network')
        self.unet, self.first_stage, self.config = unet, first_stage, config
        self.estimator, self.sr_net, self.depth_net = estimator, sr_net, depth_net
        if config.sampler.channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self._compiled: tuple[nn.Module, nn.Module] | None = None  # (unet, its torch.compile wrapper)

    def sampling_unet(self) -> nn.Module:
        """The UNet the sampling loop calls: ``self.unet``, or its ``torch.compile`` wrapper with ``sampler.compile``
        (built once per UNet and reused, so the compiled graphs / CUDA graphs are kept across calls)."""
        mode = self.config.sampler.compile
        if mode == 'none':
            return self.unet
        if self._compiled is None or self._compiled[0] is not self.unet:
            self._compiled = (self.unet, torch.compile(self.unet, mode=mode))
        return self._compiled[1]

    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    def from_options(cls, opt: Mapping, device: torch.device | str = 'cpu', where: str = '<options>') -> SSRPipeline:
        """Builds ``network_g`` (the AMF-UNet), the first stage and, with ``conditions.source: svkr``, ``network_e``
        / ``network_sr`` / ``network_d``, loading ``path.pretrain_network_*`` as ``SSRModel`` does."""
        config = SSRPipelineConfig.from_options(opt, where)
        first_stage = config.build_first_stage().to(device)
        unet = network_from_options(opt, 'network_g', device)
        nets = {}
        if config.source == 'svkr':
            nets = {'estimator': network_from_options(opt, 'network_e', device),
                    'sr_net': network_from_options(opt, 'network_sr', device)}
            if 'network_d' in opt:
                nets['depth_net'] = network_from_options(opt, 'network_d', device, load=False)
        return cls(unet, first_stage, config, **nets)

    @classmethod
    def from_option_file(cls, path: str | os.PathLike, device: str = 'cpu') -> SSRPipeline:
        """:meth:`from_options` of a test option file (``_base_`` resolved, validated, paths root-relative).

        ``svkr.depth: file`` needs the data's depth: pass ``depth=`` to the call.
        """
        return cls.from_options(option_file(path, device), device, where=str(path))

    def with_unet(self, unet: nn.Module) -> SSRPipeline:
        """The same pipeline around another UNet of the same configuration (e.g. the EMA copy)."""
        other = copy.copy(self)
        other.unet = unet
        if self.config.sampler.channels_last:
            other.unet.to(memory_format=torch.channels_last)
        return other

    def needs(self, condition: str) -> bool:
        """Whether sampling reads ``condition`` (``kernel`` / ``depth``): the UNet fuses it (``amf_modalities``), or
        for the kernel, ``sampler.consistency`` uses it as the operator."""
        modalities = getattr(self.unet, 'modalities', MODALITIES)
        return condition in modalities or (condition == 'kernel' and self.config.sampler.consistency is not None)

    # ------------------------------------------------------------------------------------------------------------
    def _autocast(self, device: torch.device):
        return torch.autocast('cuda', dtype=torch.bfloat16, enabled=self.config.bf16 and device.type == 'cuda')

    def lr_latent(self, lq: Tensor) -> Tensor:
        """z_lr (B, C, s*h / f, s*w / f): latent of the bicubic-upsampled ``lq`` (LDM-SR conditioning)."""
        up = F.interpolate(lq, scale_factor=self.config.scale, mode='bicubic', align_corners=False)
        return self.first_stage.encode(up.clamp(0, 1))

    def training_latents(self, gt: Tensor, lq: Tensor, base: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(z_0, z_lr) the model learns from, per ``diffusion.formulation``.

        ``image`` (the paper): z_0 = E(gt), z_lr = the latent of the bicubic ``lq``. ``residual``: z_0 =
        (E(gt) - E(base)) * ``residual_scale`` and z_lr = E(base), where ``base`` (B, 3, sh, sw) in [0, 1] is the
        blind path's I^T; the sampler then only adds what the blind path missed (:meth:`sample`).

        Raises:
            ValueError: the residual formulation without ``base``.
        """
        z_gt = self.first_stage.encode(gt)
        if self.config.diffusion['formulation'] != 'residual':
            return z_gt, self.lr_latent(lq)
        if base is None:
            raise ValueError('diffusion.formulation: residual needs the base image (the blind path I^T)')
        z_base = self.first_stage.encode(base.clamp(0, 1))
        return (z_gt - z_base) * self.config.diffusion['residual_scale'], z_base

    def _pad_amount(self, size: int) -> int:
        """Smallest p with ((size + p) * s) divisible by downscale * 2**(n-1), so the latent fits the UNet."""
        step = self.first_stage.downscale * self.latent_multiple
        unit = step // math.gcd(step, self.config.scale)
        return -size % unit

    @torch.no_grad()
    def conditions(self, lq: Tensor, kernel: Tensor | None = None, depth: Tensor | None = None,
                   noise_level: Tensor | None = None) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """(kernel (B, k*k, h, w), depth (B, 1, H', W'), I^T (B, 3, sh, sw) or None) for ``lq`` (B, 3, h, w).

        With ``conditions.source: data`` the given ``kernel`` and ``depth`` are returned (either may be ``None``
        when :meth:`needs` says sampling does not read it); with ``svkr`` SVKR runs, ``depth`` being its fixed map
        for ``svkr.depth: file``.

        Raises:
            ValueError: ``conditions.source: data`` without a kernel or a depth that sampling needs.
        """
        if self.config.source == 'data':
            missing = [what for name, what, value in (('kernel', 'the kernel field', kernel),
                                                      ('depth', 'the depth map', depth))
                       if value is None and self.needs(name)]
            if missing:
                modalities = list(getattr(self.unet, 'modalities', MODALITIES))
                raise ValueError(f'conditions.source: data needs {" and ".join(missing)} of the call '
                                 f'(network_g.amf_modalities: {modalities})')
            return kernel, depth, None
        svkr = SVKR.from_networks(self.config.svkr, self.estimator, self.sr_net, self.depth_net, depth_map=depth,
                                  noise_level=noise_level)
        out = svkr(lq)
        return out.kernel, out.depth, out.sr

    def _decode(self, z: Tensor) -> Tensor:
        """The first stage's decoder on a float32 latent, tiled like the sampler (``sampler.tile``)."""
        sampler = self.config.sampler
        if sampler.tile_size:
            return tiled_decode(self.first_stage.decode, z.float(), sampler.tile_size, sampler.tile_overlap,
                                self.first_stage.downscale)
        return self.first_stage.decode(z.float())

    def consistency_step(self, lq: Tensor, kernel: Tensor, sigma: Tensor | float | None,
                         log: list[ConsistencyInfo] | None = None) -> Callable[[Tensor], Tensor]:
        """The z_0 correction of ``sampler.consistency`` (which must be set), as the sampler calls it.

        Args:
            lq: (B, 3, h, w) LR in [0, 1] with h, w fitting the UNet (:meth:`sample` pads it first).
            kernel: (B, k*k, h, w) the kernel field of the operator (K^T of SVKR or the data's).
            sigma: the LR noise std of the stop rule, a number or (B,) tensor (``'auto'`` resolved by the caller),
                or ``None`` (no stop rule).
            log: each call's :class:`~ssr.ops.consistency.ConsistencyInfo` is appended to it, when given.

        Returns:
            ``correct(z0) -> z0'`` on (B, C, h*s/f, w*s/f) latents: decode, :func:`~ssr.ops.consistency.
            consistent_projection` in float32, clamp to [0, 1], encode (exact for pixel-unshuffle).
        """
        cons, s = self.config.sampler.consistency, self.config.scale
        if cons is None:
            raise ValueError('SSRPipeline.consistency_step needs a sampler.consistency block')
        lq32, kernel32 = lq.float(), kernel.float()

        def correct(z0: Tensor) -> Tensor:
            image = self._decode(z0)
            with torch.autocast(lq.device.type, enabled=False):
                x, info = consistent_projection(image.float(), lq32, kernel32, s, cons.weight, cons.iters, sigma=sigma,
                                                tau=cons.tau)
            if log is not None:
                log.append(info)
            return self.first_stage.encode(x.clamp(0, 1)).to(z0.dtype)

        return correct

    @torch.no_grad()
    def sample(self, lq: Tensor, kernel: Tensor | None, depth: Tensor | None, generator: torch.Generator | None = None,
               sr_estimate: Tensor | None = None) -> Tensor:
        """SR of ``lq`` under the given conditions with the sampler of the options.

        Args:
            lq: (B, 3, h, w) in [0, 1].
            kernel: (B, k*k, h, w) kernel field (K^T, or the data's); also the operator of ``sampler.consistency``.
                May be ``None`` when :meth:`needs` says it is not read.
            depth: (B, 1, H', W') depth in [0, 1] (any size; resized to the latent grid); may be ``None`` likewise.
            generator: seeds the sampler; ``None`` = ``sampler.seed``.
            sr_estimate: (B, 3, sh, sw) in [0, 1], the start of ``sampler.start_from: nbsr``.

        Returns:
            (B, 3, sh, sw) in [0, 1].
        """
        return self._sample(lq, kernel, depth, generator, sr_estimate)[0]

    def _residual(self) -> float | None:
        """``residual_scale`` with ``diffusion.formulation: residual``, else ``None``."""
        diffusion = self.config.diffusion
        return diffusion['residual_scale'] if diffusion['formulation'] == 'residual' else None

    @torch.no_grad()
    def _sample(self, lq: Tensor, kernel: Tensor | None, depth: Tensor | None, generator: torch.Generator | None,
                sr_estimate: Tensor | None) -> tuple[Tensor, list[ConsistencyInfo]]:
        """:meth:`sample` and the consistency log (see :attr:`SSROutput.consistency`)."""
        s, sampler = self.config.scale, self.config.sampler
        h, w = lq.shape[-2:]
        cons, log, correction = sampler.consistency, [], {}
        sigma = None if cons is None else cons.sigma
        if sigma == 'auto':  # on the LR before the replicate padding below, whose flat border would lower it
            sigma = estimate_noise_sigma(lq.float())
        ph, pw = self._pad_amount(h), self._pad_amount(w)
        if ph or pw:  # replicate padding so the latent fits the UNet; cropped back below
            dh, dw = (0, 0) if depth is None else (ph * depth.shape[-2] // h, pw * depth.shape[-1] // w)
            lq = F.pad(lq, (0, pw, 0, ph), mode='replicate')
            if kernel is not None:
                kernel = F.pad(kernel, (0, pw, 0, ph), mode='replicate')
            if depth is not None:
                depth = F.pad(depth, (0, dw, 0, dh), mode='replicate')
            if sr_estimate is not None:
                sr_estimate = F.pad(sr_estimate, (0, pw * s, 0, ph * s), mode='replicate')
        if generator is None:
            generator = torch.Generator().manual_seed(sampler.seed)
        residual = self._residual()
        if residual is not None and sr_estimate is None:
            raise ValueError('diffusion.formulation: residual samples on top of the blind path I^T: use '
                             'conditions.source: svkr, or give the base image (a dataset with base/)')
        with self._autocast(lq.device):
            z_base = None if residual is None else self.first_stage.encode(sr_estimate.clamp(0, 1))
            z_lr = self.lr_latent(lq) if residual is None else z_base
            features = self.unet.encode_conditions(kernel, depth, lq, tuple(z_lr.shape[-2:]))
            start = {}
            if sampler.start_step is not None and residual is not None:
                start = dict(start_latent=torch.zeros_like(z_base), start_step=sampler.start_step)  # residual 0
            elif sampler.start_step is not None:
                if sampler.start_from == 'nbsr':
                    if sr_estimate is None:
                        raise ValueError('sampler.start_from: nbsr needs the SVKR output (conditions.source: svkr)')
                    start_latent = self.first_stage.encode(sr_estimate.clamp(0, 1))
                else:
                    start_latent = z_lr
                start = dict(start_latent=start_latent, start_step=sampler.start_step)
            denoiser = self.sampling_unet()
            if sampler.tile_size:
                denoiser = TiledUNet(denoiser, sampler.tile_size, sampler.tile_overlap, self.latent_multiple)
            scheduler = sampler.scheduler(self.config.diffusion)
            if cons is not None:
                correct = self.consistency_step(lq, kernel, sigma, log)
                if residual is not None:  # the operator acts on the image z_base + r / scale
                    correct = partial(_correct_residual, correct, z_base, residual)
                correction = dict(correct_x0=correct,
                                  correct_steps=cons.step_indices(sampler.start_step or 0, len(scheduler.timesteps)))
            z0 = sample_latents(denoiser, z_lr, features, tuple(z_lr.shape), scheduler, generator, **start,
                                **correction)
        if residual is not None:
            z0 = z_base.float() + z0.float() * (sampler.residual_strength / residual)
        out = self._decode(z0).clamp(0, 1)[..., :h * s, :w * s]
        if sampler.color_fix != 'none':
            reference = F.interpolate(lq[..., :h, :w], scale_factor=s, mode='bicubic', align_corners=False)
            out = apply_color_fix(sampler.color_fix, out, reference.clamp(0, 1)).clamp(0, 1)
        return out, log

    def __call__(self, lq: Tensor, kernel: Tensor | None = None, depth: Tensor | None = None, *,
                 noise_level: Tensor | None = None, generator: torch.Generator | None = None,
                 base: Tensor | None = None) -> SSROutput:
        """SSR of ``lq``.

        Args:
            lq: (B, 3, h, w) LR in [0, 1].
            kernel: (B, k*k, h, w) kernel field, for ``conditions.source: data``.
            depth: (B, 1, H', W') depth in [0, 1]: a condition with ``source: data``, SVKR's fixed map with
                ``svkr.depth: file``.
            noise_level: (B, 1) noise level for SR networks that take one.
            generator: seeds the sampler (default: ``sampler.seed``).
            base: (B, 3, sh, sw) in [0, 1], the SR estimate to start from / add the residual to instead of SVKR's
                I^T (e.g. a stored blind-path output with ``conditions.source: data``).

        Returns:
            :class:`SSROutput`.
        """
        kernel, depth, blind = self.conditions(lq, kernel, depth, noise_level)
        sr, log = self._sample(lq, kernel, depth, generator, blind if base is None else base)
        return SSROutput(sr=sr, blind_sr=blind, kernel=kernel, depth=depth, consistency=log)
