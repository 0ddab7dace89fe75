"""Backbone adapters of the MiDaS / DPT depth networks over timm models (timm 1.x, ``pretrained=False``).

Each adapter *composes* a timm model (kept as ``self.model`` so the official ``pretrained.model.*`` keys match) and
returns the four feature maps the DPT decoder fuses, at strides 4, 8, 16 and 32. Nothing is patched on the timm
instances: where the official code replaces timm methods with ``types.MethodType`` (``midas/backbones/vit.py``,
``beit.py``), which broke on newer timm, the needed forward is a function of its own here.

Features are collected by the adapter's own forward, in a list local to the call, instead of forward hooks writing
into the official module-level ``activations`` dict (two official models in one process overwrite each other's
features there). Tests check the collected tensors against forward hooks on timm's own forward.

| family       | timm model                 | levels 1-4 taken from                                 | input sizes      |
|--------------|----------------------------|-------------------------------------------------------|------------------|
| ViT          | ``vit_large_patch16_384``  | blocks ``hooks``, readout + reassemble (x4, x2, 1, /2)| multiples of 32  |
| ViT hybrid   | ``vit_base_r50_s16_384``   | ResNet ``stages[0]``, ``stages[1]``, blocks hooks[2:] | multiples of 32  |
| BEiT         | ``beit_large_patch16_512`` | blocks ``hooks``, readout + reassemble                | multiples of 32  |
| Swin V2      | ``swinv2_*``               | each stage's output (= official hooks, last blocks)   | ``img_size`` only|
| EfficientNet | ``tf_efficientnet_lite3``  | stem + blocks 0-1, block 2, blocks 3-4, blocks 5-6    | multiples of 32  |

Notation: B batch, H x W input, h x w = H/16 x W/16 patch grid, N = h*w, C_vit the transformer width.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.models.beit import gen_relative_position_index
from torch import Tensor, nn
from torch.nn import functional as F

from ssr.archs.dpt import INPUT_MULTIPLE, Reassemble

__all__ = ['ViTBackbone', 'BeitBackbone', 'Swin2Backbone', 'EfficientNetLiteBackbone', 'beit_rel_pos_bias',
           'beit_block_forward']

_REASSEMBLE_FACTORS = (4, 2, 1, 0.5)  # patch stride 16 -> level strides 4, 8, 16, 32
_LEVEL_REDUCTIONS = (4, 8, 16, 32)


def _check_multiple(x: Tensor, multiple: int = INPUT_MULTIPLE) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f'expected a (B, 3, H, W) image, got shape {tuple(x.shape)}')
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise ValueError(f'input size {tuple(x.shape[-2:])} must be a multiple of {multiple} in both dimensions')


def _check_hooks(hooks: Sequence[int], depth: int) -> tuple[int, ...]:
    hooks = tuple(int(h) for h in hooks)
    if len(hooks) != 4 or not all(0 <= h < depth for h in hooks):
        raise ValueError(f'hooks must be 4 block indices in [0, {depth}), got {hooks}')
    return hooks


def _reassembly(owner: nn.Module, *, first_level: int, vit_ch: int, features: Sequence[int]) -> None:
    """Add the official ``act_postprocess{level}`` blocks for levels ``first_level .. 4`` to ``owner``."""
    for level in range(first_level, 5):
        owner.add_module(f'act_postprocess{level}', Reassemble(vit_ch=vit_ch, out_ch=features[level - 1],
                                                               factor=_REASSEMBLE_FACTORS[level - 1]))


def _feature_info(channels: Sequence[int], modules: Sequence[str]) -> list[dict]:
    return [{'num_chs': c, 'reduction': r, 'module': m} for c, r, m in zip(channels, _LEVEL_REDUCTIONS, modules)]


def _patch_tokens(patch_embed: nn.Module, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """Patch projection without timm's fixed-size check: (B, C, H, W) -> (B, N, C_vit) tokens and the (h, w) grid."""
    x = patch_embed.proj(x)
    grid = (x.shape[-2], x.shape[-1])
    tokens = x.flatten(2).transpose(1, 2)
    norm = getattr(patch_embed, 'norm', None)
    return (norm(tokens) if norm is not None else tokens), grid


class ViTBackbone(nn.Module):
    """DPT-Large / DPT-Hybrid backbone: a timm ``VisionTransformer`` (patch 16, one class token) + reassembly.

    Positional embeddings are resized to the input's patch grid bilinearly (``align_corners=False``), the official
    ``_resize_pos_embed`` (timm's own ``dynamic_img_size`` resamples bicubically, which gives other numbers). For a
    hybrid model (``patch_embed.backbone`` is a ResNet) levels 1 and 2 are the ResNet's ``stages[0]`` and
    ``stages[1]`` outputs and ``hooks[0:2]`` are unused, as in the official ``vitb_rn50_384`` backbone.

    Args:
        model: timm ``VisionTransformer`` with one class token added before the position embedding.
        hooks: four block indices whose outputs feed levels 1-4.
        features: channels of levels 1-4 (hybrid: levels 1-2 must equal the ResNet stage widths).
    """

    def __init__(self, model: nn.Module, *, hooks: Sequence[int], features: Sequence[int]) -> None:
        super().__init__()
        if getattr(model, 'num_prefix_tokens', None) != 1 or getattr(model, 'no_embed_class', True):
            raise ValueError('ViTBackbone needs a VisionTransformer with exactly one class token inside pos_embed')
        self.hooks = _check_hooks(hooks, len(model.blocks))
        self.cnn_levels = 2 if hasattr(model.patch_embed, 'backbone') else 0
        if self.cnn_levels:
            stage_chs = [info['num_chs'] for info in model.patch_embed.backbone.feature_info[1:3]]
            if list(features[:2]) != stage_chs:
                raise ValueError(f'hybrid features[:2] must equal the ResNet stage widths {stage_chs}, '
                                 f'got {list(features[:2])}')
        self.model = model
        _reassembly(self, first_level=self.cnn_levels + 1, vit_ch=model.embed_dim, features=features)
        modules = [f'model.patch_embed.backbone.stages.{i}' for i in range(self.cnn_levels)]
        modules += [f'act_postprocess{i}' for i in range(self.cnn_levels + 1, 5)]
        self.feature_info = _feature_info(features, modules)

    def check_input_size(self, x: Tensor) -> None:
        _check_multiple(x)

    def _embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int], list[Tensor]]:
        """Patch tokens (class token first, positions added), the patch grid and the ResNet levels (hybrid)."""
        patch_embed, cnn_feats = self.model.patch_embed, []
        if self.cnn_levels:
            resnet = patch_embed.backbone
            x = resnet.stem(x)
            for i, stage in enumerate(resnet.stages):
                x = stage(x)
                if i < self.cnn_levels:
                    cnn_feats.append(x)
            x = resnet.norm(x)
        tokens, grid = _patch_tokens(patch_embed, x)
        tokens = torch.cat((self.model.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        return self.model.pos_drop(tokens + self._pos_embed(grid)), grid, cnn_feats

    def _pos_embed(self, grid: tuple[int, int]) -> Tensor:
        pos = self.model.pos_embed
        old_grid = tuple(self.model.patch_embed.grid_size)
        if grid == old_grid:
            return pos
        table = pos[:, 1:].reshape(1, *old_grid, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=grid, mode='bilinear', align_corners=False)
        return torch.cat((pos[:, :1], table.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)), dim=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> four maps (B, features[i], H / 4 / 2^i, W / 4 / 2^i)."""
        tokens, grid, feats = self._embed(x)
        taken = {}
        for index, block in enumerate(self.model.blocks[:max(self.hooks) + 1]):
            tokens = block(tokens)
            if index in self.hooks:
                taken[index] = tokens
        for level in range(self.cnn_levels + 1, 5):
            feats.append(getattr(self, f'act_postprocess{level}')(taken[self.hooks[level - 1]], grid))
        return feats


def beit_rel_pos_bias(table: Tensor, window: tuple[int, int], grid: tuple[int, int], index: Tensor) -> Tensor:
    """BEiT relative position bias for a ``grid`` other than the trained ``window`` (official MiDaS v3.1 rule).

    The ``(2 Wh - 1) x (2 Ww - 1)`` body of the table is resized bilinearly (``align_corners=False``) to
    ``(2 h - 1) x (2 w - 1)``; the 3 class-token rows are kept; ``index`` (``gen_relative_position_index(grid)``)
    picks the bias of every token pair. At ``grid == window`` this is timm's own bias.

    Args:
        table: ((2 Wh - 1)(2 Ww - 1) + 3, heads) ``relative_position_bias_table``.
        window: (Wh, Ww) the table was trained for.
        grid: (h, w) patch grid of the input.
        index: (N + 1, N + 1) long, ``gen_relative_position_index(grid)``.

    Returns:
        (1, heads, N + 1, N + 1) additive attention bias.
    """
    body, cls_rows = table[:-3], table[-3:]
    old, new = (2 * window[0] - 1, 2 * window[1] - 1), (2 * grid[0] - 1, 2 * grid[1] - 1)
    if new != old:
        body = body.reshape(1, *old, -1).permute(0, 3, 1, 2)
        body = F.interpolate(body, size=new, mode='bilinear', align_corners=False)
        body = body.permute(0, 2, 3, 1).reshape(new[0] * new[1], -1)
    bias = torch.cat((body, cls_rows))[index.view(-1)].view(*index.shape, -1)
    return bias.permute(2, 0, 1).unsqueeze(0)


def _beit_attention(attn: nn.Module, x: Tensor, bias: Tensor) -> Tensor:
    """timm ``beit.Attention`` (q / v biases, zero k bias) with an externally computed relative position bias."""
    batch, tokens, _ = x.shape
    qkv_bias = torch.cat((attn.q_bias, attn.k_bias, attn.v_bias)) if attn.q_bias is not None else None
    qkv = F.linear(x, attn.qkv.weight, qkv_bias).reshape(batch, tokens, 3, attn.num_heads, -1)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=attn.scale)
    return attn.proj_drop(attn.proj(out.transpose(1, 2).reshape(batch, tokens, -1)))


def beit_block_forward(block: nn.Module, x: Tensor, bias: Tensor) -> Tensor:
    """timm 1.x ``beit.Block`` forward (layer scale ``gamma_1/2``, ``drop_path1/2``) with a given attention bias."""
    attn = _beit_attention(block.attn, block.norm1(x), bias)
    mlp_in = x + block.drop_path1(attn if block.gamma_1 is None else block.gamma_1 * attn)
    mlp = block.mlp(block.norm2(mlp_in))
    return mlp_in + block.drop_path2(mlp if block.gamma_2 is None else block.gamma_2 * mlp)


class BeitBackbone(nn.Module):
    """DPT-BEiT backbone: a timm ``Beit`` with per-block relative position bias, at any multiple-of-32 size.

    Args:
        model: timm ``Beit`` without absolute position embedding or shared relative position bias (BEiT-L/512).
        hooks: four block indices whose outputs feed levels 1-4.
        features: channels of levels 1-4.
    """

    def __init__(self, model: nn.Module, *, hooks: Sequence[int], features: Sequence[int]) -> None:
        super().__init__()
        if model.pos_embed is not None or model.rel_pos_bias is not None:
            raise ValueError('BeitBackbone supports per-block relative position bias only (no pos_embed, no shared '
                             'rel_pos_bias), as in beit_large_patch16_512')
        self.hooks = _check_hooks(hooks, len(model.blocks))
        self.model = model
        _reassembly(self, first_level=1, vit_ch=model.embed_dim, features=features)
        self.feature_info = _feature_info(features, [f'act_postprocess{i}' for i in range(1, 5)])
        self._index_cache: dict[tuple, Tensor] = {}

    def check_input_size(self, x: Tensor) -> None:
        _check_multiple(x)

    def _position_index(self, grid: tuple[int, int], device: torch.device) -> Tensor:
        key = (grid, str(device))
        if key not in self._index_cache:
            self._index_cache[key] = gen_relative_position_index(grid, device=device)
        return self._index_cache[key]

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> four maps (B, features[i], H / 4 / 2^i, W / 4 / 2^i)."""
        tokens, grid = _patch_tokens(self.model.patch_embed, x)
        tokens = torch.cat((self.model.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = self.model.pos_drop(tokens)
        index = self._position_index(grid, tokens.device)
        taken = {}
        for i, block in enumerate(self.model.blocks[:max(self.hooks) + 1]):
            bias = beit_rel_pos_bias(block.attn.relative_position_bias_table, tuple(block.attn.window_size), grid,
                                     index)
            tokens = beit_block_forward(block, tokens, bias)
            if i in self.hooks:
                taken[i] = tokens
        return [getattr(self, f'act_postprocess{level}')(taken[self.hooks[level - 1]], grid) for level in range(1, 5)]


class Swin2Backbone(nn.Module):
    """DPT-Swin2 backbone: the four stage outputs of a timm ``SwinTransformerV2`` (NHWC in timm 1.x) as NCHW maps.

    The official hooks (``[1, 1, 5, 1]`` for Swin2-T, ``[1, 1, 17, 1]`` for -B/-L) are the last block of each stage,
    i.e. the stage outputs. Window attention masks are built for the model's ``img_size``, so the input must have
    exactly that size (the official model runs at its native square size only).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.feature_info = _feature_info([info['num_chs'] for info in model.feature_info],
                                          [f'model.layers.{i}' for i in range(4)])

    @property
    def img_size(self) -> tuple[int, int]:
        return tuple(self.model.patch_embed.img_size)

    def check_input_size(self, x: Tensor) -> None:
        _check_multiple(x)
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(f'Swin2 backbone accepts only its img_size {self.img_size}, got {tuple(x.shape[-2:])}; '
                             'build it with input_size set to the size you need')

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> four maps (B, C_i, H / 4 / 2^i, W / 4 / 2^i)."""
        x = self.model.patch_embed(x)
        feats = []
        for stage in self.model.layers:
            x = stage(x)
            feats.append(x.permute(0, 3, 1, 2).contiguous())
        return feats


class EfficientNetLiteBackbone(nn.Module):
    """MiDaS v2.1 small backbone: a timm ``EfficientNet`` (``tf_efficientnet_lite3``) cut into four levels.

    ``layer1`` = stem conv, stem BN (timm 1.x applies the ReLU6 inside it), an activation slot (the official
    checkpoints' ``layer1.2``, an identity here) and blocks 0-1; ``layer2`` = block 2, ``layer3`` = blocks 3-4,
    ``layer4`` = blocks 5-6. The head (``conv_head``, ``bn2``, classifier) is not kept, as in the official model.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        blocks = model.blocks
        if len(blocks) != 7:
            raise ValueError(f'EfficientNetLiteBackbone expects 7 block stages, got {len(blocks)}')
        self.layer1 = nn.Sequential(model.conv_stem, model.bn1, getattr(model, 'act1', nn.Identity()), *blocks[0:2])
        self.layer2 = nn.Sequential(*blocks[2:3])
        self.layer3 = nn.Sequential(*blocks[3:5])
        self.layer4 = nn.Sequential(*blocks[5:])
        stage_chs = {info['module']: info['num_chs'] for info in model.feature_info}
        self.feature_info = _feature_info([stage_chs[f'blocks.{i}'] for i in (1, 2, 4, 6)],
                                          [f'layer{i}' for i in range(1, 5)])

    def check_input_size(self, x: Tensor) -> None:
        _check_multiple(x)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> four maps (B, C_i, H / 4 / 2^i, W / 4 / 2^i)."""
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats
