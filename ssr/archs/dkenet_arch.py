"""DKENet: the Depth-Informed Kernel Estimate Network of SSR (paper §3.2, Fig. 3(b)).

DKENet predicts a spatially variant blur kernel for every LR pixel from the LR image and its depth map. Two branches:

- **LR branch**: 3x3 conv head -> Depth-Aware Blocks (full resolution) -> 2x2 stride-2 conv -> DABlocks (half
  resolution, twice the channels) -> 2x2 stride-2 transposed conv -> DABlocks (full resolution) -> 3x3 conv to k*k
  -> softmax over the k*k taps -> optional nearest upscale to the HR grid.
- **Depth branch**: the same layout with plain residual blocks (3x3 conv head, blocks, down, blocks, up, blocks);
  its feature map at each of the three stages conditions the SFT layer of every DABlock of that stage.

Reading of the paper's Depth-Aware Block (DABlock): "features are merged with depth information through an SFT
layer, followed by two MAConv layers interspersed with ReLU ... a Channel Split layer, bifurcating the channel count
and separately extracting features before their recombination". We read the channel split as MAConv's own split
(MANet introduced MAConv with exactly this motivation: split channels, extract features per group, recombine): the
block is ``y = SFT(x, depth_feat); out = y + MAConv(ReLU(MAConv(y)))``, each MAConv splitting its channels into
``split`` groups (two halves by default) that are convolved separately, modulated by each other, and concatenated.
Without depth (``use_depth=False``, the paper's "DI-Kernel without depth" ablation) a DABlock is a plain MABlock.

Our choices where the paper is silent: the up path adds the stage-1 features (a U-Net skip, as the depth branch
does), the half-resolution stage has 2x channels (as MANet's estimator), and the input is replicate-padded to even
size and cropped back.

Beyond the paper, ``depth_pooling=N > 0`` adds depth-binned evidence pooling (:class:`_DepthBinPooling`) after
stage 1 (full LR resolution, LR-grid depth) and after stage 2 (half resolution, depth 2x2-average-pooled): every pixel
is soft-assigned to N depth bins, each bin gets one image-wide descriptor (a confidence-weighted average of the
features of its pixels), and the descriptors are broadcast back and fused residually. Flat, textureless regions thus
borrow blur evidence from textured regions at the same depth (defocus blur is a function of depth). The fuse convs
are zero-initialised, so a fresh model computes exactly what it would without pooling; ``depth_pooling=0`` (the
default) builds no extra modules and keeps the paper's model and its state-dict keys unchanged.

A constant depth map (``svkr.depth: none``) still runs the depth branch, by design: its zero-padded convolutions make
the features of a constant map vary near the image border (within the branch's receptive field), so the SFT
conditioning is not a constant that could be computed once, and skipping the branch would change the kernels near
the border. What a constant map saves is the repetition: SVKR stops after its first round when the depth is fixed
(``ssr.pipelines.svkr``). A user without depth trains the ``use_depth=False`` net, which has no depth branch.

Notation: B batch, h x w LR size, k kernel size (``kernel_size``, odd), s = ``upscale_to_hr``, C = ``num_feat``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn
from torch.nn import functional as F

from ssr.archs.maconv import MABlock
from ssr.archs.sft import SFTLayer, resize_to

__all__ = ['DKENet', 'DKENetOutput']

_MULTIPLE = 2  # one stride-2 stage: padded sizes must be even


@dataclass
class DKENetOutput:
    """Output of :class:`DKENet`.

    Attributes:
        kernel: (B, k*k, h, w) per-LR-pixel kernels, each summing to 1 over dim 1 (row-major k x k taps).
        kernel_hr: (B, k*k, s*h, s*w) nearest-neighbour upscale of ``kernel`` (one kernel per HR pixel), or None
            when ``upscale_to_hr == 0``.
    """

    kernel: Tensor
    kernel_hr: Tensor | None = None


class _ResBlock(nn.Module):
    """``x + conv(ReLU(conv(x)))`` with 3x3 convs and ``ch`` channels."""

    def __init__(self, *, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class _DepthEncoder(nn.Module):
    """Depth branch: features at the three stages of the LR branch (C at 1x, 2C at 1/2, C at 1x).

    Args:
        ch: C, channels at full resolution.
        num_blocks: residual blocks per stage.
    """

    def __init__(self, *, ch: int, num_blocks: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(1, ch, 3, 1, 1)
        self.stage1 = nn.Sequential(*(_ResBlock(ch=ch) for _ in range(num_blocks)))
        self.down = nn.Conv2d(ch, 2 * ch, 2, 2)
        self.stage2 = nn.Sequential(*(_ResBlock(ch=2 * ch) for _ in range(num_blocks)))
        self.up = nn.ConvTranspose2d(2 * ch, ch, 2, 2)
        self.stage3 = nn.Sequential(*(_ResBlock(ch=ch) for _ in range(num_blocks)))

    def forward(self, depth: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Args: depth: (B, 1, h, w), h and w even. Returns: (B, C, h, w), (B, 2C, h/2, w/2), (B, C, h, w)."""
        f1 = self.stage1(self.head(depth))
        f2 = self.stage2(self.down(f1))
        f3 = self.stage3(self.up(f2) + f1)
        return f1, f2, f3


class _DepthBinPooling(nn.Module):
    """Depth-binned, image-wide evidence pooling: ``f + fuse(cat[f, b])`` (beyond the paper).

    With N bins of centres ``c_n = (n + 0.5) / N`` and temperature ``tau = 1 / N`` (one bin width), pixel p gets the
    soft assignment ``a_n(p) = softmax_n(-(d(p) - c_n)^2 / (2 tau^2))`` and the learned confidence
    ``w(p) = sigmoid(conv1x1(f)(p))``; bin n's descriptor is ``g_n = sum_p a_n w f / (sum_p a_n w + eps)`` over the
    whole image, broadcast back as ``b(p) = sum_n a_n(p) g_n``. ``fuse`` (1x1, 2C -> C) is zero-initialised, so the
    block starts as the identity.

    Args:
        ch: C, channels of the features.
        bins: N >= 1, number of depth bins.
    """

    eps = 1e-6

    def __init__(self, *, ch: int, bins: int) -> None:
        super().__init__()
        self.bins = bins
        self.confidence = nn.Conv2d(ch, 1, 1)
        self.fuse = nn.Conv2d(2 * ch, ch, 1)
        nn.init.zeros_(self.fuse.weight)  # the block starts as the identity
        nn.init.zeros_(self.fuse.bias)

    def forward(self, f: Tensor, d: Tensor) -> Tensor:
        """Args: f: (B, C, h, w) features; d: (B, 1, h, w) depth in [0, 1]. Returns: (B, C, h, w)."""
        n = self.bins
        centres = (torch.arange(n, device=f.device, dtype=f.dtype) + 0.5).div(n).view(1, n, 1, 1)
        a = torch.softmax(-(d.to(f.dtype) - centres).square() * (n * n / 2.0), dim=1)  # tau = 1/N: 1/(2tau^2)
        aw = a * torch.sigmoid(self.confidence(f))  # (B, N, h, w)
        g = torch.einsum('bnhw,bchw->bnc', aw, f) / (aw.sum((2, 3)).unsqueeze(-1) + self.eps)  # (B, N, C)
        b = torch.einsum('bnhw,bnc->bchw', a, g)
        return f + self.fuse(torch.cat([f, b], dim=1))


class _DABlock(nn.Module):
    """Depth-Aware Block: ``y = SFT(x, depth_feat)`` (identity without depth), then ``MABlock(y)``.

    Args:
        ch: channels of the features and of the depth features.
        split: MAConv channel groups.
        reduction: MAConv affine-network reduction.
        use_depth: with False the SFT layer is absent and ``depth_feat`` is ignored.
        sft_hidden_ch: hidden width of the SFT layer.
    """

    def __init__(self, *, ch: int, split: int, reduction: int, use_depth: bool, sft_hidden_ch: int) -> None:
        super().__init__()
        self.sft = SFTLayer(feat_ch=ch, cond_ch=ch, hidden_ch=sft_hidden_ch) if use_depth else None
        self.body = MABlock(ch=ch, kernel_size=3, split=split, reduction=reduction)

    def forward(self, x: Tensor, depth_feat: Tensor | None) -> Tensor:
        if self.sft is not None:
            x = self.sft(x, depth_feat)
        return self.body(x)


@ARCH_REGISTRY.register()
class DKENet(nn.Module):
    """Depth-informed, spatially variant kernel estimator (SSR §3.2); see the module docstring for the layout.

    Args:
        in_ch: channels of the LR input.
        num_feat: C, channels at full resolution (2C at half resolution), in both branches.
        num_blocks: DABlocks per stage (three stages), and residual blocks per depth-branch stage.
        split: channel groups of each MAConv (the DABlock's channel split).
        reduction: hidden-width reduction of the MAConv affine networks.
        kernel_size: k, odd size of the predicted kernels.
        use_depth: False builds the "DI-Kernel without depth" ablation: no depth branch, no SFT, depth ignored.
        upscale_to_hr: s > 0 also returns the per-HR-pixel field (nearest upscale by s); 0 returns the LR grid only.
        sft_hidden_ch: hidden width of the SFT layers.
        depth_pooling: beyond the paper: N > 0 adds depth-binned evidence pooling over N depth bins
            (:class:`_DepthBinPooling`, temperature 1/N, zero-initialised fuse conv so it starts as the identity)
            after stage 1 and stage 2; 0 (default) is the paper's model, with unchanged state-dict keys. Needs
            ``use_depth``.

    Raises:
        ValueError: on a non-positive size, an even ``kernel_size``, a negative ``upscale_to_hr``, MAConv settings
            that leave no channels, or a ``depth_pooling`` that is not an int >= 0 or is set with ``use_depth=False``.
    """

    def __init__(self, in_ch: int = 3, num_feat: int = 64, num_blocks: int = 1, split: int = 2, reduction: int = 2,
                 kernel_size: int = 21, use_depth: bool = True, upscale_to_hr: int = 0,
                 sft_hidden_ch: int = 32, depth_pooling: int = 0) -> None:
        super().__init__()
        for name, value in (('in_ch', in_ch), ('num_feat', num_feat), ('num_blocks', num_blocks),
                            ('sft_hidden_ch', sft_hidden_ch)):
            if value < 1:
                raise ValueError(f'DKENet: {name} must be >= 1, got {value}')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'DKENet: kernel_size must be odd and >= 1, got {kernel_size}')
        if upscale_to_hr < 0:
            raise ValueError(f'DKENet: upscale_to_hr must be 0 (LR grid only) or a scale >= 1, got {upscale_to_hr}')
        if isinstance(depth_pooling, bool) or not isinstance(depth_pooling, int) or depth_pooling < 0:
            raise ValueError(f'DKENet: depth_pooling must be an int >= 0 (0 = off), got {depth_pooling!r}')
        if depth_pooling and not use_depth:
            raise ValueError(f'DKENet: depth_pooling={depth_pooling} needs use_depth=True (it bins pixels by depth)')
        self.depth_pooling = depth_pooling
        self.in_ch, self.kernel_size, self.use_depth, self.upscale_to_hr = in_ch, kernel_size, use_depth, upscale_to_hr

        def stage(ch: int) -> nn.ModuleList:
            return nn.ModuleList(
                _DABlock(ch=ch, split=split, reduction=reduction, use_depth=use_depth, sft_hidden_ch=sft_hidden_ch)
                for _ in range(num_blocks))

        self.depth_encoder = _DepthEncoder(ch=num_feat, num_blocks=num_blocks) if use_depth else None
        self.head = nn.Conv2d(in_ch, num_feat, 3, 1, 1)
        self.stage1 = stage(num_feat)
        self.down = nn.Conv2d(num_feat, 2 * num_feat, 2, 2)
        self.stage2 = stage(2 * num_feat)
        self.up = nn.ConvTranspose2d(2 * num_feat, num_feat, 2, 2)
        self.stage3 = stage(num_feat)
        self.tail = nn.Conv2d(num_feat, kernel_size * kernel_size, 3, 1, 1)
        self._init_weights()
        # Built after the paper's modules are initialised, so those draw the same weights as without pooling; the
        # pooling blocks initialise themselves (default confidence conv, zero fuse conv).
        self.pool1 = _DepthBinPooling(ch=num_feat, bins=depth_pooling) if depth_pooling else None
        self.pool2 = _DepthBinPooling(ch=2 * num_feat, bins=depth_pooling) if depth_pooling else None

    def _init_weights(self) -> None:
        sft_convs = {id(m) for sft in self.modules() if isinstance(sft, SFTLayer) for m in sft.modules()}
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and id(m) not in sft_convs:
                nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # x0.1 on the last conv of every residual branch (as BasicSR's default_init_weights(..., 0.1)): the stacked
        # blocks start close to the identity.
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, MABlock):
                    for conv in m.conv2.conv:
                        conv.weight.mul_(0.1)
                elif isinstance(m, _ResBlock):
                    m.conv2.weight.mul_(0.1)

    def _check_inputs(self, lq: Tensor, depth: Tensor | None) -> None:
        if lq.dim() != 4 or lq.shape[1] != self.in_ch:
            raise ValueError(f'DKENet: lq must be (B, {self.in_ch}, h, w), got {tuple(lq.shape)}')
        if not self.use_depth:
            return
        if depth is None:
            raise ValueError('DKENet: depth (B, 1, H, W) is required when use_depth=True')
        if depth.dim() != 4 or depth.shape[1] != 1 or depth.shape[0] != lq.shape[0]:
            raise ValueError(f'DKENet: depth must be ({lq.shape[0]}, 1, H, W), got {tuple(depth.shape)}')

    def forward(self, lq: Tensor, depth: Tensor | None = None) -> DKENetOutput:
        """Estimates the kernel field.

        Args:
            lq: (B, in_ch, h, w) LR image, RGB in [0, 1].
            depth: (B, 1, H, W) relative inverse depth in [0, 1], any size (resized to h x w); required when
                ``use_depth``, ignored otherwise.

        Returns:
            :class:`DKENetOutput` with ``kernel`` (B, k*k, h, w) and, if ``upscale_to_hr``, ``kernel_hr``
            (B, k*k, s*h, s*w).

        Raises:
            ValueError: on bad shapes or a missing depth map.
        """
        # 1. Replicate-pad to even size so that the stride-2 stage round-trips exactly.
        self._check_inputs(lq, depth)
        h, w = lq.shape[-2:]
        pad = (0, (-w) % _MULTIPLE, 0, (-h) % _MULTIPLE)
        x = F.pad(lq, pad, mode='replicate')

        # 2. Depth branch: depth resized to the LR grid, padded like the image.
        if self.depth_encoder is not None:
            d = F.pad(resize_to(depth.to(lq.dtype), (h, w)), pad, mode='replicate')
            d1, d2, d3 = self.depth_encoder(d)
        else:
            d = d1 = d2 = d3 = None

        # 3. LR branch, conditioned stage by stage.
        f1 = self.head(x)
        for block in self.stage1:
            f1 = block(f1, d1)
        if self.pool1 is not None:  # depth pooling: padded grid (replicated edge pixels take part)
            f1 = self.pool1(f1, d)
        f2 = self.down(f1)
        for block in self.stage2:
            f2 = block(f2, d2)
        if self.pool2 is not None:
            f2 = self.pool2(f2, F.avg_pool2d(d, 2))
        f3 = self.up(f2) + f1
        for block in self.stage3:
            f3 = block(f3, d3)

        # 4. Kernel taps: softmax over k*k (positive, sum 1), cropped back to h x w.
        kernel = torch.softmax(self.tail(f3), dim=1)[..., :h, :w].contiguous()
        kernel_hr = None
        if self.upscale_to_hr:
            kernel_hr = F.interpolate(kernel, scale_factor=self.upscale_to_hr, mode='nearest')
        return DKENetOutput(kernel=kernel, kernel_hr=kernel_hr)
