"""MiDaS / DPT monocular depth as a frozen BasicSR network: RGB in [0, 1] -> per-image normalised inverse depth.

The depth estimator DE of SSR (paper §3.1, Algorithm 1): ``D = DE(I)``, shape (B, 1, H, W), relative inverse depth
(near = large) normalised per image to [0, 1] with a robust (2nd / 98th percentile) min / max (DESIGN.md §3).

Variants (isl-org/MiDaS ``midas/model_loader.py``; weights only from a local official file, nothing downloads):

| variant                 | backbone (timm 1.x)          | native | resize policy            | normalisation   |
|-------------------------|------------------------------|--------|--------------------------|-----------------|
| ``dpt_hybrid_384``      | ``vit_base_r50_s16_384``     | 384    | minimal, keep aspect     | mean = std = 0.5|
| ``dpt_large_384``       | ``vit_large_patch16_384``    | 384    | minimal, keep aspect     | mean = std = 0.5|
| ``dpt_beit_large_512``  | ``beit_large_patch16_512``   | 512    | minimal, keep aspect     | mean = std = 0.5|
| ``dpt_swin2_tiny_256``  | ``swinv2_tiny_window16_256`` | 256    | square (aspect dropped)  | mean = std = 0.5|
| ``midas_v21_small_256`` | ``tf_efficientnet_lite3``    | 256    | upper_bound, keep aspect | ImageNet        |

Resize policies (official ``midas/transforms.py`` ``Resize``, sizes rounded to multiples of 32): *minimal* scales
both sides by whichever of ``n / H``, ``n / W`` is closer to 1; *upper_bound* by the smaller one, so neither side
exceeds ``n``; *square* gives ``n x n``. The official code resizes with OpenCV's bicubic; we use torch's bicubic
(same kernel, a = -0.75, no antialiasing) and resize the prediction back bicubically, as the official ``run.py``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn
from torch.nn import functional as F

from ssr.archs.dpt import INPUT_MULTIPLE, MidasDepthNet
from ssr.archs.midas_backbones import BeitBackbone, EfficientNetLiteBackbone, Swin2Backbone, ViTBackbone
from ssr.archs.midas_checkpoint import midas_beit_to_ssr, midas_swin_to_ssr, midas_timm1_to_ssr, unwrap_state_dict
from ssr.ops.depth_utils import normalize_depth
from ssr.utils.checkpoint import load_state_dict_strict

__all__ = ['MiDaSDepth', 'MidasVariant', 'MIDAS_VARIANTS', 'build_midas_net', 'midas_input_size', 'RESIZE_METHODS']

RESIZE_METHODS = ('minimal', 'upper_bound', 'square')
_DPT_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
_IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_RELEASES = 'https://github.com/isl-org/MiDaS/releases'


@dataclass(frozen=True)
class MidasVariant:
    """How one official MiDaS model is built, fed and loaded.

    Attributes:
        family: backbone adapter, one of ``vit``, ``beit``, ``swin2``, ``efficientnet``.
        timm_name: timm model name (created with ``pretrained=False``).
        hooks: transformer block indices feeding decoder levels 1-4 (``vit``, ``beit``).
        level_features: channels of levels 1-4 after reassembly (``vit``, ``beit``).
        features: decoder width F.
        expand: decoder widths F, 2F, 4F, 8F (MiDaS small).
        head_align_corners: ``align_corners`` of the head's x2 upsampling.
        net_size: native square input size.
        resize_method: one of ``RESIZE_METHODS``.
        mean, std: input normalisation, ``(x - mean) / std`` per RGB channel.
        to_ssr: key map from the official file's layout.
        file_name, release: the official file and the release that publishes it (named in error messages).
    """

    family: str
    timm_name: str
    hooks: tuple[int, ...] | None
    level_features: tuple[int, ...] | None
    features: int
    expand: bool
    head_align_corners: bool
    net_size: int
    resize_method: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    to_ssr: Callable[[Mapping[str, Tensor]], dict[str, Tensor]]
    file_name: str
    release: str


MIDAS_VARIANTS: dict[str, MidasVariant] = {
    'dpt_hybrid_384': MidasVariant('vit', 'vit_base_r50_s16_384', (0, 1, 8, 11), (256, 512, 768, 768), 256, False,
                                   True, 384, 'minimal', *_DPT_MEAN_STD, midas_timm1_to_ssr, 'dpt_hybrid_384.pt', 'v3'),
    'dpt_large_384': MidasVariant('vit', 'vit_large_patch16_384', (5, 11, 17, 23), (256, 512, 1024, 1024), 256, False,
                                  True, 384, 'minimal', *_DPT_MEAN_STD, midas_timm1_to_ssr, 'dpt_large_384.pt', 'v3'),
    'dpt_beit_large_512': MidasVariant('beit', 'beit_large_patch16_512', (5, 11, 17, 23), (256, 512, 1024, 1024),
                                       256, False, True, 512, 'minimal', *_DPT_MEAN_STD, midas_beit_to_ssr,
                                       'dpt_beit_large_512.pt', 'v3_1'),
    'dpt_swin2_tiny_256': MidasVariant('swin2', 'swinv2_tiny_window16_256', None, None, 256, False, True, 256,
                                       'square', *_DPT_MEAN_STD, midas_swin_to_ssr, 'dpt_swin2_tiny_256.pt', 'v3_1'),
    'midas_v21_small_256': MidasVariant('efficientnet', 'tf_efficientnet_lite3', None, None, 64, True, False, 256,
                                        'upper_bound', *_IMAGENET_MEAN_STD, midas_timm1_to_ssr,
                                        'midas_v21_small_256.pt', 'v2_1'),
}


def _check_variant(variant: str) -> MidasVariant:
    if variant not in MIDAS_VARIANTS:
        raise ValueError(f'MiDaS variant {variant!r} not in {tuple(MIDAS_VARIANTS)}')
    return MIDAS_VARIANTS[variant]


def _check_input_size(input_size: int | None) -> None:
    if input_size is not None and (not isinstance(input_size, int) or input_size < INPUT_MULTIPLE
                                   or input_size % INPUT_MULTIPLE):
        raise ValueError(f'input_size must be None or a positive multiple of {INPUT_MULTIPLE}, got {input_size!r}')


def build_midas_net(variant: str, *, input_size: int | None = None) -> MidasDepthNet:
    """The bare network of ``variant`` with random weights (its ``state_dict`` has the official keys under timm 1.x).

    Args:
        variant: a key of ``MIDAS_VARIANTS``.
        input_size: Swin2 only: the square size its attention masks are built for (default: native 256).

    Raises:
        ValueError: on an unknown variant or a bad ``input_size``.
    """
    spec = _check_variant(variant)
    _check_input_size(input_size)
    if spec.family in ('vit', 'beit'):
        model = timm.create_model(spec.timm_name, pretrained=False)
        adapter = ViTBackbone if spec.family == 'vit' else BeitBackbone
        backbone = adapter(model, hooks=spec.hooks, features=spec.level_features)
    elif spec.family == 'swin2':
        size = input_size or spec.net_size
        backbone = Swin2Backbone(timm.create_model(spec.timm_name, pretrained=False, img_size=size,
                                                   drop_path_rate=0.0))
    elif spec.family == 'efficientnet':
        backbone = EfficientNetLiteBackbone(timm.create_model(spec.timm_name, pretrained=False, exportable=True))
    else:
        raise ValueError(f'backbone family {spec.family!r} not in (vit, beit, swin2, efficientnet)')
    return MidasDepthNet(backbone, features=spec.features, expand=spec.expand,
                         head_align_corners=spec.head_align_corners)


def _round_to_multiple(x: float, multiple: int, max_val: int | None = None) -> int:
    """Official ``constrain_to_multiple_of``: round half to even, floor if above ``max_val``; never below one step."""
    y = round(x / multiple) * multiple
    if max_val is not None and y > max_val:
        y = math.floor(x / multiple) * multiple
    return max(y, multiple)  # the official code would produce an empty image here


def midas_input_size(height: int, width: int, *, net_size: int, method: str,
                     multiple: int = INPUT_MULTIPLE) -> tuple[int, int]:
    """Network input size (h, w) for an H x W image under an official resize policy (see the module docstring).

    Args:
        height, width: image size in pixels.
        net_size: target square size n.
        method: one of ``RESIZE_METHODS``.
        multiple: both sides are rounded to a multiple of this.

    Raises:
        ValueError: on an unknown method or a non-positive size.
    """
    if height < 1 or width < 1:
        raise ValueError(f'image size must be positive, got {(height, width)}')
    scale_h, scale_w = net_size / height, net_size / width
    if method == 'square':
        return net_size, net_size
    elif method == 'minimal':
        scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
        return _round_to_multiple(scale * height, multiple), _round_to_multiple(scale * width, multiple)
    elif method == 'upper_bound':
        scale = min(scale_h, scale_w)
        return (_round_to_multiple(scale * height, multiple, net_size),
                _round_to_multiple(scale * width, multiple, net_size))
    else:
        raise ValueError(f'resize method {method!r} not in {RESIZE_METHODS}')


@ARCH_REGISTRY.register()
class MiDaSDepth(nn.Module):
    """Frozen MiDaS / DPT depth estimator: (B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) inverse depth in [0, 1].

    The network never trains: its parameters do not require gradients and ``train()`` keeps it in eval mode.
    Gradients still flow to the input if it requires them.

    Args:
        variant: one of ``MIDAS_VARIANTS`` (see the module docstring).
        weights_path: the official ``<variant>.pt`` file (``torch.load(weights_only=True)``; ``{'model': ...}``
            containers and ``module.`` prefixes are accepted; loaded strictly through the variant's key map).
        random_weights: build with random weights instead (tests only); exclusive with ``weights_path``.
        input_size: network input size n instead of the native one (the official ``--height``), a multiple of 32.
            Swin2 is built for an n x n input.
        normalize: normalise each output to [0, 1] (2nd / 98th percentiles); False returns the raw non-negative
            relative inverse depth.

    Attributes:
        model: the bare network (:class:`~ssr.archs.dpt.MidasDepthNet`): official preprocessed input ->
            official (B, h, w) output, for number-for-number comparisons with the official model.
        feature_info: channels and stride of the output, ``[{'num_chs': 1, 'reduction': 1, 'module': 'model'}]``.

    Raises:
        ValueError: on an unknown variant, a bad ``input_size``, neither or both of ``weights_path`` /
            ``random_weights``.
        FileNotFoundError, RuntimeError: if the weights file is missing, unreadable or does not match.
    """

    def __init__(self, variant: str = 'dpt_hybrid_384', weights_path: str | None = None, random_weights: bool = False,
                 input_size: int | None = None, normalize: bool = True) -> None:
        super().__init__()
        spec = _check_variant(variant)
        _check_input_size(input_size)
        if weights_path is None and not random_weights:
            raise ValueError(f'MiDaSDepth({variant!r}) needs weights: set weights_path to the official '
                             f'{spec.file_name} (from {_RELEASES}/tag/{spec.release}), or random_weights=True '
                             '(tests only)')
        if weights_path is not None and random_weights:
            raise ValueError('set either weights_path or random_weights=True, not both')

        self.variant, self.spec = variant, spec
        self.input_size = input_size or spec.net_size
        self.normalize = normalize
        self.model = build_midas_net(variant, input_size=input_size)
        self.register_buffer('mean', torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.feature_info = [{'num_chs': 1, 'reduction': 1, 'module': 'model'}]
        if weights_path is not None:
            self.load_weights(weights_path)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> MiDaSDepth:
        """Stay in eval mode whatever ``mode`` is: the network is a frozen, pretrained estimator."""
        return super().train(False)

    def adapt_state_dict(self, state: dict) -> dict[str, Tensor]:
        """Map an official file's state_dict (or a container of it) or ssr's own (``model.*``) to this module's keys.

        Used by ssr's ``load_network`` before its strict check.
        """
        sd = unwrap_state_dict(state)
        if sd and all(k.startswith('model.') for k in sd):
            sd = {k.removeprefix('model.'): v for k, v in sd.items()}
        return {f'model.{k}': v for k, v in self.spec.to_ssr(sd).items()}

    def load_weights(self, weights_path: str) -> None:
        """Load the official ``.pt`` (or an ssr checkpoint of this class) strictly.

        Raises:
            FileNotFoundError: the file does not exist.
            RuntimeError: it cannot be read with ``weights_only=True``, or its keys / shapes do not match (missing,
                unexpected and wrong-shape keys listed together).
        """
        path = Path(weights_path)
        hint = f'weights_path must be the official {self.spec.file_name} ({_RELEASES}/tag/{self.spec.release})'
        if not path.is_file():
            raise FileNotFoundError(f'MiDaS weights {str(path)!r} not found: {hint}')
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the path and what to try
            raise RuntimeError(f'cannot read MiDaS weights {str(path)!r} with weights_only=True ({e}); {hint}, '
                               'or re-save it as a plain state_dict') from e
        try:
            load_state_dict_strict(self, self.adapt_state_dict(state), source=str(path))
        except (RuntimeError, ValueError) as e:
            raise RuntimeError(f'{e}\nvariant {self.variant!r}: {hint}') from e

    def preprocess(self, img: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> the official network input (B, 3, h, w): resized by the variant's policy
        (bicubic), normalised with its mean / std, in the network's dtype."""
        height, width = img.shape[-2:]
        size = midas_input_size(height, width, net_size=self.input_size, method=self.spec.resize_method)
        x = img.to(self.mean.dtype)
        if size != (height, width):
            x = F.interpolate(x, size=size, mode='bicubic', align_corners=False)
        return (x - self.mean) / self.std

    def forward(self, img: Tensor) -> Tensor:
        """Estimate depth.

        Args:
            img: (B, 3, H, W) RGB in [0, 1], any H, W >= 1.

        Returns:
            (B, 1, H, W) relative inverse depth (near = large) in the dtype of ``img``: in [0, 1] per image with
            ``normalize``, otherwise non-negative and unbounded.
        """
        if img.dim() != 4 or img.shape[1] != 3 or not img.is_floating_point():
            raise ValueError(f'img must be a floating (B, 3, H, W) tensor, got {img.dtype} {tuple(img.shape)}')
        depth = self.model(self.preprocess(img)).unsqueeze(1)
        depth = F.interpolate(depth, size=img.shape[-2:], mode='bicubic', align_corners=False).clamp_min(0)
        return (normalize_depth(depth) if self.normalize else depth).to(img.dtype)
