"""LPIPS (Zhang et al., CVPR 2018) offline: the ``lpips`` package's network and its shipped linear heads, with the
ImageNet backbone read from a local file instead of torchvision's download.

``lpips`` 0.1.4 ships the v0.1 linear heads inside its wheel (``lpips/weights/v0.1/<net>.pth``) but builds the
backbone with ``torchvision.models.<net>(pretrained=True)``, which downloads. Here the backbone is built with random
weights (``pnet_rand=True``) and then loaded from ``backbone_path``: torchvision's ImageNet file
(``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``) or any file holding its ``features.*`` tensors. The result
equals the package's default (downloading) LPIPS given the same backbone file.

Images arrive as BasicSR's ``tensor2img`` output: (H, W, 3) uint8 BGR in [0, 255].
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY
from torch import nn

from ssr.metrics.st_lpips import _bgr_uint8_to_tensor

__all__ = ['LPIPS_NETS', 'build_lpips', 'calculate_lpips']

LPIPS_NETS = {'alex': 'alexnet-owt-7be5be79.pth', 'vgg': 'vgg16-397923af.pth'}
_LPIPS_CACHE: dict[tuple[str, str, str, str], nn.Module] = {}


def _backbone_state(path: Path, net: nn.Module) -> dict[str, torch.Tensor]:
    """Map a torchvision ``features.<i>.*`` state dict onto lpips' ``slice<k>.<i>.*`` names; strict on the keys."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f'LPIPS backbone_path {path} does not hold a state dict')
    mapped, missing = {}, []
    for name in net.state_dict():
        source = 'features.' + name.split('.', 1)[1]
        if source in state:
            mapped[name] = state[source]
        else:
            missing.append(source)
    if missing:
        raise ValueError(f'LPIPS backbone_path {path} lacks {len(missing)} backbone tensors, e.g. {missing[:3]}: '
                         f'expected torchvision\'s ImageNet file ({", ".join(LPIPS_NETS.values())})')
    return mapped


def build_lpips(net: str = 'alex', backbone_path: str | None = None, weights_path: str | None = None) -> nn.Module:
    """Build LPIPS v0.1 on the CPU in eval mode, frozen, without any download.

    Args:
        net: backbone, a key of ``LPIPS_NETS``.
        backbone_path: torchvision's ImageNet weights of that backbone (required: LPIPS is defined on them).
        weights_path: LPIPS linear heads (``lin<i>.model.1.weight``); default: the file shipped in ``lpips``.

    Returns:
        ``lpips.LPIPS``; ``model(x, y)`` takes (B, 3, H, W) RGB in [-1, 1] and returns (B, 1, 1, 1) distances.

    Raises:
        ValueError: unknown ``net``, no ``backbone_path``, or a file without the expected tensors.
        FileNotFoundError: a weight file does not exist.
        ImportError: the ``lpips`` package is missing.
    """
    if net not in LPIPS_NETS:
        raise ValueError(f'LPIPS net {net!r} not in {tuple(LPIPS_NETS)}')
    if backbone_path is None:
        raise ValueError(f'LPIPS needs the metric option backbone_path: a local copy of torchvision\'s ImageNet '
                         f'{net} weights ({LPIPS_NETS[net]}); nothing is downloaded')
    try:
        import lpips
    except ImportError as e:
        raise ImportError('LPIPS needs the package lpips (pinned in requirements.txt): pip install lpips==0.1.4') from e
    backbone = Path(backbone_path)
    if not backbone.is_file():
        raise FileNotFoundError(f'LPIPS option backbone_path: {backbone} does not exist')
    heads = Path(weights_path) if weights_path is not None else \
        Path(lpips.__file__).resolve().parent / 'weights' / 'v0.1' / f'{net}.pth'
    if not heads.is_file():
        option = 'weights_path' if weights_path is not None else 'the lpips installation'
        raise FileNotFoundError(f'LPIPS linear heads not found ({option}): {heads}')
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated ``pretrained=False``
        warnings.simplefilter('ignore', UserWarning)
        model = lpips.LPIPS(pretrained=False, net=net, version='0.1', pnet_rand=True, verbose=False)
    model.net.load_state_dict(_backbone_state(backbone, model.net), strict=True)
    state = torch.load(heads, map_location='cpu', weights_only=True)
    expected = {k for k in model.state_dict() if k.startswith('lin') and not k.startswith('lins.')}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f'{heads} does not hold LPIPS {net} heads: missing {missing}, unexpected {unexpected}')
    model.load_state_dict(state, strict=False)  # the heads; the backbone and scaling layer are already set
    return model.eval().requires_grad_(False)


@METRIC_REGISTRY.register()
def calculate_lpips(img: np.ndarray,
                    img2: np.ndarray,
                    net: str = 'alex',
                    backbone_path: str | None = None,
                    weights_path: str | None = None,
                    crop_border: int = 0,
                    device: str = 'cpu',
                    **kwargs) -> float:
    """LPIPS distance (lower is more similar; 0 for identical images), built once per option set and cached.

    Args:
        img: (H, W, 3) uint8 BGR in [0, 255], e.g. the SR output.
        img2: (H, W, 3) uint8 BGR in [0, 255], the reference.
        net: ``alex`` (the usual choice in SR papers) or ``vgg``.
        backbone_path: local torchvision ImageNet weights of ``net`` (required).
        weights_path: optional LPIPS heads; default: the v0.1 heads shipped in ``lpips``.
        crop_border: pixels removed from each side of both images.
        device: torch device.
        **kwargs: other BasicSR metric options (ignored).

    Raises:
        ValueError: images of different shapes or not (H, W, 3); see :func:`build_lpips`.
        FileNotFoundError: a weight file does not exist.
    """
    img, img2 = np.asarray(img), np.asarray(img2)
    if img.shape != img2.shape or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'LPIPS needs two (H, W, 3) images of one shape, got {img.shape} and {img2.shape}')
    key = (net, str(backbone_path), str(weights_path), str(torch.device(device)))
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = build_lpips(net, backbone_path, weights_path).to(device)
    model = _LPIPS_CACHE[key]
    dev = model.scaling_layer.shift.device
    with torch.no_grad():
        dist = model(_bgr_uint8_to_tensor(img, crop_border, dev), _bgr_uint8_to_tensor(img2, crop_border, dev))
    return float(dist.squeeze())
