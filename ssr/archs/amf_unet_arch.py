"""AMF-UNet: SSR's denoiser (paper §3.3, Eq. 3-4), a diffusers ``UNet2DModel`` modulated by AMF at every level.

The base network is a plain diffusers ``UNet2DModel`` on ``concat(z_t, z_lr)`` (LDM-SR conditioning), held as
``self.unet`` so that its state-dict keys stay diffusers' (a pretrained ``UNet2DModel`` loads into it with
``net.unet.load_state_dict(...)``). :meth:`AMFUNet.forward` walks the UNet's blocks itself, in the order of
diffusers' ``UNet2DModel.forward``, and runs each chosen block ("site": ``down{i}``, ``mid``, ``up{j}``) through its
:class:`AMFSite` wrapper, which applies the block and then AMF (:class:`~ssr.archs.amf.MultiModalAMF`, Eq. 3) to its
output with the encoder features passed in as an argument. No state lives on the instance between calls, so replicas
(``copy.deepcopy``, ``nn.DataParallel``, ``torch.compile``) compute the same output, and ``self.unet`` called alone
is the plain base UNet.

Pretrained prior (``pretrained_unet``): the base UNet is built from a local diffusers folder's ``config.json`` and its
weights are loaded strictly, nothing downloaded. Two kinds are walked:

- ``UNet2DModel``, as in diffusers' ``LDMSuperResolutionPipeline`` (LDM-SR; its ``vqvae/`` is the first stage);
- ``UNet2DConditionModel``, as in the Stable Diffusion x4 upscaler (its ``vae/`` is the first stage): cross-attention
  blocks get a fixed prompt embedding (``prompt_embedding``, e.g. the empty prompt's, or zeros), the class embedding
  gets ``class_labels = noise_level``.

Both pipelines concatenate the LR *pixels* in [-1, 1] with the latent (``lr_input='pixels'``, the default there):
:meth:`AMFUNet.encode_conditions` then appends the base UNet's LR input ``[c_lr]`` (B, lr_in_ch, h, w) as a fourth
entry of the features, so that sampling (which computes the features once) and latent tiling (which crops every entry
level by level; ``c_lr`` is a level-0 map) need no change; ``z_lr`` is still checked but not used. AMF then starts as
the identity (``amf_norm_gate``, see :mod:`ssr.archs.amf`): at step 0 AMFUNet computes the pretrained UNet's output.

Modalities (``amf_modalities``, the ablations of the paper's Table 2): any non-empty subset of kernel, depth and LR.
The encoders and AMF layers of the others are not built, their conditions are not needed, and the features are those
of the chosen modalities in the order kernel, depth, LR (``[f1, f2, f3]`` for all three, the default, whose state-dict
keys are those of the shipped weights). The base UNet always sees ``concat(z_t, z_lr)``.

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

import importlib.util
import inspect
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from diffusers import ModelMixin, UNet2DConditionModel, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import Tensor, nn

from ssr.archs.amf import MODALITIES, MultiModalAMF, select_modalities
from ssr.archs.condition_encoders import DepthEncoder, KernelEncoder, LREncoder
from ssr.archs.first_stage import local_input_path
from ssr.archs.sft import resize_to
from ssr.utils.checkpoint import load_state_dict_strict, safe_torch_load

__all__ = ['AMFSite', 'AMFUNet', 'AMFUNetOutput', 'LR_INPUTS', 'load_pretrained_unet']

LR_INPUTS = ('latent', 'pixels')
UNET_CLASSES = {'UNet2DModel': UNet2DModel, 'UNet2DConditionModel': UNet2DConditionModel}
UNET_WEIGHTS = ('diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.bin',
                'diffusion_pytorch_model.fp16.safetensors', 'diffusion_pytorch_model.fp16.bin')
LORA_TARGETS = ('to_q', 'to_k', 'to_v', 'to_out.0')
# AMFUNet arguments that a pretrained UNet's config.json decides (AMFUNet name -> diffusers config name)
FOLDER_KEYS = {'block_out_channels': 'block_out_channels', 'down_block_types': 'down_block_types',
               'up_block_types': 'up_block_types', 'layers_per_block': 'layers_per_block',
               'norm_num_groups': 'norm_num_groups', 'attention_head_dim': 'attention_head_dim',
               'latent_channels': 'out_channels'}


@dataclass
class AMFUNetOutput:
    """Output of :class:`AMFUNet`.

    Attributes:
        sample: (B, C, h, w) the UNet's prediction (epsilon, v or x0, as the training chose).
        features: ``[f1, f2, f3]`` = encoder outputs for (kernel, depth, LR), or for the ``amf_modalities`` in
            that order, each a list of n maps, level l of shape (B, channels_l, h / 2**l, w / 2**l); they enter the
            L1 terms of Eq. 5.
    """

    sample: Tensor
    features: list[list[Tensor]]


def _and(words: Sequence[str]) -> str:
    """``a, b and c``."""
    words = list(words)
    return words[0] if len(words) == 1 else f'{", ".join(words[:-1])} and {words[-1]}'


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


def _local_path(path: str | os.PathLike, key: str) -> Path:
    """``path`` found as :func:`~ssr.archs.first_stage.local_input_path` says, or a one-line error naming ``key``."""
    found = local_input_path(path)
    if not found.exists():
        raise FileNotFoundError(f'network_g.{key}: {str(path)!r} does not exist (nothing is downloaded: put the '
                                f'files there, or set {key}: ~)')
    return found


def load_pretrained_unet(folder: str | os.PathLike) -> tuple[UNet2DModel | UNet2DConditionModel, Path]:
    """Builds a diffusers UNet from a local folder's ``config.json`` and loads its weights strictly.

    Args:
        folder: a diffusers UNet folder (``config.json`` + ``diffusion_pytorch_model.safetensors`` or ``.bin``, an
            ``.fp16`` variant if only that is there), or a pipeline folder with such a ``unet/`` sub-folder.

    Returns:
        The UNet (float32, train mode as built) and the weight file read.

    Raises:
        FileNotFoundError: the folder, its config or its weights are missing.
        ValueError: the config names another class than ``UNet2DModel`` / ``UNet2DConditionModel``.
        RuntimeError: the weights do not match the config (the strict check, naming the file).
    """
    folder = _local_path(folder, 'pretrained_unet')
    if not (folder / 'config.json').is_file() and (folder / 'unet' / 'config.json').is_file():
        folder = folder / 'unet'
    if not (folder / 'config.json').is_file():
        raise FileNotFoundError(f'network_g.pretrained_unet: {str(folder)!r} has no config.json (nor unet/config.json);'
                                f' point it at a diffusers UNet folder written by save_pretrained')
    weights = next((folder / name for name in UNET_WEIGHTS if (folder / name).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f'network_g.pretrained_unet: {str(folder)!r} holds none of {list(UNET_WEIGHTS)}; '
                                f'sharded or other weight files are not read')
    config = UNet2DModel.load_config(str(folder))
    cls = UNET_CLASSES.get(config.get('_class_name'))
    if cls is None:
        raise ValueError(f'network_g.pretrained_unet: {str(folder / "config.json")!r} describes a '
                         f'{config.get("_class_name")!r}; AMFUNet walks {sorted(UNET_CLASSES)} only')
    unet = cls.from_config(config)
    if weights.suffix == '.safetensors':
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        state = safe_torch_load(weights)
    load_state_dict_strict(unet, state, source=str(weights), strict=True)
    return unet, weights


def _check_pretrained_unet(unet: nn.Module) -> None:
    """Refuses the parts of a diffusers UNet that :meth:`AMFUNet._denoise` does not walk."""
    cfg, name = unet.config, type(unet).__name__
    unsupported = [k for k in ('addition_embed_type', 'encoder_hid_dim_type') if cfg.get(k) is not None]
    if cfg.get('time_embedding_type', 'positional') not in ('positional', 'fourier', 'learned'):
        unsupported.append('time_embedding_type')
    if unsupported:
        raise ValueError(f'network_g.pretrained_unet: the {name} sets {unsupported} '
                         f'({[cfg.get(k) for k in unsupported]}), which AMFUNet does not support')


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
        cond_chs: channels of each used modality's level-``level`` features, in the order of ``MODALITIES``.
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
            features: one list of per-level (B, D_l, h_l, w_l) maps per used modality (``[f1, f2, f3]`` for all
                three; AMFUNet's ``encode_conditions``).
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
        amf_modalities: the conditions AMF fuses, a non-empty subset of ``kernel``, ``depth``, ``lr`` in any order
            (the paper's Table 2 ablations); ``None`` = all three. The encoders and AMF layers of the others are not
            built, and their arguments (``kernel_in_ch``, ``*_encoder_channels``) are ignored.
        amf_hidden: hidden width of the AMF MLPs (paper: 128).
        amf_norm: ``'batch'`` (paper), ``'group'`` or ``'none'``, see :class:`~ssr.archs.amf.AMF`.
        amf_kernel_size: 1 or 3, kernel of the AMF MLP convs.
        kernel_in_ch: k*k (kernel field) or P (PCA codes) channels of the kernel condition.
        kernel_input: ``'field'`` or ``'codes'``, see :class:`~ssr.archs.condition_encoders.KernelEncoder`.
        lr_in_ch: channels of the LR condition (3: RGB in [0, 1]).
        lr_encoder_channels: LR half-UNet widths; defaults to ``block_out_channels // 2``.
        lr_layers_per_block: resnets per LR input block.
        depth_encoder_channels / kernel_encoder_channels: conv-pyramid widths; default ``block_out_channels // 4``.
        freeze_base: freeze the base UNet (``requires_grad=False``); encoders and AMF (and LoRA) stay trainable.
        pretrained_unet: local diffusers folder of a pretrained base UNet (``UNet2DModel`` or
            ``UNet2DConditionModel``, or a pipeline folder with ``unet/``), see :func:`load_pretrained_unet`; its
            ``config.json`` decides ``block_out_channels``, the block types, ``layers_per_block``,
            ``norm_num_groups``, ``attention_head_dim`` and ``latent_channels`` (= its ``out_channels``), which may
            be left out (a value given that differs from the folder's raises). ``None``: a fresh ``UNet2DModel``.
        lr_input: what the base UNet gets beside z_t: ``'latent'`` (z_lr, C_lr channels) or ``'pixels'`` (the LR
            image in [-1, 1] resized to the latent grid, ``lr_in_ch`` channels, as LDM-SR and the SD x4 upscaler);
            ``None`` = ``'pixels'`` with ``pretrained_unet``, ``'latent'`` without.
        noise_level: ``class_labels`` of a base UNet with a class embedding (the SD x4 upscaler's noise level; the
            LR enters clean, as diffusers' upscaler with this ``noise_level`` but without its LR noise).
        prompt_embedding: ``UNet2DConditionModel`` only: a ``.pt`` / ``.pth`` / ``.safetensors`` file with one
            (1, L, D) or (L, D) tensor, D = ``cross_attention_dim`` (e.g. the text encoder's empty-prompt embedding),
            used as ``encoder_hidden_states`` at every call; ``None`` = zeros of (1, 1, cross_attention_dim).
        amf_norm_gate: AMF's ``norm_gate`` (identity at init, see :mod:`ssr.archs.amf`); ``None`` = on with
            ``pretrained_unet`` and a norm, off otherwise (the shipped scratch weights have no gate).
        lora_rank: rank of LoRA adapters on the base UNet's attention projections (diffusers' PEFT integration,
            needs ``peft``); 0 = none. They start at zero (identity) and stay trainable with ``freeze_base``.
        lora_alpha: LoRA scale numerator; ``None`` = ``lora_rank``.
        lora_target_modules: module names that get LoRA; ``None`` = ``to_q, to_k, to_v, to_out.0``.

    Raises:
        ValueError: on an unknown AMF site or modality, mismatched level counts, a pretrained UNet whose channels do
            not fit ``lr_input``, or as the parts it builds.
        FileNotFoundError: ``pretrained_unet`` or ``prompt_embedding`` is missing.
        ImportError: ``lora_rank`` > 0 without ``peft``.
    """

    @register_to_config
    def __init__(self, latent_channels: int = 4, lr_latent_channels: int | None = None,
                 block_out_channels: Sequence[int] = (128, 256, 512, 512),
                 down_block_types: Sequence[str] | None = None, up_block_types: Sequence[str] | None = None,
                 layers_per_block: int = 2, norm_num_groups: int = 32, attention_head_dim: int = 32,
                 amf_levels: Sequence[str] | None = None, amf_modalities: Sequence[str] | None = None,
                 amf_hidden: int = 128, amf_norm: str = 'batch',
                 amf_kernel_size: int = 1, kernel_in_ch: int = 441, kernel_input: str = 'field', lr_in_ch: int = 3,
                 lr_encoder_channels: Sequence[int] | None = None, lr_layers_per_block: int = 1,
                 depth_encoder_channels: Sequence[int] | None = None,
                 kernel_encoder_channels: Sequence[int] | None = None, freeze_base: bool = False,
                 pretrained_unet: str | None = None, lr_input: str | None = None, noise_level: int = 20,
                 prompt_embedding: str | None = None, amf_norm_gate: bool | None = None, lora_rank: int = 0,
                 lora_alpha: float | None = None, lora_target_modules: Sequence[str] | None = None) -> None:
        super().__init__()
        # 0. a pretrained base UNet decides the UNet's own arguments
        lr_input = lr_input or ('pixels' if pretrained_unet else 'latent')
        if lr_input not in LR_INPUTS:
            raise ValueError(f'AMFUNet: lr_input {lr_input!r} not in {LR_INPUTS}')
        base = None
        if pretrained_unet is not None:
            base, _ = load_pretrained_unet(pretrained_unet)
            _check_pretrained_unet(base)
            given = dict(block_out_channels=block_out_channels, down_block_types=down_block_types,
                         up_block_types=up_block_types, layers_per_block=layers_per_block,
                         norm_num_groups=norm_num_groups, attention_head_dim=attention_head_dim,
                         latent_channels=latent_channels)
            defaults = inspect.signature(type(self).__init__).parameters
            folder = {}
            for key, cfg_key in FOLDER_KEYS.items():
                value = base.config.get(cfg_key)
                value = list(value) if isinstance(value, (list, tuple)) else value
                mine = list(given[key]) if isinstance(given[key], (list, tuple)) else given[key]
                default = defaults[key].default
                default = list(default) if isinstance(default, (list, tuple)) else default
                if value is None:  # e.g. norm_num_groups: None in the folder: keep AMFUNet's own
                    continue
                if mine != default and mine != value:
                    raise ValueError(f'AMFUNet: network_g.{key} = {mine} differs from the pretrained UNet\'s {value} '
                                     f'({pretrained_unet}/config.json {cfg_key}); leave {key} out')
                folder[key] = value
            block_out_channels = folder['block_out_channels']
            down_block_types, up_block_types = folder['down_block_types'], folder['up_block_types']
            layers_per_block = folder.get('layers_per_block', layers_per_block)
            norm_num_groups = folder.get('norm_num_groups', norm_num_groups)
            attention_head_dim = folder.get('attention_head_dim', attention_head_dim)
            latent_channels = folder['latent_channels']
            self.register_to_config(**folder, lr_input=lr_input)
        else:
            self.register_to_config(lr_input=lr_input)

        # 1. check inputs
        n = len(block_out_channels)
        sites = _site_names(n)
        amf_levels = list(sites if amf_levels is None else amf_levels)
        unknown = [s for s in amf_levels if s not in sites]
        if unknown:
            raise ValueError(f'AMFUNet: amf_levels {unknown} not in {sites}')
        self.modalities = select_modalities(amf_modalities)
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
        widths = {m: chs for m, chs in widths.items() if m in self.modalities}
        for name, chs in widths.items():
            if len(chs) != n:
                raise ValueError(f'AMFUNet: {name} encoder channels {list(chs)} need one entry per level ({n})')

        # 2. base UNet and encoders
        unet_lr_ch = lr_in_ch if lr_input == 'pixels' else lr_latent_channels
        if base is None:
            self.unet = UNet2DModel(
                in_channels=latent_channels + unet_lr_ch, out_channels=latent_channels,
                down_block_types=tuple(down_block_types), up_block_types=tuple(up_block_types),
                block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                norm_num_groups=norm_num_groups, attention_head_dim=attention_head_dim)
        else:
            if base.config.in_channels != latent_channels + unet_lr_ch:
                what = f'lr_in_ch = {lr_in_ch} LR pixel' if lr_input == 'pixels' else f'C_lr = {unet_lr_ch} LR latent'
                raise ValueError(f'AMFUNet: the pretrained UNet takes {base.config.in_channels} input channels, not '
                                 f'{latent_channels} latent + {what} channels (lr_input: {lr_input}); set '
                                 f'network_g.lr_input / lr_latent_channels / lr_in_ch to what it was trained on')
            self.unet = base
        self.conditional = isinstance(self.unet, UNet2DConditionModel)
        if prompt_embedding is not None and not self.conditional:
            raise ValueError('AMFUNet: network_g.prompt_embedding is for a UNet2DConditionModel base; this one is a '
                             f'{type(self.unet).__name__} without cross-attention: drop prompt_embedding')
        if self.conditional:
            # not persistent: read from its file (or zeros) at build time, never part of a checkpoint
            self.register_buffer('prompt_embeds', self._prompt_embedding(prompt_embedding), persistent=False)
        # an unused modality's encoder is None: no parameters, and no keys in the state dict
        self.kernel_encoder = self.depth_encoder = self.lr_encoder = None
        if 'kernel' in self.modalities:
            self.kernel_encoder = KernelEncoder(in_ch=kernel_in_ch, channels=widths['kernel'],
                                                kernel_input=kernel_input)
        if 'depth' in self.modalities:
            self.depth_encoder = DepthEncoder(channels=widths['depth'])
        if 'lr' in self.modalities:
            self.lr_encoder = LREncoder(in_ch=lr_in_ch, block_out_channels=widths['lr'],
                                        layers_per_block=lr_layers_per_block, norm_num_groups=norm_num_groups)

        # 3. AMF per site: a wrapper that the forward runs each chosen block through
        self.amf_levels = amf_levels
        self.site_levels = {s: _site_level(s, n) for s in amf_levels}
        self.amf = nn.ModuleDict()
        if amf_norm_gate is None:
            amf_norm_gate = pretrained_unet is not None and amf_norm != 'none'
        for site in amf_levels:
            lvl = self.site_levels[site]
            self.amf[site] = AMFSite(
                site=site, level=lvl, feat_ch=_site_channels(site, block_out_channels),
                cond_chs=[widths[m][lvl] for m in self.modalities], hidden_ch=amf_hidden, norm=amf_norm,
                num_groups=norm_num_groups, kernel_size=amf_kernel_size, zero_init=True, norm_gate=amf_norm_gate)

        if freeze_base:
            self.unet.requires_grad_(False)
        if lora_rank:
            self._add_lora(lora_rank, lora_alpha, lora_target_modules)
        # init: diffusers' defaults (or the pretrained weights) for the UNet; encoders and AMF initialise themselves
        # (AMF output convs at zero, so the network starts as the base UNet with normalised block outputs, or as the
        # base UNet itself with the norm gate).

    def _prompt_embedding(self, path: str | None) -> Tensor:
        """(1, L, D) ``encoder_hidden_states`` of a ``UNet2DConditionModel`` base: the file's tensor, or zeros."""
        dims = self.unet.config.cross_attention_dim
        dims = set(dims) if isinstance(dims, (list, tuple)) else {dims}
        if len(dims) != 1:
            raise ValueError(f'AMFUNet: the pretrained UNet has per-block cross_attention_dim {sorted(dims)}; '
                             f'one width is supported')
        dim = dims.pop()
        if path is None:
            return torch.zeros(1, 1, dim)
        file = _local_path(path, 'prompt_embedding')
        if file.suffix == '.safetensors':
            from safetensors.torch import load_file

            obj = load_file(str(file))
        else:
            obj = safe_torch_load(file)
        if isinstance(obj, dict):
            tensors = [v for v in obj.values() if torch.is_tensor(v)]
            obj = tensors[0] if len(tensors) == 1 else None
        if not torch.is_tensor(obj) or obj.ndim not in (2, 3) or (obj.ndim == 3 and obj.shape[0] != 1) \
                or obj.shape[-1] != dim:
            raise ValueError(f'network_g.prompt_embedding: {str(file)!r} must hold one (1, L, {dim}) or (L, {dim}) '
                             f'tensor (D = the UNet\'s cross_attention_dim), got '
                             f'{tuple(obj.shape) if torch.is_tensor(obj) else type(obj).__name__}')
        return (obj[None] if obj.ndim == 2 else obj).float()

    def _add_lora(self, rank: int, alpha: float | None, targets: Sequence[str] | None) -> None:
        """LoRA (zero-initialised, so the output is unchanged) on the base UNet's attention projections via PEFT."""
        if importlib.util.find_spec('peft') is None:
            raise ImportError('AMFUNet: network_g.lora_rank needs the peft package: pip install peft (or set '
                              'lora_rank: 0)')
        from peft import LoraConfig, inject_adapter_in_model

        config = LoraConfig(r=int(rank), lora_alpha=alpha or rank, target_modules=list(targets or LORA_TARGETS),
                            init_lora_weights=True)
        if hasattr(self.unet, 'add_adapter'):  # diffusers' PEFT integration (UNet2DConditionModel)
            self.unet.add_adapter(config)
        else:  # UNet2DModel has no PeftAdapterMixin: the same injection add_adapter does
            inject_adapter_in_model(config, self.unet)

    def _run_block(self, site: str, block: nn.Module, features: list[list[Tensor]], *args, **kwargs):
        """``block(*args, **kwargs)``, through the site's :class:`AMFSite` when AMF is placed there."""
        if site in self.amf:
            return self.amf[site].wrap(block, features, *args, **kwargs)
        return block(*args, **kwargs)

    def _embedding(self, sample: Tensor, timestep: Tensor | int) -> Tensor:
        """The time (+ class) embedding, as diffusers' ``forward`` of the base UNet computes it."""
        unet, batch = self.unet, sample.shape[0]
        if self.conditional:  # UNet2DConditionModel.forward, steps 2-3 (no aug embedding: refused in __init__)
            emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), None)
            labels = None
            if unet.class_embedding is not None:
                labels = torch.full((batch,), self.config.noise_level, dtype=torch.long, device=sample.device)
            class_emb = unet.get_class_embed(sample=sample, class_labels=labels)
            if class_emb is not None:
                emb = torch.cat([emb, class_emb], dim=-1) if unet.config.class_embeddings_concat else emb + class_emb
            return emb if unet.time_embed_act is None else unet.time_embed_act(emb)
        # UNet2DModel.forward, step 1
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            timesteps = torch.tensor([timesteps], dtype=torch.long, device=sample.device)
        elif timesteps.ndim == 0:
            timesteps = timesteps[None].to(sample.device)
        timesteps = timesteps * torch.ones(batch, dtype=timesteps.dtype, device=timesteps.device)
        # the projection is float32; diffusers casts it to ``unet.dtype`` (its first floating parameter's dtype), read
        # here from the time embedding itself: the same dtype, and it also works in nn.DataParallel replicas, whose
        # parameter-less modules make diffusers' ``dtype`` lookup fail
        emb_dtype = unet.time_embedding.linear_1.weight.dtype
        emb = unet.time_embedding(unet.time_proj(timesteps).to(dtype=emb_dtype))
        if unet.class_embedding is not None:
            labels = torch.full((batch,), self.config.noise_level, dtype=torch.long, device=sample.device)
            if unet.config.class_embed_type == 'timestep':
                labels = unet.time_proj(labels)
            emb = emb + unet.class_embedding(labels).to(dtype=emb_dtype)
        return emb

    def _denoise(self, sample: Tensor, timestep: Tensor | int, features: list[list[Tensor]]) -> Tensor:
        """The base UNet's forward (diffusers ``UNet2DModel`` / ``UNet2DConditionModel.forward``) with AMF after the
        chosen blocks (Eq. 4).

        What this leaves out of diffusers' versions is absent from the base UNet: ``Skip*`` blocks, addition and
        encoder-projection embeddings are refused in ``__init__``; attention masks, ControlNet / adapter residuals and
        ``cross_attention_kwargs`` are never passed (the defaults of diffusers' pipelines). Class labels are
        ``noise_level``, the cross-attention context the fixed prompt embedding.

        Args:
            sample: (B, C + C_lr, h, w) ``concat(z_t, z_lr)`` (or ``concat(z_t, c_lr)``, LR pixels in [-1, 1]).
            timestep: (B,) or scalar timestep(s).
            features: ``[f1, f2, f3]`` (the used modalities' features) from :meth:`encode_conditions`.

        Returns:
            (B, C, h, w) prediction.
        """
        unet = self.unet
        # 0-1. input centring (off in diffusers' defaults) and the time embedding
        if unet.config.center_input_sample:
            sample = 2 * sample - 1.0
        emb = self._embedding(sample, timestep)
        context = {}
        if self.conditional:
            context = {'encoder_hidden_states': self.prompt_embeds.to(sample.dtype).expand(sample.shape[0], -1, -1)}

        def ctx(block: nn.Module) -> dict:  # cross-attention blocks take the context, the others do not
            return context if getattr(block, 'has_cross_attention', False) else {}

        # 2. down path; every down block hands its resnet (and downsampler) outputs to the up path
        sample = unet.conv_in(sample)
        res_stack = (sample,)
        for i, block in enumerate(unet.down_blocks):
            sample, res_samples = self._run_block(f'down{i}', block, features, hidden_states=sample, temb=emb,
                                                  **ctx(block))
            res_stack += res_samples

        # 3. mid
        if unet.mid_block is not None:
            sample = self._run_block('mid', unet.mid_block, features, sample, emb, **ctx(unet.mid_block))

        # 4. up path, popping the skip connections
        for j, block in enumerate(unet.up_blocks):
            res_samples = res_stack[-len(block.resnets):]
            res_stack = res_stack[:-len(block.resnets)]
            if self.conditional:
                sample = self._run_block(f'up{j}', block, features, hidden_states=sample, temb=emb,
                                         res_hidden_states_tuple=res_samples, **ctx(block))
            else:
                sample = self._run_block(f'up{j}', block, features, sample, res_samples, emb)

        # 5. output
        if unet.conv_norm_out is not None:
            sample = unet.conv_act(unet.conv_norm_out(sample))
        sample = unet.conv_out(sample)
        if not self.conditional and unet.config.time_embedding_type == 'fourier':
            timesteps = torch.as_tensor(timestep, device=sample.device)
            sample = sample / timesteps.reshape(-1, *([1] * (sample.ndim - 1))).expand(sample.shape[0], 1, 1, 1)
        return sample

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

    def required_conditions(self) -> tuple[str, ...]:
        """The conditions :meth:`forward` needs, named as its arguments: the used modalities, plus ``lr`` with
        ``lr_input='pixels'`` (the base UNet's LR input)."""
        needed = set(self.modalities) | ({'lr'} if self.config.lr_input == 'pixels' else set())
        return tuple(m for m in MODALITIES if m in needed)

    def encode_conditions(self, kernel: Tensor | None, depth: Tensor | None, lr: Tensor | None,
                          size: tuple[int, int]) -> list[list[Tensor]]:
        """Resizes each used condition to the latent grid ``size`` and encodes it: ``[f1, f2, f3]`` (kernel, depth,
        LR), or the ``amf_modalities`` among them in that order; the unused conditions are ignored (may be ``None``).

        With ``lr_input='pixels'`` a last entry ``[c_lr]`` follows: the base UNet's LR input, ``2 * lr - 1``
        resized to ``size``, (B, lr_in_ch, h, w) in [-1, 1] (a level-0 map, so tiling crops it like the others).
        Sampling calls this once and reuses the result at every step (``forward(..., features=...)``).

        Raises:
            ValueError: a condition of :meth:`required_conditions` is ``None``.
        """
        conds = {'kernel': kernel, 'depth': depth, 'lr': lr}
        missing = [m for m in self.required_conditions() if conds[m] is None]
        if missing:
            raise ValueError(f'AMFUNet: give {_and(self.required_conditions())}, or precomputed features (missing: '
                             f'{_and(missing)}; amf_modalities: {list(self.modalities)}, lr_input: '
                             f'{self.config.lr_input})')
        features = [getattr(self, f'{m}_encoder')(resize_to(conds[m], size)) for m in self.modalities]
        if self.config.lr_input == 'pixels':
            features.append([resize_to(lr, size) * 2 - 1])
        return features

    def forward(self, z_t: Tensor, t: Tensor | int, z_lr: Tensor, kernel: Tensor | None = None,
                depth: Tensor | None = None, lr: Tensor | None = None,
                features: list[list[Tensor]] | None = None) -> AMFUNetOutput:
        """Predicts the noise (or v / x0) of ``z_t`` at step ``t`` under the conditions.

        Args:
            z_t: (B, C, h, w) noisy latent; h, w multiples of ``2**(n-1)``.
            t: (B,) or scalar timestep(s).
            z_lr: (B, C_lr, h, w) latent of the LR condition.
            kernel: (B, k*k, H', W') kernel field (each pixel sums to 1) or (B, P, H', W') codes; ignored without
                ``kernel`` in ``amf_modalities``.
            depth: (B, 1, H'', W'') relative inverse depth in [0, 1]; ignored without ``depth`` in
                ``amf_modalities``.
            lr: (B, 3, H''', W''') LR image in [0, 1]; ignored without ``lr`` in ``amf_modalities`` when
                ``lr_input='latent'``.
            features: precomputed :meth:`encode_conditions` output, used instead of kernel / depth / lr.

        Returns:
            :class:`AMFUNetOutput` (its ``features`` are those of the used modalities, without ``c_lr``).

        Raises:
            ValueError: on wrong shapes, or when neither the needed conditions nor ``features`` are given.
        """
        # 1. check and encode the conditions (paper: f1 kernel, f2 depth, f3 LR)
        self._check_inputs(z_t, z_lr)
        if features is None:
            features = self.encode_conditions(kernel, depth, lr, tuple(z_t.shape[-2:]))
        n_mod = len(self.modalities)
        n_feats = n_mod + (self.config.lr_input == 'pixels')
        if len(features) != n_feats:
            raise ValueError(f'AMFUNet: features must be the {n_feats} entries of encode_conditions '
                             f'(amf_modalities: {list(self.modalities)}, lr_input: {self.config.lr_input}), got '
                             f'{len(features)}')
        # 2. run the UNet with AMF after the chosen blocks, the features passed along (Eq. 4)
        unet_lr = features[-1][0] if self.config.lr_input == 'pixels' else z_lr
        sample = self._denoise(torch.cat([z_t, unet_lr.to(z_t.dtype)], dim=1), t, features[:n_mod])
        return AMFUNetOutput(sample=sample, features=list(features[:n_mod]))
