"""Condition encoders of SSR's AMF (paper §3.3): one feature map per UNet level for each modality.

- :class:`LREncoder` (f3, the primary modality, largest): a half UNet built from diffusers blocks — input blocks
  (``conv_in`` + one ``DownBlock2D`` per level, no time embedding), a middle block (``UNetMidBlock2D``) and
  feature-translate blocks (one 1x1 conv per level to that UNet level's channels).
- :class:`DepthEncoder` (f2) and :class:`KernelEncoder` (f1): smaller conv pyramids (conv, SiLU, stride-2 conv between
  levels) with the same per-level layout.

Every encoder returns a list of L tensors, highest resolution first; level l has stride ``2**l`` relative to the
encoder's input and ``feature_info[l]['num_chs']`` channels (timm's ``feature_info`` convention).

Notation: B batch, (h, w) input size of the encoder (AMFUNet resizes every condition to the latent grid first),
L = number of levels, k kernel size, P = PCA code length.
"""
from __future__ import annotations

from typing import Sequence

from diffusers.models.unets.unet_2d_blocks import DownBlock2D, UNetMidBlock2D
from torch import Tensor, nn

__all__ = ['LREncoder', 'DepthEncoder', 'KernelEncoder', 'KERNEL_INPUTS']

KERNEL_INPUTS = ('field', 'codes')


def _check_channels(owner: str, name: str, chs: Sequence[int]) -> None:
    if len(chs) == 0 or any(c < 1 for c in chs):
        raise ValueError(f'{owner}: {name} must be a non-empty list of positive ints, got {list(chs)}')


def _feature_info(chs: Sequence[int]) -> list[dict]:
    return [{'num_chs': int(c), 'reduction': 2**i, 'module': f'level{i}'} for i, c in enumerate(chs)]


def _check_input(owner: str, x: Tensor, in_ch: int, levels: int) -> None:
    if x.ndim != 4 or x.shape[1] != in_ch:
        raise ValueError(f'{owner}: expected a (B, {in_ch}, h, w) input, got {tuple(x.shape)}')
    min_size = 2**(levels - 1)
    if x.shape[-2] < min_size or x.shape[-1] < min_size:
        raise ValueError(f'{owner}: input size {tuple(x.shape[-2:])} is smaller than {min_size} (2**(levels-1))')


class LREncoder(nn.Module):
    """Half UNet for the LR image (f3): input blocks, middle block, feature-translate blocks.

    Args:
        in_ch: channels of the input (3 for an RGB LR image in [0, 1], or the first-stage latent channels).
        block_out_channels: width of each input block (one per level).
        out_channels: channels of each level's output (the AMF-UNet's ``block_out_channels``); defaults to
            ``block_out_channels``.
        layers_per_block: resnets per input block.
        norm_num_groups: GroupNorm groups of the resnets; must divide every width.
        mid_attention: whether the middle block has a self-attention layer.

    Raises:
        ValueError: on an empty or non-positive channel list, mismatched lengths or indivisible group counts.
    """

    def __init__(self, *, in_ch: int = 3, block_out_channels: Sequence[int] = (64, 128, 256, 256),
                 out_channels: Sequence[int] | None = None, layers_per_block: int = 1, norm_num_groups: int = 32,
                 mid_attention: bool = True) -> None:
        super().__init__()
        out_channels = block_out_channels if out_channels is None else out_channels
        _check_channels('LREncoder', 'block_out_channels', block_out_channels)
        _check_channels('LREncoder', 'out_channels', out_channels)
        if len(out_channels) != len(block_out_channels):
            raise ValueError(f'LREncoder: out_channels {list(out_channels)} must have one entry per level '
                             f'({len(block_out_channels)})')
        if any(c % norm_num_groups for c in block_out_channels):
            raise ValueError(f'LREncoder: norm_num_groups {norm_num_groups} must divide every block_out_channels '
                             f'{list(block_out_channels)}')
        if in_ch < 1 or layers_per_block < 1:
            raise ValueError(f'LREncoder: in_ch and layers_per_block must be >= 1, got {in_ch}, {layers_per_block}')
        self.in_ch, self.levels = in_ch, len(block_out_channels)
        self.feature_info = _feature_info(out_channels)

        self.conv_in = nn.Conv2d(in_ch, block_out_channels[0], 3, 1, 1)
        self.input_blocks = nn.ModuleList()
        prev = block_out_channels[0]
        for i, ch in enumerate(block_out_channels):
            self.input_blocks.append(DownBlock2D(
                in_channels=prev, out_channels=ch, temb_channels=None, num_layers=layers_per_block,
                resnet_groups=norm_num_groups, add_downsample=i < self.levels - 1))
            prev = ch
        self.middle_block = UNetMidBlock2D(
            in_channels=prev, temb_channels=None, resnet_groups=norm_num_groups, add_attention=mid_attention,
            attention_head_dim=prev)
        self.translate_blocks = nn.ModuleList(
            nn.Conv2d(c, o, 1) for c, o in zip(block_out_channels, out_channels))

        nn.init.kaiming_normal_(self.conv_in.weight)
        nn.init.zeros_(self.conv_in.bias)
        for conv in self.translate_blocks:
            nn.init.kaiming_normal_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Encodes the LR image.

        Args:
            x: (B, in_ch, h, w), h and w at least ``2**(L-1)``.

        Returns:
            L maps; level l is (B, out_channels[l], ceil(h / 2**l), ceil(w / 2**l)).
        """
        _check_input('LREncoder', x, self.in_ch, self.levels)
        h = self.conv_in(x)
        per_level = []
        for block in self.input_blocks:
            h, states = block(h)
            # the level's feature is the last resnet output, before the block's downsampler
            per_level.append(states[len(block.resnets) - 1])
        per_level[-1] = self.middle_block(per_level[-1])
        return [ftb(f) for ftb, f in zip(self.translate_blocks, per_level)]


class _ConvPyramid(nn.Module):
    """conv3x3 -> SiLU -> [stride-2 conv3x3 -> SiLU -> conv3x3 -> SiLU] per level; one map per level."""

    def __init__(self, *, owner: str, in_ch: int, channels: Sequence[int]) -> None:
        super().__init__()
        _check_channels(owner, 'channels', channels)
        if in_ch < 1:
            raise ValueError(f'{owner}: in_ch must be >= 1, got {in_ch}')
        self.owner, self.in_ch, self.levels = owner, in_ch, len(channels)
        self.feature_info = _feature_info(channels)
        self.stages = nn.ModuleList()
        prev = in_ch
        for i, ch in enumerate(channels):
            self.stages.append(nn.Sequential(
                nn.Conv2d(prev, ch, 3, 1 if i == 0 else 2, 1), nn.SiLU(),
                nn.Conv2d(ch, ch, 3, 1, 1), nn.SiLU()))
            prev = ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        _check_input(self.owner, x, self.in_ch, self.levels)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class DepthEncoder(_ConvPyramid):
    """Small conv pyramid for the depth map (f2).

    Args:
        channels: width of each level.
        in_ch: depth channels (1: relative inverse depth in [0, 1]).

    Forward: ``(B, in_ch, h, w) -> [(B, channels[l], ceil(h / 2**l), ceil(w / 2**l)) for l in range(L)]``.
    """

    def __init__(self, *, channels: Sequence[int] = (32, 64, 64, 64), in_ch: int = 1) -> None:
        super().__init__(owner='DepthEncoder', in_ch=in_ch, channels=channels)


class KernelEncoder(_ConvPyramid):
    """Small conv pyramid for the kernel field (f1), read as k*k kernel values or as PCA codes.

    With ``kernel_input='field'`` the input is a kernel field (B, k*k, h, w) whose pixels sum to 1 over dim 1; it is
    multiplied by k*k so that a flat kernel reads as ones (raw values are ~1/k^2, too small for default init). With
    ``'codes'`` the input is (B, P, h, w) PCA codes, read as they are.

    Args:
        in_ch: k*k for ``'field'``, P for ``'codes'``.
        channels: width of each level.
        kernel_input: one of ``KERNEL_INPUTS``.

    Forward: ``(B, in_ch, h, w) -> [(B, channels[l], ceil(h / 2**l), ceil(w / 2**l)) for l in range(L)]``.

    Raises:
        ValueError: on an unknown ``kernel_input``, or ``in_ch`` not a square of an odd size for ``'field'``.
    """

    def __init__(self, *, in_ch: int = 441, channels: Sequence[int] = (32, 64, 64, 64),
                 kernel_input: str = 'field') -> None:
        if kernel_input not in KERNEL_INPUTS:
            raise ValueError(f'KernelEncoder: kernel_input {kernel_input!r} not in {KERNEL_INPUTS}')
        k = round(in_ch**0.5)
        if kernel_input == 'field' and (k * k != in_ch or k % 2 == 0):
            raise ValueError(f'KernelEncoder: in_ch {in_ch} is not k*k for an odd k (kernel_input=\'field\')')
        super().__init__(owner='KernelEncoder', in_ch=in_ch, channels=channels)
        self.kernel_input = kernel_input

    def forward(self, x: Tensor) -> list[Tensor]:
        """Encodes a kernel field or PCA codes, see the class docstring."""
        if self.kernel_input == 'field':
            x = x * self.in_ch
        return super().forward(x)
