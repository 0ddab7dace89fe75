"""Key maps between official MiDaS checkpoints (isl-org/MiDaS releases v2_1, v3, v3_1) and ssr's depth networks.

"ssr layout" is the ``state_dict`` of the bare network :class:`ssr.archs.dpt.MidasDepthNet` built on timm 1.x (the
``MiDaSDepth`` wrapper adds a ``model.`` prefix). Functions here are pure: no I/O, no model.

| source format                            | variants                         | map                          |
|------------------------------------------|----------------------------------|------------------------------|
| ViT-L / hybrid (v3), EffNet-Lite3 (v2.1) | dpt_large_384, dpt_hybrid_384,   | identity (timm 1.x keeps it) |
|                                          | midas_v21_small_256              |                              |
| BEiT (v3.1)                              | dpt_beit_large_512               | drop relative_position_index |
| Swin / Swin2 (v3.1, timm 0.6 era)        | dpt_swin2_tiny_256               | _SWIN_LEGACY_RENAMES + drops |

The BEiT and Swin maps drop buffers that timm 1.x rebuilds itself (non-persistent there). The Swin checkpoints put
each stage's patch merging at the *end* of the stage (``layers.{i}.downsample``, i = 0..2) where timm 1.x puts it at
the start of the next one (``layers.{i+1}.downsample``), and name the classifier ``head`` instead of ``head.fc``;
a legacy file is recognised by its sentinel key ``pretrained.model.layers.0.downsample.reduction.weight`` (timm's
own ``swin_transformer_v2.checkpoint_filter_fn`` uses the same test).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from torch import Tensor

__all__ = ['unwrap_state_dict', 'midas_timm1_to_ssr', 'midas_beit_to_ssr', 'midas_swin_to_ssr',
           'ssr_to_midas_timm1', 'ssr_to_midas_beit', 'ssr_to_midas_swin', 'SWIN_LEGACY_SENTINEL']

StateDict = dict[str, Tensor]
Replacement = str | Callable[[re.Match], str]

CONTAINER_KEYS = ('params_ema', 'params', 'model', 'state_dict')  # BasicSR's, then the official ones
SWIN_LEGACY_SENTINEL = 'pretrained.model.layers.0.downsample.reduction.weight'

# Buffers that the official files store and timm 1.x rebuilds (anchored, matched against the whole key).
_BEIT_DROPPED = (r'^pretrained\.model\.blocks\.\d+\.attn\.relative_position_index$',)
_SWIN_DROPPED = (
    r'^pretrained\.model\.layers\.\d+\.blocks\.\d+\.attn_mask$',
    r'^pretrained\.model\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index$',
    r'^pretrained\.model\.layers\.\d+\.blocks\.\d+\.attn\.relative_coords_table$',
)


def _shift_stage(offset: int) -> Callable[[re.Match], str]:
    return lambda m: f'pretrained.model.layers.{int(m.group(1)) + offset}.downsample.'


# Legacy Swin -> timm 1.x, applied in order, first match wins; the inverse table maps back.
_SWIN_LEGACY_RENAMES: tuple[tuple[str, Replacement], ...] = (
    (r'^pretrained\.model\.layers\.(\d+)\.downsample\.', _shift_stage(+1)),
    (r'^pretrained\.model\.head\.(weight|bias)$', r'pretrained.model.head.fc.\1'),
)
_SWIN_LEGACY_INVERSE: tuple[tuple[str, Replacement], ...] = (
    (r'^pretrained\.model\.layers\.(\d+)\.downsample\.', _shift_stage(-1)),
    (r'^pretrained\.model\.head\.fc\.(weight|bias)$', r'pretrained.model.head.\1'),
)


def unwrap_state_dict(obj: Mapping) -> StateDict:
    """The state_dict inside a checkpoint: unwrap ``{'model': ...}`` / ``{'state_dict': ...}`` (official) and
    ``{'params_ema' | 'params': ...}`` (BasicSR) containers, nested ones too, and strip a DataParallel ``module.``
    prefix.

    Raises:
        ValueError: if ``obj`` (or what a container holds) is not a mapping of tensors.
    """
    while isinstance(obj, Mapping) and any(k in obj for k in CONTAINER_KEYS):
        obj = obj[next(k for k in CONTAINER_KEYS if k in obj)]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f'expected a state_dict of tensors, got {type(obj).__name__}')
    return {k.removeprefix('module.'): v for k, v in obj.items()}


def _rename(sd: Mapping[str, Tensor], table: tuple[tuple[str, Replacement], ...]) -> StateDict:
    out = {}
    for key, value in sd.items():
        for pattern, replacement in table:
            new_key, count = re.subn(pattern, replacement, key)
            if count:
                key = new_key
                break
        if key in out:
            raise ValueError(f'key map sends two checkpoint entries to {key!r}')
        out[key] = value
    return out


def _drop(sd: Mapping[str, Tensor], patterns: tuple[str, ...]) -> StateDict:
    return {k: v for k, v in sd.items() if not any(re.match(p, k) for p in patterns)}


def _restore(sd: Mapping[str, Tensor], buffers: Mapping[str, Tensor], patterns: tuple[str, ...]) -> StateDict:
    """``sd`` plus the entries of ``buffers`` whose key matches ``patterns`` (the inverse of :func:`_drop`)."""
    return {**sd, **{k: v for k, v in buffers.items() if any(re.match(p, k) for p in patterns)}}


def midas_timm1_to_ssr(sd: Mapping[str, Tensor]) -> StateDict:
    """Official ViT-L / hybrid (v3) and EfficientNet-Lite3 small (v2.1) files: already in the timm 1.x layout."""
    return dict(sd)


def ssr_to_midas_timm1(sd: Mapping[str, Tensor]) -> StateDict:
    """Inverse of :func:`midas_timm1_to_ssr`."""
    return dict(sd)


def midas_beit_to_ssr(sd: Mapping[str, Tensor]) -> StateDict:
    """Official BEiT (v3.1) file -> ssr: drop the per-block ``attn.relative_position_index`` buffers."""
    return _drop(sd, _BEIT_DROPPED)


def ssr_to_midas_beit(sd: Mapping[str, Tensor], buffers: Mapping[str, Tensor]) -> StateDict:
    """ssr -> official BEiT layout; ``buffers`` (e.g. ``dict(net.named_buffers())``) supplies the dropped indices."""
    return _restore(sd, buffers, _BEIT_DROPPED)


def midas_swin_to_ssr(sd: Mapping[str, Tensor]) -> StateDict:
    """Official Swin / Swin2 (v3.1) file -> ssr: drop rebuilt buffers; a legacy file (sentinel key present) also
    moves the patch merging to the next stage and the classifier to ``head.fc``."""
    legacy = SWIN_LEGACY_SENTINEL in sd
    sd = _drop(sd, _SWIN_DROPPED)
    return _rename(sd, _SWIN_LEGACY_RENAMES) if legacy else sd


def ssr_to_midas_swin(sd: Mapping[str, Tensor], buffers: Mapping[str, Tensor]) -> StateDict:
    """ssr -> official (legacy, timm 0.6) Swin layout; ``buffers`` supplies ``attn_mask`` /
    ``relative_position_index`` / ``relative_coords_table`` (ssr keys, renamed along with the rest)."""
    return _rename(_restore(sd, buffers, _SWIN_DROPPED), _SWIN_LEGACY_INVERSE)
