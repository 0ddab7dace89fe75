"""Mutual affine convolution (MAConv) and its residual block, from MANet (Liang et al., ICCV 2021).

MAConv splits the channels into ``split`` groups and convolves each group separately; before its convolution, a
group is modulated by an affine transform (sigmoid scale, translation) predicted by a small 1x1 network from the
*other* groups. Splitting reduces parameters compared with one full convolution, and the mutual modulation keeps the
groups exchanging information and adds non-linearity. SSR's Depth-Aware Block (paper §3.2) stacks two of them.

One class serves both of ssr's users, which differ only in how the groups are sized and named:

====================  ============================================  ============================================
argument              DKENet (default)                              MANet port (:mod:`ssr.archs.manet_arch`)
====================  ============================================  ============================================
``split_rounding``    ``'even'``: as equal as possible, the first   ``'round'``: ``round(C / split)`` channels
                      groups taking any remainder                   for all but the last group, which takes the
                                                                    rest
``module_names``      ``'lists'``: ``affine.{i}.*``, ``conv.{i}``   ``'manet'``: ``fc{i}.*``, ``conv{i}.*``
                      (all affine networks built first)             (official MANet keys), built fc0, conv0, ...
====================  ============================================  ============================================

Shapes: B batch, C_in / C_out channels, (H, W) size. Group i has ``in_split[i]`` input and ``out_split[i]`` output
channels (:func:`split_sizes`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ['MAConv', 'MABlock', 'split_sizes', 'SPLIT_ROUNDINGS', 'MODULE_NAMES']

SPLIT_ROUNDINGS = ('even', 'round')
MODULE_NAMES = ('lists', 'manet')


def split_sizes(channels: int, split: int, rounding: str = 'even') -> list[int]:
    """Sizes of ``split`` channel groups of ``channels`` in all.

    Args:
        channels: channels to split.
        split: number of groups.
        rounding: ``'even'``: as equal as possible, the first groups larger (``7, 3 -> [3, 2, 2]``); ``'round'``: MANet's
            ``round(channels / split)`` (Python's half-to-even rounding) for all but the last group, which takes the
            rest (``7, 3 -> [2, 2, 3]``, ``6, 4 -> [2, 2, 2, 0]``: sizes can reach zero).

    Raises:
        ValueError: on an unknown ``rounding``.
    """
    if rounding == 'even':
        return [channels // split + (1 if i < channels % split else 0) for i in range(split)]
    if rounding == 'round':
        sizes = [round(channels / split) for _ in range(split - 1)]
        return sizes + [channels - sum(sizes)]
    raise ValueError(f'split_rounding {rounding!r} not in {SPLIT_ROUNDINGS}')


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
        split_rounding: one of ``SPLIT_ROUNDINGS``, how the groups are sized (:func:`split_sizes`): ``'even'``
            (DKENet) or ``'round'`` (MANet).
        module_names: one of ``MODULE_NAMES``, the state-dict layout: ``'lists'`` (``affine.{i}``, ``conv.{i}``,
            DKENet) or ``'manet'`` (``fc{i}``, ``conv{i}``, official MANet checkpoints).

    Raises:
        ValueError: on too few channels for ``split``, an even ``kernel_size``, an unknown ``split_rounding`` or
            ``module_names``, or a rounding / ``reduction`` that leaves an empty group or hidden layer.
    """

    def __init__(self, *, in_ch: int, out_ch: int, kernel_size: int = 3, split: int = 2, reduction: int = 2,
                 bias: bool = True, split_rounding: str = 'even', module_names: str = 'lists') -> None:
        super().__init__()
        # 1. check inputs
        if split < 2:
            raise ValueError(f'MAConv: split must be >= 2, got {split}')
        if in_ch < split or out_ch < split:
            raise ValueError(f'MAConv: in_ch ({in_ch}) and out_ch ({out_ch}) must be >= split ({split})')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'MAConv: kernel_size must be odd and >= 1, got {kernel_size}')
        if split_rounding not in SPLIT_ROUNDINGS:
            raise ValueError(f'MAConv: split_rounding {split_rounding!r} not in {SPLIT_ROUNDINGS}')
        if module_names not in MODULE_NAMES:
            raise ValueError(f'MAConv: module_names {module_names!r} not in {MODULE_NAMES}')
        self.in_split = split_sizes(in_ch, split, split_rounding)
        self.out_split = split_sizes(out_ch, split, split_rounding)
        if min(self.in_split + self.out_split) < 1:
            raise ValueError(f'MAConv: split_rounding {split_rounding!r} leaves an empty split of in_ch {in_ch} '
                             f'({self.in_split}) or out_ch {out_ch} ({self.out_split})')
        hidden = [(in_ch - c) // max(reduction, 1) for c in self.in_split]
        if reduction < 1 or min(hidden) < 1:
            raise ValueError(f'MAConv: reduction {reduction} leaves no hidden channel for in_ch {in_ch} and '
                             f'split {split} (an empty split or hidden layer)')
        self.module_names = module_names

        # 2. layers, named and built in the order of the layout's origin (so seeded inits stay as they were)
        def affine(c: int, h: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(in_ch - c, h, 1), nn.ReLU(inplace=True), nn.Conv2d(h, 2 * c, 1))

        def conv(c_in: int, c_out: int) -> nn.Conv2d:
            return nn.Conv2d(c_in, c_out, kernel_size, 1, kernel_size // 2, bias=bias)

        if module_names == 'lists':
            self.affine = nn.ModuleList(affine(c, h) for c, h in zip(self.in_split, hidden))
            self.conv = nn.ModuleList(conv(c_in, c_out) for c_in, c_out in zip(self.in_split, self.out_split))
        else:
            for i, (c_in, c_out, h) in enumerate(zip(self.in_split, self.out_split, hidden)):
                setattr(self, f'fc{i}', affine(c_in, h))
                setattr(self, f'conv{i}', conv(c_in, c_out))

    def _group(self, i: int) -> tuple[nn.Module, nn.Module]:
        """(affine_i, conv_i) of group i."""
        if self.module_names == 'lists':
            return self.affine[i], self.conv[i]
        return getattr(self, f'fc{i}'), getattr(self, f'conv{i}')

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: (B, C_in, H, W). Returns: (B, C_out, H, W)."""
        groups = torch.split(x, self.in_split, dim=1)
        out = []
        for i in range(len(groups)):
            affine, conv = self._group(i)
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
