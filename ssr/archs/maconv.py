"""Mutual affine convolution (MAConv) and its residual block, from MANet (Liang et al., ICCV 2021).

MAConv splits the channels into ``split`` groups and convolves each group separately; before its convolution, a
group is modulated by an affine transform (sigmoid scale, translation) predicted by a small 1x1 network from the
*other* groups. Splitting reduces parameters compared with one full convolution, and the mutual modulation keeps the
groups exchanging information and adds non-linearity. SSR's Depth-Aware Block (paper §3.2) stacks two of them.

Shapes: B batch, C_in / C_out channels, (H, W) size. Group i has ``in_split[i]`` input and ``out_split[i]`` output
channels (as equal as possible, the first groups taking any remainder).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ['MAConv', 'MABlock', 'split_sizes']


def split_sizes(channels: int, split: int) -> list[int]:
    """Sizes of ``split`` channel groups of ``channels`` in all, as equal as possible (first groups larger)."""
    return [channels // split + (1 if i < channels % split else 0) for i in range(split)]


class MAConv(nn.Module):
    """Mutual affine convolution.

    For group i with input ``x_i`` and the other groups ``r_i = concat(x_j, j != i)``::

        scale_i, shift_i = affine_i(r_i)            # 1x1 conv -> ReLU -> 1x1 conv, C_rest -> C_rest/reduction -> 2*C_i
        y_i = conv_i(x_i * sigmoid(scale_i) + shift_i)
        y = concat(y_0, ..., y_{split-1})

    Args:
        in_ch: C_in, input channels, >= ``split``.
        out_ch: C_out, output channels, >= ``split``.
        kernel_size: odd size of the group convolutions (padding keeps the size).
        split: number of channel groups, >= 2.
        reduction: width reduction of the affine networks' hidden layer.
        bias: bias of the group convolutions.

    Raises:
        ValueError: on too few channels for ``split``, an even ``kernel_size`` or a hidden width below 1.
    """

    def __init__(self, *, in_ch: int, out_ch: int, kernel_size: int = 3, split: int = 2, reduction: int = 2,
                 bias: bool = True) -> None:
        super().__init__()
        if split < 2:
            raise ValueError(f'MAConv: split must be >= 2, got {split}')
        if in_ch < split or out_ch < split:
            raise ValueError(f'MAConv: in_ch ({in_ch}) and out_ch ({out_ch}) must be >= split ({split})')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'MAConv: kernel_size must be odd and >= 1, got {kernel_size}')
        self.in_split = split_sizes(in_ch, split)
        self.out_split = split_sizes(out_ch, split)
        hidden = [(in_ch - c) // max(reduction, 1) for c in self.in_split]
        if reduction < 1 or min(hidden) < 1:
            raise ValueError(f'MAConv: reduction {reduction} leaves no hidden channel for in_ch {in_ch} and '
                             f'split {split}')
        self.affine = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_ch - c, h, 1), nn.ReLU(inplace=True), nn.Conv2d(h, 2 * c, 1))
            for c, h in zip(self.in_split, hidden))
        self.conv = nn.ModuleList(
            nn.Conv2d(c_in, c_out, kernel_size, 1, kernel_size // 2, bias=bias)
            for c_in, c_out in zip(self.in_split, self.out_split))

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: (B, C_in, H, W). Returns: (B, C_out, H, W)."""
        groups = torch.split(x, self.in_split, dim=1)
        out = []
        for i, (affine, conv) in enumerate(zip(self.affine, self.conv)):
            rest = torch.cat([g for j, g in enumerate(groups) if j != i], dim=1)
            scale, shift = affine(rest).chunk(2, dim=1)
            out.append(conv(groups[i] * torch.sigmoid(scale) + shift))
        return torch.cat(out, dim=1)


class MABlock(nn.Module):
    """Residual block ``x + MAConv(ReLU(MAConv(x)))`` with C channels throughout.

    Args:
        ch: C, channels.
        kernel_size: odd size of the group convolutions.
        split: channel groups of each MAConv.
        reduction: width reduction of the MAConv affine networks.

    Raises:
        ValueError: as :class:`MAConv`.
    """

    def __init__(self, *, ch: int, kernel_size: int = 3, split: int = 2, reduction: int = 2) -> None:
        super().__init__()
        opts = dict(in_ch=ch, out_ch=ch, kernel_size=kernel_size, split=split, reduction=reduction)
        self.conv1 = MAConv(**opts)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = MAConv(**opts)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: (B, C, H, W). Returns: (B, C, H, W)."""
        return x + self.conv2(self.act(self.conv1(x)))
