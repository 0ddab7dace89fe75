"""DPT / MiDaS decoder blocks: token reassembly, residual fusion, depth head, and the bare depth network.

Ranftl et al., "Vision Transformers for Dense Prediction" (DPT, ICCV 2021) and "Towards Robust Monocular Depth
Estimation" (MiDaS, TPAMI 2020). Module and attribute names follow the official isl-org/MiDaS code
(``midas/blocks.py``, ``midas/backbones/utils.py``, ``midas/dpt_depth.py``) so that the official checkpoints' keys
(``pretrained.act_postprocess{i}.*``, ``scratch.layer{i}_rn``, ``scratch.refinenet{i}.*``,
``scratch.output_conv.*``) load without renaming. The code is our own.

Notation: B batch, H x W network input (multiples of 32), N = h*w tokens on the h x w = H/16 x W/16 patch grid,
C_vit the transformer width, F the decoder width (``features``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ['ProjectReadout', 'Reassemble', 'ResidualConvUnit', 'FeatureFusionBlock', 'DepthHead', 'FusionDecoder',
           'MidasDepthNet', 'INPUT_MULTIPLE']

INPUT_MULTIPLE = 32  # the coarsest decoder level is at stride 32


class ProjectReadout(nn.Module):
    """DPT "project" readout: concatenate each patch token with the class token, then Linear(2 C, C) + GELU.

    Args:
        vit_ch: C_vit.
        start_index: number of prefix tokens (class token first) dropped from the output.
    """

    def __init__(self, *, vit_ch: int, start_index: int = 1) -> None:
        super().__init__()
        self.start_index = start_index
        self.project = nn.Sequential(nn.Linear(2 * vit_ch, vit_ch), nn.GELU())

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, prefix + N, C_vit) -> (B, N, C_vit)."""
        patches = tokens[:, self.start_index:]
        readout = tokens[:, :1].expand_as(patches)
        return self.project(torch.cat((patches, readout), dim=-1))


class Reassemble(nn.Sequential):
    """DPT reassemble block: readout, tokens to an (h, w) map, 1x1 conv to ``out_ch``, then resample by ``factor``.

    The official ``act_postprocess{i}`` is ``Sequential(readout, Transpose, Unflatten(fixed grid), conv, resample)``;
    slots 1 and 2 hold no parameters, and the grid depends on the input size, so here they are identities and
    :meth:`forward` reshapes with the grid it is given. The slot indices stay those of the official checkpoints.

    Args:
        vit_ch: C_vit.
        out_ch: channels after the 1x1 conv.
        factor: 4 or 2 (transposed conv of that kernel and stride), 1 (none) or 0.5 (3x3 conv, stride 2).
    """

    def __init__(self, *, vit_ch: int, out_ch: int, factor: float) -> None:
        layers = [ProjectReadout(vit_ch=vit_ch), nn.Identity(), nn.Identity(), nn.Conv2d(vit_ch, out_ch, 1)]
        if factor in (2, 4):
            layers.append(nn.ConvTranspose2d(out_ch, out_ch, kernel_size=int(factor), stride=int(factor)))
        elif factor == 0.5:
            layers.append(nn.Conv2d(out_ch, out_ch, kernel_size=3, stride=2, padding=1))
        elif factor != 1:
            raise ValueError(f'reassemble factor {factor!r} not in (4, 2, 1, 0.5)')
        super().__init__(*layers)

    def forward(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:  # type: ignore[override]
        """(B, prefix + N, C_vit) tokens on an ``grid = (h, w)`` patch grid -> (B, out_ch, h * factor, w * factor)."""
        x = self[0](tokens).transpose(1, 2).unflatten(2, grid)
        for layer in list(self)[3:]:
            x = layer(x)
        return x


class ResidualConvUnit(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))`` with 3x3 convs (official ``ResidualConvUnit_custom``, no batch norm)."""

    def __init__(self, *, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    """RefineNet-style fusion: add the refined skip, refine, upsample (bilinear, corners aligned), 1x1 conv.

    Args:
        ch: input channels.
        expand: halve the channels in ``out_conv`` (MiDaS small's pyramid of widths).
    """

    def __init__(self, *, ch: int, expand: bool = False) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(ch, ch // 2 if expand else ch, 1)
        self.resConfUnit1 = ResidualConvUnit(ch=ch)
        self.resConfUnit2 = ResidualConvUnit(ch=ch)

    def forward(self, x: Tensor, skip: Tensor | None = None, *, size: Sequence[int] | None = None) -> Tensor:
        """(B, ch, h, w) [+ skip of the same shape] -> (B, ch or ch/2, *size), ``size`` defaulting to (2h, 2w)."""
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        size = tuple(size) if size is not None else (2 * x.shape[-2], 2 * x.shape[-1])
        x = F.interpolate(x, size=size, mode='bilinear', align_corners=True)
        return self.out_conv(x)


class _Upsample2x(nn.Module):
    """Bilinear x2 upsampling; ``align_corners`` differs between DPT (True) and MiDaS small (False)."""

    def __init__(self, *, align_corners: bool) -> None:
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=self.align_corners)


class DepthHead(nn.Sequential):
    """Official ``scratch.output_conv``: conv 3x3 (F -> F/2), x2 upsample, conv 3x3 (-> 32), ReLU, conv 1x1 (-> 1),
    ReLU (non-negative inverse depth). Indices 0, 2, 4 carry the weights, as in the checkpoints."""

    def __init__(self, *, ch: int, align_corners: bool) -> None:
        super().__init__(
            nn.Conv2d(ch, ch // 2, 3, 1, 1),
            _Upsample2x(align_corners=align_corners),
            nn.Conv2d(ch // 2, 32, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(),
        )


class FusionDecoder(nn.Module):
    """Official ``scratch``: per-level 3x3 convs to the decoder widths, four fusion blocks (coarse to fine), head.

    Args:
        in_channels: channels of the four backbone levels (strides 4, 8, 16, 32).
        features: F, decoder width at stride 4.
        expand: widths F, 2F, 4F, 8F for the four levels (MiDaS small) instead of F everywhere (DPT).
        head_align_corners: ``align_corners`` of the head's x2 upsampling.
    """

    def __init__(self, *, in_channels: Sequence[int], features: int, expand: bool, head_align_corners: bool) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f'in_channels must list 4 levels, got {tuple(in_channels)}')
        widths = [features * 2**i if expand else features for i in range(4)]
        for i, (c_in, c_out) in enumerate(zip(in_channels, widths), start=1):
            self.add_module(f'layer{i}_rn', nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))
        for i, width in enumerate(widths, start=1):
            # the finest block keeps F channels for the head, as in the official MidasNet_small
            self.add_module(f'refinenet{i}', FeatureFusionBlock(ch=width, expand=expand and i > 1))
        self.output_conv = DepthHead(ch=features, align_corners=head_align_corners)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Four (B, C_i, H / 2^(i+1), W / 2^(i+1)) maps -> (B, 1, H, W) non-negative inverse depth.

        The official DPT passes each fusion block the size of the next finer level and MiDaS small doubles the size;
        the two agree whenever H and W are multiples of 32, which the networks require.
        """
        l1, l2, l3, l4 = (getattr(self, f'layer{i}_rn')(f) for i, f in enumerate(feats, start=1))
        path = self.refinenet4(l4, size=l3.shape[-2:])
        path = self.refinenet3(path, l3, size=l2.shape[-2:])
        path = self.refinenet2(path, l2, size=l1.shape[-2:])
        path = self.refinenet1(path, l1)
        return self.output_conv(path)


class MidasDepthNet(nn.Module):
    """Bare MiDaS / DPT network: ``pretrained`` (backbone adapter) + ``scratch`` (decoder), official key layout.

    Its input is the official preprocessed image and its output the official ``(B, H, W)`` prediction, so it can be
    compared with the official model number for number.

    Args:
        backbone: adapter from :mod:`ssr.archs.midas_backbones` (``forward(x) -> 4 maps``, ``feature_info``,
            ``check_input_size``).
        features: F.
        expand: MiDaS small's widening decoder.
        head_align_corners: ``align_corners`` of the head's upsampling (DPT True, MiDaS small False).

    Attributes:
        feature_info: the output's channels and stride, ``[{'num_chs': 1, 'reduction': 1, 'module': 'scratch'}]``;
            the backbone levels are in ``pretrained.feature_info``.
    """

    def __init__(self, backbone: nn.Module, *, features: int = 256, expand: bool = False,
                 head_align_corners: bool = True) -> None:
        super().__init__()
        self.pretrained = backbone
        channels = [info['num_chs'] for info in backbone.feature_info]
        self.scratch = FusionDecoder(in_channels=channels, features=features, expand=expand,
                                     head_align_corners=head_align_corners)
        self.feature_info = [{'num_chs': 1, 'reduction': 1, 'module': 'scratch'}]

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The four backbone maps (after reassembly) for a preprocessed (B, 3, H, W) input."""
        self.pretrained.check_input_size(x)
        return self.pretrained(x)

    def forward(self, x: Tensor) -> Tensor:
        """Preprocessed (B, 3, H, W) image -> (B, H, W) non-negative relative inverse depth (unbounded)."""
        return self.scratch(self.forward_features(x)).squeeze(1)
