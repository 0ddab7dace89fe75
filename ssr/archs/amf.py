"""Adaptive Multi-modal Fusion (AMF, paper §3.3, Eq. 3): condition-driven normalisation of UNet features.

Eq. 3, for modality i in {1: kernel, 2: depth, 3: LR}::

    F_out^i = (1 + M_alpha_i(f_i)) * Norm(F_in^i) + M_beta_i(f_i)

shaped like diffusers' ``SpatialNorm``: normalise, then a per-pixel scale and shift predicted from the condition
(resized to the feature size), applied as ``x * (1 + scale) + shift``. The paper uses BatchNorm; GroupNorm and no norm
are options.

Fine-tuning a pretrained UNet needs AMF to start as the identity, which a zero-initialised Eq. 3 is only without a
norm (``Norm(F)`` replaces ``F``). The ``norm_gate`` variant interpolates the normalised feature from ``F``::

    F_out = (1 + M_alpha(f)) * (F + g * (Norm(F) - F)) + M_beta(f),   g (per channel) initialised at 0

so at step 0 (``g = 0``, zero output convs) ``F_out = F`` exactly, for BatchNorm in train and eval mode alike, while
every parameter still gets a gradient from the first step (``g`` through ``Norm(F) - F``, the output convs through
their hidden activations). At ``g = 1`` it is Eq. 3.

Notation: B batch, C = ``feat_ch``, D = ``cond_ch``, (H, W) feature size, (H', W') condition size.

============  ==========================
code          paper (Eq. 3)
============  ==========================
``feat``      F_in^i
``cond``      f_i
``alpha``     M_alpha_i (conv MLP, ReLU)
``beta``      M_beta_i (conv MLP, ReLU)
``norm``      BN(.)
============  ==========================
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ssr.archs.sft import resize_to

__all__ = ['AMF', 'MultiModalAMF', 'AMF_NORMS', 'MODALITIES', 'select_modalities']

AMF_NORMS = ('batch', 'group', 'none')
MODALITIES = ('kernel', 'depth', 'lr')  # order of application (paper: f1 kernel, f2 depth, f3 LR)


def select_modalities(names: Sequence[str] | None, key: str = 'network_g.amf_modalities') -> tuple[str, ...]:
    """The modalities AMF fuses (the Table 2 ablations), in application order whatever order ``names`` lists.

    Args:
        names: a non-empty subset of ``MODALITIES``; ``None`` = all of them (the paper's SSR).
        key: the option that set ``names``, named in the errors.

    Returns:
        The names in the order of ``MODALITIES``.

    Raises:
        ValueError: ``names`` is a bare string, empty, repeats a name or holds a name not in ``MODALITIES``.
    """
    if names is None:
        return MODALITIES
    if isinstance(names, str):
        raise ValueError(f'{key}: expected a list of names from {MODALITIES}, got the string {names!r}')
    names = list(names)
    unknown = [n for n in names if n not in MODALITIES]
    if unknown:
        raise ValueError(f'{key}: {unknown} not in {MODALITIES}')
    if not names:
        raise ValueError(f'{key}: expected at least one of {MODALITIES}, got an empty list')
    if len(set(names)) != len(names):
        raise ValueError(f'{key}: {names} names a modality twice')
    return tuple(m for m in MODALITIES if m in names)


def _conv_mlp(in_ch: int, hidden_ch: int, out_ch: int, kernel_size: int) -> nn.Sequential:
    pad = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, hidden_ch, kernel_size, 1, pad), nn.ReLU(inplace=True),
        nn.Conv2d(hidden_ch, out_ch, kernel_size, 1, pad))


class AMF(nn.Module):
    """One AMF layer (Eq. 3): ``(1 + M_alpha(f)) * Norm(F) + M_beta(f)``.

    M_alpha and M_beta are separate conv MLPs (conv -> ReLU -> conv, both ``kernel_size``; 1 = per-pixel MLP) of width
    ``hidden_ch``. The condition is resized to the feature size (area when shrinking, bilinear otherwise). The norm
    has no affine parameters: the modulation plays that role (as in SPADE).

    Args:
        feat_ch: C, channels of the modulated features.
        cond_ch: D, channels of the condition features f.
        hidden_ch: hidden width of M_alpha and M_beta (paper: 128).
        norm: one of ``AMF_NORMS``: ``'batch'`` (paper), ``'group'`` or ``'none'``.
        num_groups: groups of the GroupNorm (``norm='group'`` only); must divide ``feat_ch``.
        kernel_size: 1 or 3, kernel of both convs of each MLP.
        zero_init: start the output convs of M_alpha and M_beta at zero, so the layer equals ``Norm(F)`` until
            trained (``F`` itself with ``norm_gate``).
        norm_gate: add the per-channel gate ``g`` (key ``norm_gate``, shape (C,), zeros) that blends ``F`` into
            ``Norm(F)`` (module docstring): with ``zero_init`` the layer starts as the identity. Needs a norm.

    Raises:
        ValueError: on a non-positive channel count, an unknown ``norm``, ``num_groups`` not dividing ``feat_ch``
            or a ``kernel_size`` other than 1 or 3, or ``norm_gate`` with ``norm='none'``.
    """

    def __init__(self, *, feat_ch: int, cond_ch: int, hidden_ch: int = 128, norm: str = 'batch', num_groups: int = 32,
                 kernel_size: int = 1, zero_init: bool = True, norm_gate: bool = False) -> None:
        super().__init__()
        for name, value in (('feat_ch', feat_ch), ('cond_ch', cond_ch), ('hidden_ch', hidden_ch)):
            if value < 1:
                raise ValueError(f'AMF: {name} must be >= 1, got {value}')
        if norm not in AMF_NORMS:
            raise ValueError(f'AMF: norm {norm!r} not in {AMF_NORMS}')
        if norm == 'group' and (num_groups < 1 or feat_ch % num_groups):
            raise ValueError(f'AMF: num_groups {num_groups} must divide feat_ch {feat_ch}')
        if kernel_size not in (1, 3):
            raise ValueError(f'AMF: kernel_size {kernel_size} not in (1, 3)')
        if norm_gate and norm == 'none':
            raise ValueError("AMF: norm_gate blends F into Norm(F) and needs norm 'batch' or 'group', not 'none' "
                             "(without a norm a zero-initialised AMF is already the identity)")
        self.feat_ch, self.cond_ch = feat_ch, cond_ch

        if norm == 'batch':
            self.norm = nn.BatchNorm2d(feat_ch, affine=False)
        elif norm == 'group':
            self.norm = nn.GroupNorm(num_groups, feat_ch, affine=False)
        else:
            self.norm = nn.Identity()
        self.alpha = _conv_mlp(cond_ch, hidden_ch, feat_ch, kernel_size)
        self.beta = _conv_mlp(cond_ch, hidden_ch, feat_ch, kernel_size)
        # registered only when asked for, so the state dicts of ungated layers (the shipped weights) keep their keys
        self.norm_gate = nn.Parameter(torch.zeros(feat_ch)) if norm_gate else None

        for mlp in (self.alpha, self.beta):
            nn.init.kaiming_normal_(mlp[0].weight, nonlinearity='relu')
            nn.init.zeros_(mlp[0].bias)
            nn.init.zeros_(mlp[2].bias)
            if zero_init:
                nn.init.zeros_(mlp[2].weight)
            else:
                # x0.1: a small modulation at step 0 that already depends on the condition.
                nn.init.kaiming_normal_(mlp[2].weight)
                mlp[2].weight.data.mul_(0.1)

    def forward(self, feat: Tensor, cond: Tensor) -> Tensor:
        """Modulates ``feat`` by ``cond``.

        Args:
            feat: (B, C, H, W) features F_in.
            cond: (B, D, H', W') condition features f, resized to (H, W).

        Returns:
            (B, C, H, W) features F_out.

        Raises:
            ValueError: if the channel counts do not match the layer.
        """
        if feat.shape[1] != self.feat_ch or cond.shape[1] != self.cond_ch:
            raise ValueError(f'AMF: expected {self.feat_ch} feature and {self.cond_ch} condition channels, '
                             f'got {feat.shape[1]} and {cond.shape[1]}')
        cond = resize_to(cond.to(feat.dtype), feat.shape[-2:])
        normed = self.norm(feat)
        if self.norm_gate is not None:  # F + g * (Norm(F) - F): F at g = 0, Norm(F) at g = 1
            normed = feat + self.norm_gate.to(feat.dtype).view(1, -1, 1, 1) * (normed - feat)
        return normed * (1 + self.alpha(cond)) + self.beta(cond)  # Eq. 3


class MultiModalAMF(nn.Module):
    """Eq. 3 for i = 1, 2, 3: one :class:`AMF` layer per modality, applied in order (kernel, depth, LR).

    Args:
        feat_ch: C, channels of the modulated features.
        cond_chs: channels of each modality's condition, in application order (paper: kernel, depth, LR).
        **amf_kwargs: keyword arguments of :class:`AMF` (``hidden_ch``, ``norm``, ``num_groups``, ``kernel_size``,
            ``zero_init``, ``norm_gate``), shared by all layers.

    Raises:
        ValueError: if ``cond_chs`` is empty, or as :class:`AMF`.
    """

    def __init__(self, *, feat_ch: int, cond_chs: Sequence[int], **amf_kwargs) -> None:
        super().__init__()
        if len(cond_chs) == 0:
            raise ValueError('MultiModalAMF: cond_chs must list at least one modality')
        self.layers = nn.ModuleList(AMF(feat_ch=feat_ch, cond_ch=c, **amf_kwargs) for c in cond_chs)

    def forward(self, feat: Tensor, conds: Sequence[Tensor]) -> Tensor:
        """Applies the layers in order.

        Args:
            feat: (B, C, H, W) features.
            conds: one (B, D_i, H_i, W_i) condition per layer, in the order of ``cond_chs``.

        Returns:
            (B, C, H, W) modulated features.

        Raises:
            ValueError: if the number of conditions differs from the number of layers.
        """
        if len(conds) != len(self.layers):
            raise ValueError(f'MultiModalAMF: expected {len(self.layers)} conditions, got {len(conds)}')
        for layer, cond in zip(self.layers, conds):
            feat = layer(feat, cond)
        return feat
