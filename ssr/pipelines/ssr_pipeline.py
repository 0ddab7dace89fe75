"""SSR's inference pipeline (paper §3.3): SVKR conditions, AMF-UNet sampling in a first-stage latent, decoding, colour
fix, callable on a tensor outside BasicSR (diffusers-style)::

    pipe = SSRPipeline.from_option_file('options/test_ssr_lite_x4.yml')
    out = pipe(lr)                      # lr (B, 3, h, w) in [0, 1]
    out.sr, out.blind_sr, out.kernel, out.depth

Notation (paper -> code): LR ``lq`` (B, 3, h, w), s = ``scale``; z_lr = E(bicubic_s(LR)) (B, C, H / f, W / f) with
the first stage E of downscale f; f1, f2, f3 = kernel, depth and LR encoder features; epsilon_theta = ``unet``
(:class:`~ssr.archs.amf_unet_arch.AMFUNet`); K^T, D^T, I^T the outputs of SVKR (Algorithm 1).
"""
from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ssr.ops.color_correction import apply_color_fix
from ssr.pipelines.loading import network_from_options, option_file
from ssr.pipelines.sampling import SamplerConfig, diffusion_config, sample_latents
from ssr.pipelines.svkr import SVKR, SVKRConfig
from ssr.pipelines.tiling import TiledUNet, tiled_decode
from ssr.utils.options import OptionError

__all__ = ['CONDITION_SOURCES', 'SSROutput', 'SSRPipeline', 'SSRPipelineConfig']

CONDITION_SOURCES = ('data', 'svkr')


@dataclass
class SSROutput:
    """Result of :class:`SSRPipeline`.

    Attributes:
        sr: (B, 3, s*h, s*w) in [0, 1], the SSR image.
        blind_sr: (B, 3, s*h, s*w), I^T of SVKR (the blind path), or ``None`` when the conditions were given.
        kernel: (B, k*k, h, w) kernel field the UNet was conditioned on (K^T, or the given one).
        depth: (B, 1, H', W') depth in [0, 1] the UNet was conditioned on (D^T, or the given one; H', W' are those of
            the depth source, e.g. (s*h, s*w) for MiDaS on I^T), or ``None`` when none was computed.
    """

    sr: Tensor
    blind_sr: Tensor | None
    kernel: Tensor
    depth: Tensor | None


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
        return other

    # ------------------------------------------------------------------------------------------------------------
    def _autocast(self, device: torch.device):
        return torch.autocast('cuda', dtype=torch.bfloat16, enabled=self.config.bf16 and device.type == 'cuda')

    def lr_latent(self, lq: Tensor) -> Tensor:
        """z_lr (B, C, s*h / f, s*w / f): latent of the bicubic-upsampled ``lq`` (LDM-SR conditioning)."""
        up = F.interpolate(lq, scale_factor=self.config.scale, mode='bicubic', align_corners=False)
        return self.first_stage.encode(up.clamp(0, 1))

    def _pad_amount(self, size: int) -> int:
        """Smallest p with ((size + p) * s) divisible by downscale * 2**(n-1), so the latent fits the UNet."""
        step = self.first_stage.downscale * self.latent_multiple
        unit = step // math.gcd(step, self.config.scale)
        return -size % unit

    @torch.no_grad()
    def conditions(self, lq: Tensor, kernel: Tensor | None = None, depth: Tensor | None = None,
                   noise_level: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """(kernel (B, k*k, h, w), depth (B, 1, H', W'), I^T (B, 3, sh, sw) or None) for ``lq`` (B, 3, h, w).

        With ``conditions.source: data`` the given ``kernel`` and ``depth`` are returned; with ``svkr`` SVKR runs,
        ``depth`` being its fixed map for ``svkr.depth: file``.

        Raises:
            ValueError: ``conditions.source: data`` without a kernel and a depth.
        """
        if self.config.source == 'data':
            if kernel is None or depth is None:
                raise ValueError('conditions.source: data needs the kernel field and the depth map of the call')
            return kernel, depth, None
        svkr = SVKR.from_networks(self.config.svkr, self.estimator, self.sr_net, self.depth_net, depth_map=depth,
                                  noise_level=noise_level)
        out = svkr(lq)
        return out.kernel, out.depth, out.sr

    @torch.no_grad()
    def sample(self, lq: Tensor, kernel: Tensor, depth: Tensor, generator: torch.Generator | None = None,
               sr_estimate: Tensor | None = None) -> Tensor:
        """SR of ``lq`` under the given conditions with the sampler of the options.

        Args:
            lq: (B, 3, h, w) in [0, 1].
            kernel: (B, k*k, h, w) kernel field.
            depth: (B, 1, H', W') depth in [0, 1] (any size; resized to the latent grid).
            generator: seeds the sampler; ``None`` = ``sampler.seed``.
            sr_estimate: (B, 3, sh, sw) in [0, 1], the start of ``sampler.start_from: nbsr``.

        Returns:
            (B, 3, sh, sw) in [0, 1].
        """
        s, sampler = self.config.scale, self.config.sampler
        h, w = lq.shape[-2:]
        ph, pw = self._pad_amount(h), self._pad_amount(w)
        if ph or pw:  # replicate padding so the latent fits the UNet; cropped back below
            dh, dw = ph * depth.shape[-2] // h, pw * depth.shape[-1] // w
            lq = F.pad(lq, (0, pw, 0, ph), mode='replicate')
            kernel = F.pad(kernel, (0, pw, 0, ph), mode='replicate')
            depth = F.pad(depth, (0, dw, 0, dh), mode='replicate')
            if sr_estimate is not None:
                sr_estimate = F.pad(sr_estimate, (0, pw * s, 0, ph * s), mode='replicate')
        if generator is None:
            generator = torch.Generator().manual_seed(sampler.seed)
        with self._autocast(lq.device):
            z_lr = self.lr_latent(lq)
            features = self.unet.encode_conditions(kernel, depth, lq, tuple(z_lr.shape[-2:]))
            start = {}
            if sampler.start_step is not None:
                if sampler.start_from == 'nbsr':
                    if sr_estimate is None:
                        raise ValueError('sampler.start_from: nbsr needs the SVKR output (conditions.source: svkr)')
                    start_latent = self.first_stage.encode(sr_estimate.clamp(0, 1))
                else:
                    start_latent = z_lr
                start = dict(start_latent=start_latent, start_step=sampler.start_step)
            denoiser = self.unet
            if sampler.tile_size:
                denoiser = TiledUNet(self.unet, sampler.tile_size, sampler.tile_overlap, self.latent_multiple)
            z0 = sample_latents(denoiser, z_lr, features, tuple(z_lr.shape), sampler.scheduler(self.config.diffusion),
                                generator, **start)
        if sampler.tile_size:
            out = tiled_decode(self.first_stage.decode, z0.float(), sampler.tile_size, sampler.tile_overlap,
                               self.first_stage.downscale)
        else:
            out = self.first_stage.decode(z0.float())
        out = out.clamp(0, 1)[..., :h * s, :w * s]
        if sampler.color_fix != 'none':
            reference = F.interpolate(lq[..., :h, :w], scale_factor=s, mode='bicubic', align_corners=False)
            out = apply_color_fix(sampler.color_fix, out, reference.clamp(0, 1)).clamp(0, 1)
        return out

    def __call__(self, lq: Tensor, kernel: Tensor | None = None, depth: Tensor | None = None, *,
                 noise_level: Tensor | None = None, generator: torch.Generator | None = None) -> SSROutput:
        """SSR of ``lq``.

        Args:
            lq: (B, 3, h, w) LR in [0, 1].
            kernel: (B, k*k, h, w) kernel field, for ``conditions.source: data``.
            depth: (B, 1, H', W') depth in [0, 1]: a condition with ``source: data``, SVKR's fixed map with
                ``svkr.depth: file``.
            noise_level: (B, 1) noise level for SR networks that take one.
            generator: seeds the sampler (default: ``sampler.seed``).

        Returns:
            :class:`SSROutput`.
        """
        kernel, depth, blind = self.conditions(lq, kernel, depth, noise_level)
        sr = self.sample(lq, kernel, depth, generator, sr_estimate=blind)
        return SSROutput(sr=sr, blind_sr=blind, kernel=kernel, depth=depth)
