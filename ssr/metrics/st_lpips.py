"""Full-reference perceptual metrics that run offline.

ST-LPIPS (Ghildyal & Liu, "Shift-tolerant Perceptual Similarity Metric", ECCV 2022) comes from the PyPI package
``stlpips-pytorch`` (BSD-2-Clause, https://github.com/abhijay9/ShiftTolerant-LPIPS). Its ``shift_tolerant`` variant
builds the backbone with random weights (no torchvision download) and the package ships the whole trained network,
backbone and linear heads, as ``stlpips_pytorch/weights/vST0.0/<net>_shift_tolerant.pth``. The package's other
variants (``variant=''``) fetch ImageNet backbones from torchvision at run time, so they are not offered here.

Images arrive as BasicSR's ``tensor2img`` output: (H, W, 3) uint8 BGR in [0, 255].
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY
from torch import nn

__all__ = ['STLPIPS_NETS', 'build_stlpips', 'calculate_stlpips', 'stlpips_weights_file']

STLPIPS_NETS = ('alex', 'vgg')
STLPIPS_VARIANT = 'shift_tolerant'
_STLPIPS_CACHE: dict[tuple[str, str, str], nn.Module] = {}


def _import_stlpips() -> types.ModuleType:
    """Import ``stlpips_pytorch.stlpips``.

    stlpips-pytorch 0.0.2 imports ``IPython.embed`` and ``torchsummary.summary`` at module level without using them
    and without declaring either dependency; when they are absent, placeholders that raise if called stand in during
    that import only, so neither package has to be installed for the metric.
    """
    placed = []
    for module_name, attr in (('IPython', 'embed'), ('torchsummary', 'summary')):
        try:
            __import__(module_name)
        except ImportError:
            placeholder = types.ModuleType(module_name)
            placeholder.__doc__ = f'Placeholder from ssr.metrics.st_lpips: {module_name} is not installed.'

            def _unavailable(*args, _name=f'{module_name}.{attr}', **kwargs):
                raise RuntimeError(f'{_name} is a placeholder (the package is not installed)')

            setattr(placeholder, attr, _unavailable)
            sys.modules[module_name] = placeholder
            placed.append(module_name)
    try:
        from stlpips_pytorch import stlpips
    except ImportError as e:
        raise ImportError('ST-LPIPS needs the package stlpips-pytorch (pinned in requirements.txt): '
                          'pip install stlpips-pytorch==0.0.2') from e
    finally:
        # only stlpips' own import may see the placeholders: other code probing for IPython (tqdm.auto, ...)
        # must keep finding it absent
        for module_name in placed:
            sys.modules.pop(module_name, None)
    return stlpips


def stlpips_weights_file(net: str) -> Path:
    """Path of the ST-LPIPS network shipped inside ``stlpips-pytorch`` for ``net`` (may not exist)."""
    stlpips = _import_stlpips()
    return Path(stlpips.__file__).resolve().parent / 'weights' / 'vST0.0' / f'{net}_{STLPIPS_VARIANT}.pth'


def build_stlpips(net: str = 'alex', weights_path: str | None = None) -> nn.Module:
    """Build the shift-tolerant LPIPS network on the CPU, in eval mode, with frozen weights.

    Args:
        net: backbone, one of ``STLPIPS_NETS``.
        weights_path: a full ST-LPIPS state dict; ``None`` uses the one shipped in ``stlpips-pytorch``.

    Returns:
        The ``stlpips_pytorch.stlpips.LPIPS`` module; ``model(x, y)`` takes (B, 3, H, W) RGB in [-1, 1] and returns
        (B, 1, 1, 1) distances.

    Raises:
        ValueError: ``net`` is not in ``STLPIPS_NETS``, or the file does not hold exactly this network's keys.
        FileNotFoundError: the weight file does not exist.
    """
    if net not in STLPIPS_NETS:
        raise ValueError(f'ST-LPIPS net {net!r} not in {STLPIPS_NETS}')
    path = Path(weights_path) if weights_path is not None else stlpips_weights_file(net)
    if not path.is_file():
        option = 'weights_path' if weights_path is not None else 'the stlpips-pytorch installation'
        raise FileNotFoundError(f'ST-LPIPS ({net}) weights not found: {option} should give the file '
                                f'{net}_{STLPIPS_VARIANT}.pth, looked for {path}')
    model = _import_stlpips().LPIPS(pretrained=False, net=net, variant=STLPIPS_VARIANT, verbose=False)
    state = torch.load(path, map_location='cpu', weights_only=True)
    # ``lins.<i>`` re-registers ``lin<i>`` (same parameters under a second name); files store only ``lin<i>``.
    expected = {k for k in model.state_dict() if not k.startswith('lins.')}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f'{path} is not an ST-LPIPS {net} network: missing keys {missing}, unexpected {unexpected}')
    model.load_state_dict(state, strict=False)
    model.eval().requires_grad_(False)
    return model


def _bgr_uint8_to_tensor(img: np.ndarray, crop_border: int, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 BGR in [0, 255] -> (1, 3, H - 2c, W - 2c) float32 RGB in [-1, 1]."""
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    rgb = np.ascontiguousarray(img[..., ::-1], dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device) / 127.5 - 1.0


@METRIC_REGISTRY.register()
def calculate_stlpips(img: np.ndarray,
                      img2: np.ndarray,
                      net: str = 'alex',
                      crop_border: int = 0,
                      weights_path: str | None = None,
                      device: str = 'cpu',
                      **kwargs) -> float:
    """Shift-tolerant LPIPS distance (lower is more similar; 0 for identical images).

    The network is built once per (net, weights, device) and cached for the process.

    Args:
        img: (H, W, 3) uint8 BGR in [0, 255], e.g. the SR output.
        img2: (H, W, 3) uint8 BGR in [0, 255], the reference.
        net: backbone, one of ``STLPIPS_NETS``.
        crop_border: pixels removed from each side of both images before comparing.
        weights_path: optional local ST-LPIPS state dict; default: the network shipped in ``stlpips-pytorch``.
        device: torch device to run on.
        **kwargs: other BasicSR metric options (ignored).

    Returns:
        The distance as a Python float.

    Raises:
        ValueError: the images differ in shape or are not (H, W, 3), or ``net`` is unknown.
        FileNotFoundError: the weight file does not exist.
    """
    img, img2 = np.asarray(img), np.asarray(img2)
    if img.shape != img2.shape or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'ST-LPIPS needs two (H, W, 3) images of one shape, got {img.shape} and {img2.shape}')
    key = (net, str(weights_path), str(torch.device(device)))
    if key not in _STLPIPS_CACHE:
        _STLPIPS_CACHE[key] = build_stlpips(net, weights_path).to(device)
    model = _STLPIPS_CACHE[key]
    with torch.no_grad():
        dist = model(_bgr_uint8_to_tensor(img, crop_border, model.scaling_layer.shift.device),
                     _bgr_uint8_to_tensor(img2, crop_border, model.scaling_layer.shift.device))
    return float(dist.squeeze())
