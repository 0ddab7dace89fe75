"""AMF-UNet: SSR's denoiser (paper §3.3, Eq. 3-4), a diffusers ``UNet2DModel`` modulated by AMF at every level.

The base network is a plain diffusers ``UNet2DModel`` on ``concat(z_t, z_lr)`` (LDM-SR conditioning), held as
``self.unet`` so that its state-dict keys stay diffusers' (a pretrained ``UNet2DModel`` loads into it with
``net.unet.load_state_dict(...)``). :meth:`AMFUNet.forward` walks the UNet's blocks itself, in the order of
diffusers' ``UNet2DModel.forward``, and runs each chosen block ("site": ``down{i}``, ``mid``, ``up{j}``) through its
:class:`AMFSite` wrapper, which applies the block and then AMF (:class:`~ssr.archs.amf.MultiModalAMF`, Eq. 3) to its
output with the encoder features passed in as an argument. No state lives on the instance between calls, so replicas
(``copy.deepcopy``, ``nn.DataParallel``, ``torch.compile``) compute the same output, and ``self.unet`` called alone
is the plain base UNet.

Each site uses the encoder level whose stride matches the site's output, so no resizing happens at run time:

==========  =============================  ==================================
site        channels                       stride (latent pixels) = 2**level
==========  =============================  ==================================
``down i``  ``block_out_channels[i]``      ``2**min(i + 1, n - 1)``
``mid``     ``block_out_channels[-1]``     ``2**(n - 1)``
``up j``    ``block_out_channels[n-1-j]``  ``2**max(n - 2 - j, 0)``
==========  =============================  ==================================

Notation: B batch, C latent channels, C_lr LR-latent channels, (h, w) latent size, n = len(block_out_channels),
k kernel size (k*k kernel channels), P PCA code length.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from diffusers import ModelMixin, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import Tensor, nn

from ssr.archs.amf import MODALITIES, MultiModalAMF
from ssr.archs.condition_encoders import DepthEncoder, KernelEncoder, LREncoder
from ssr.archs.sft import resize_to

__all__ = ['AMFSite', 'AMFUNet', 'AMFUNetOutput']


@dataclass
class AMFUNetOutput:
    """Output of :class:`AMFUNet`.

    Attributes:
        sample: (B, C, h, w) the UNet's prediction (epsilon, v or x0, as the training chose).
        features: ``[f1, f2, f3]`` = encoder outputs for (kernel, depth, LR), each a list of n maps, level l of shape
            (B, channels_l, h / 2**l, w / 2**l); they enter the L1 terms of Eq. 5.
    """

    sample: Tensor
    features: list[list[Tensor]]


def _site_names(n: int) -> list[str]:
    return [f'down{i}' for i in range(n)] + ['mid'] + [f'up{j}' for j in range(n)]


def _site_index(site: str) -> int:
    return int(site[4:]) if site.startswith('down') else int(site[2:])


def _site_level(site: str, n: int) -> int:
    """Encoder level whose stride equals the site's output stride (see the module table)."""
    if site == 'mid':
        return n - 1
    i = _site_index(site)
    return min(i + 1, n - 1) if site.startswith('down') else max(n - 2 - i, 0)


def _site_channels(site: str, chs: Sequence[int]) -> int:
    if site == 'mid':
        return chs[-1]
    i = _site_index(site)
    return chs[i] if site.startswith('down') else chs[len(chs) - 1 - i]


def _default_widths(chs: Sequence[int], div: int) -> list[int]:
    return [max(c // div, 1) for c in chs]


class AMFSite(MultiModalAMF):
    """Wrapper of one UNet block ("site") with AMF on its output (Eq. 4): runs the block, then Eq. 3.

    It owns only the AMF layers (keys ``layers.{i}.*``, as :class:`~ssr.archs.amf.MultiModalAMF`); the block stays in
    the base UNet, which keeps its diffusers keys, and is handed to :meth:`wrap` at call time together with the
    features of that call. The block's output keeps its diffusers structure:

    - down block: ``(hidden, res_samples)``; the last of ``res_samples`` is the block output that feeds the up path's
      skip connection, so it becomes the modulated ``hidden`` as well;
    - mid and up blocks: ``hidden``.

    Args:
        site: ``down{i}``, ``mid`` or ``up{j}``.
        level: encoder level whose stride matches the block output (see the module table).
        feat_ch: channels of the block output.
        cond_chs: channels of each modality's level-``level`` features, in the order of ``MODALITIES``.
        **amf_kwargs: keyword arguments of :class:`~ssr.archs.amf.AMF`.

    Raises:
        ValueError: on a ``site`` that is not ``down*``, ``mid`` or ``up*``, or as :class:`~ssr.archs.amf.AMF`.
    """

    def __init__(self, *, site: str, level: int, feat_ch: int, cond_chs: Sequence[int], **amf_kwargs) -> None:
        super().__init__(feat_ch=feat_ch, cond_chs=cond_chs, **amf_kwargs)
        if site != 'mid' and not site.startswith(('down', 'up')):
            raise ValueError(f'AMFSite: site {site!r} is none of down<i>, mid, up<j>')
        self.site, self.level = site, level

    def wrap(self, block: nn.Module, features: Sequence[Sequence[Tensor]], *args, **kwargs):
        """Returns ``block(*args, **kwargs)`` with its hidden states modulated by level ``self.level`` of ``features``.

        Args:
            block: the UNet block of this site.
            features: ``[f1, f2, f3]``, each a list of per-level (B, D_l, h_l, w_l) maps (AMFUNet's
                ``encode_conditions``).
            *args, **kwargs: the block's own arguments.

        Returns:
            The block's output, structured as the block returns it, hidden states (B, feat_ch, H, W) modulated.
        """
        output = block(*args, **kwargs)
        conds = [feats[self.level] for feats in features]
        if not self.site.startswith('down'):
            return self(output, conds)
        hidden, res_samples = output
        hidden = self(hidden, conds)
        return hidden, (*res_samples[:-1], hidden)


@ARCH_REGISTRY.register()
class AMFUNet(ModelMixin, ConfigMixin):
    """Diffusers ``UNet2DModel`` on ``concat(z_t, z_lr)`` with AMF from kernel, depth and LR encoders (Eq. 3-4).

    Args:
        latent_channels: C, channels of z_t and of the prediction.
        lr_latent_channels: C_lr, channels of z_lr; defaults to ``latent_channels``.
        block_out_channels: UNet width per level.
        down_block_types: diffusers down-block names, one per level; defaults to ``DownBlock2D`` on the first half of
            the levels and ``AttnDownBlock2D`` on the rest (LDM-SR places attention at the low resolutions).
        up_block_types: diffusers up-block names; defaults to the mirror of ``down_block_types``.
        layers_per_block: resnets per UNet block.
        norm_num_groups: GroupNorm groups of the UNet, the LR encoder and group-norm AMF; must divide every width.
        attention_head_dim: channels per attention head.
        amf_levels: AMF sites, from ``down0 .. down{n-1}, mid, up0 .. up{n-1}``; ``None`` = all of them.
        amf_hidden: hidden width of the AMF MLPs (paper: 128).
        amf_norm: ``'batch'`` (paper), ``'group'`` or ``'none'``, see :class:`~ssr.archs.amf.AMF`.
        amf_kernel_size: 1 or 3, kernel of the AMF MLP convs.
        kernel_in_ch: k*k (kernel field) or P (PCA codes) channels of the kernel condition.
        kernel_input: ``'field'`` or ``'codes'``, see :class:`~ssr.archs.condition_encoders.KernelEncoder`.
        lr_in_ch: channels of the LR condition (3: RGB in [0, 1]).
        lr_encoder_channels: LR half-UNet widths; defaults to ``block_out_channels // 2``.
        lr_layers_per_block: resnets per LR input block.
        depth_encoder_channels / kernel_encoder_channels: conv-pyramid widths; default ``block_out_channels // 4``.
        freeze_base: freeze the base UNet (``requires_grad=False``); encoders and AMF stay trainable.

    Raises:
        ValueError: on an unknown AMF site, mismatched level counts, or as the parts it builds.
    """

    @register_to_config
    def __init__(self, latent_channels: int = 4, lr_latent_channels: int | None = None,
                 block_out_channels: Sequence[int] = (128, 256, 512, 512),
                 down_block_types: Sequence[str] | None = None, up_block_types: Sequence[str] | None = None,
                 layers_per_block: int = 2, norm_num_groups: int = 32, attention_head_dim: int = 32,
                 amf_levels: Sequence[str] | None = None, amf_hidden: int = 128, amf_norm: str = 'batch',
                 amf_kernel_size: int = 1, kernel_in_ch: int = 441, kernel_input: str = 'field', lr_in_ch: int = 3,
                 lr_encoder_channels: Sequence[int] | None = None, lr_layers_per_block: int = 1,
                 depth_encoder_channels: Sequence[int] | None = None,
                 kernel_encoder_channels: Sequence[int] | None = None, freeze_base: bool = False) -> None:
        super().__init__()
        # 1. check inputs
        n = len(block_out_channels)
        sites = _site_names(n)
        amf_levels = list(sites if amf_levels is None else amf_levels)
        unknown = [s for s in amf_levels if s not in sites]
        if unknown:
            raise ValueError(f'AMFUNet: amf_levels {unknown} not in {sites}')
        half = n // 2
        if down_block_types is None:
            down_block_types = ['DownBlock2D'] * half + ['AttnDownBlock2D'] * (n - half)
        if up_block_types is None:
            up_block_types = [t.replace('Down', 'Up') for t in reversed(down_block_types)]
        if len(down_block_types) != n or len(up_block_types) != n:
            raise ValueError(f'AMFUNet: down_block_types {list(down_block_types)} and up_block_types '
                             f'{list(up_block_types)} need one entry per block_out_channels ({n})')
        skip_blocks = [t for t in (*down_block_types, *up_block_types) if 'Skip' in t]
        if skip_blocks:
            # diffusers' Skip* blocks carry a 3-channel image path, which needs in = out = 3 channels
            raise ValueError(f'AMFUNet: block types {skip_blocks} are not supported (their skip path needs 3 input and '
                             f'3 output channels, the AMF-UNet has latent_channels + lr_latent_channels inputs)')
        lr_latent_channels = lr_latent_channels or latent_channels
        if block_out_channels[0] < latent_channels:
            # measured: a 32-wide first level on the 48-channel pixel-unshuffle latent plateaued at eps-MSE ~0.4
            warnings.warn(f'AMFUNet: block_out_channels[0] = {block_out_channels[0]} is below latent_channels = '
                          f'{latent_channels}; the first level cannot carry the noisy latent through and the '
                          f'noise prediction plateaus (fine for tests, not for training)', UserWarning, stacklevel=2)
        widths = {
            'kernel': kernel_encoder_channels or _default_widths(block_out_channels, 4),
            'depth': depth_encoder_channels or _default_widths(block_out_channels, 4),
            'lr': lr_encoder_channels or _default_widths(block_out_channels, 2),
        }
        for name, chs in widths.items():
            if len(chs) != n:
                raise ValueError(f'AMFUNet: {name} encoder channels {list(chs)} need one entry per level ({n})')

        # 2. base UNet and encoders
        self.unet = UNet2DModel(
            in_channels=latent_channels + lr_latent_channels, out_channels=latent_channels,
            down_block_types=tuple(down_block_types), up_block_types=tuple(up_block_types),
            block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups, attention_head_dim=attention_head_dim)
        self.kernel_encoder = KernelEncoder(in_ch=kernel_in_ch, channels=widths['kernel'], kernel_input=kernel_input)
        self.depth_encoder = DepthEncoder(channels=widths['depth'])
        self.lr_encoder = LREncoder(in_ch=lr_in_ch, block_out_channels=widths['lr'],
                                    layers_per_block=lr_layers_per_block, norm_num_groups=norm_num_groups)

        # 3. AMF per site: a wrapper that the forward runs each chosen block through
        self.amf_levels = amf_levels
        self.site_levels = {s: _site_level(s, n) for s in amf_levels}
        self.amf = nn.ModuleDict()
        for site in amf_levels:
            lvl = self.site_levels[site]
            self.amf[site] = AMFSite(
                site=site, level=lvl, feat_ch=_site_channels(site, block_out_channels),
                cond_chs=[widths[m][lvl] for m in MODALITIES], hidden_ch=amf_hidden, norm=amf_norm,
                num_groups=norm_num_groups, kernel_size=amf_kernel_size, zero_init=True)

        if freeze_base:
            self.unet.requires_grad_(False)
        # init: diffusers' defaults for the UNet; encoders and AMF initialise themselves (AMF output convs at zero,
        # so the network starts as the base UNet with normalised block outputs).

    def _run_block(self, site: str, block: nn.Module, features: list[list[Tensor]], *args, **kwargs):
        """``block(*args, **kwargs)``, through the site's :class:`AMFSite` when AMF is placed there."""
        if site in self.amf:
            return self.amf[site].wrap(block, features, *args, **kwargs)
        return block(*args, **kwargs)

    def _denoise(self, sample: Tensor, timestep: Tensor | int, features: list[list[Tensor]]) -> Tensor:
        """The base UNet's forward (diffusers ``UNet2DModel.forward``) with AMF after the chosen blocks (Eq. 4).

        What this leaves out of diffusers' version is absent from the base UNet by construction: input centring,
        Fourier time embedding and class embedding are off (diffusers' defaults), and ``Skip*`` blocks are refused in
        ``__init__``.

        Args:
            sample: (B, C + C_lr, h, w) ``concat(z_t, z_lr)``.
            timestep: (B,) or scalar timestep(s).
            features: ``[f1, f2, f3]`` from :meth:`encode_conditions`.

        Returns:
            (B, C, h, w) prediction.
        """
        unet = self.unet
        # 1. time embedding
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            timesteps = torch.tensor([timesteps], dtype=torch.long, device=sample.device)
        elif timesteps.ndim == 0:
            timesteps = timesteps[None].to(sample.device)
        timesteps = timesteps * torch.ones(sample.shape[0], dtype=timesteps.dtype, device=timesteps.device)
        # the projection is float32; diffusers casts it to ``unet.dtype`` (its first floating parameter's dtype), read
        # here from the time embedding itself: the same dtype, and it also works in nn.DataParallel replicas, whose
        # parameter-less modules make diffusers' ``dtype`` lookup fail
        emb_dtype = unet.time_embedding.linear_1.weight.dtype
        emb = unet.time_embedding(unet.time_proj(timesteps).to(dtype=emb_dtype))

        # 2. down path; every down block hands its resnet (and downsampler) outputs to the up path
        sample = unet.conv_in(sample)
        res_stack = (sample,)
        for i, block in enumerate(unet.down_blocks):
            sample, res_samples = self._run_block(f'down{i}', block, features, hidden_states=sample, temb=emb)
            res_stack += res_samples

        # 3. mid
        if unet.mid_block is not None:
            sample = self._run_block('mid', unet.mid_block, features, sample, emb)

        # 4. up path, popping the skip connections
        for j, block in enumerate(unet.up_blocks):
            res_samples = res_stack[-len(block.resnets):]
            res_stack = res_stack[:-len(block.resnets)]
            sample = self._run_block(f'up{j}', block, features, sample, res_samples, emb)

        # 5. output
        return unet.conv_out(unet.conv_act(unet.conv_norm_out(sample)))

    def _check_inputs(self, z_t: Tensor, z_lr: Tensor) -> None:
        cfg = self.config
        lr_ch = cfg.lr_latent_channels or cfg.latent_channels
        if z_t.ndim != 4 or z_t.shape[1] != cfg.latent_channels:
            raise ValueError(f'AMFUNet: z_t must be (B, {cfg.latent_channels}, h, w), got {tuple(z_t.shape)}')
        if z_lr.ndim != 4 or z_lr.shape[1] != lr_ch or z_lr.shape[-2:] != z_t.shape[-2:]:
            raise ValueError(f'AMFUNet: z_lr must be (B, {lr_ch}, {z_t.shape[-2]}, {z_t.shape[-1]}), '
                             f'got {tuple(z_lr.shape)}')
        mult = 2**(len(cfg.block_out_channels) - 1)
        if z_t.shape[-2] % mult or z_t.shape[-1] % mult:
            raise ValueError(f'AMFUNet: latent size {tuple(z_t.shape[-2:])} must be a multiple of {mult}')

    def encode_conditions(self, kernel: Tensor, depth: Tensor, lr: Tensor, size: tuple[int, int]) -> list[list[Tensor]]:
        """Resizes each condition to the latent grid ``size`` and encodes it: ``[f1, f2, f3]`` (kernel, depth, LR).

        Sampling calls this once and reuses the result at every step (``forward(..., features=...)``).
        """
        conds = {'kernel': kernel, 'depth': depth, 'lr': lr}
        return [getattr(self, f'{m}_encoder')(resize_to(conds[m], size)) for m in MODALITIES]

    def forward(self, z_t: Tensor, t: Tensor | int, z_lr: Tensor, kernel: Tensor | None = None,
                depth: Tensor | None = None, lr: Tensor | None = None,
                features: list[list[Tensor]] | None = None) -> AMFUNetOutput:
        """Predicts the noise (or v / x0) of ``z_t`` at step ``t`` under the three conditions.

        Args:
            z_t: (B, C, h, w) noisy latent; h, w multiples of ``2**(n-1)``.
            t: (B,) or scalar timestep(s).
            z_lr: (B, C_lr, h, w) latent of the LR condition.
            kernel: (B, k*k, H', W') kernel field (each pixel sums to 1) or (B, P, H', W') codes.
            depth: (B, 1, H'', W'') relative inverse depth in [0, 1].
            lr: (B, 3, H''', W''') LR image in [0, 1].
            features: precomputed :meth:`encode_conditions` output, used instead of kernel / depth / lr.

        Returns:
            :class:`AMFUNetOutput`.

        Raises:
            ValueError: on wrong shapes, or when neither all conditions nor ``features`` are given.
        """
        # 1. check and encode the conditions (paper: f1 kernel, f2 depth, f3 LR)
        self._check_inputs(z_t, z_lr)
        if features is None:
            if kernel is None or depth is None or lr is None:
                raise ValueError('AMFUNet: give kernel, depth and lr, or precomputed features')
            features = self.encode_conditions(kernel, depth, lr, tuple(z_t.shape[-2:]))
        # 2. run the UNet with AMF after the chosen blocks, the features passed along (Eq. 4)
        sample = self._denoise(torch.cat([z_t, z_lr.to(z_t.dtype)], dim=1), t, features)
        return AMFUNetOutput(sample=sample, features=features)
