"""No-reference quality metrics through pyiqa, offline: MUSIQ (Ke et al., ICCV 2021) and CLIP-IQA (Wang et al.,
AAAI 2023), with every weight file from a local path given in the metric options.

pyiqa is installed with ``--no-deps`` (``scripts/setup_env.sh``): its declared dependencies would replace
``opencv-python`` with ``-headless``, ``tb-nightly`` with ``tensorboard`` and pull transformers; importing it and
building these two metrics needs none of them. CLIP-IQA also needs ``openai-clip`` (+ ``ftfy``, ``wcwidth``).
pyiqa downloads a checkpoint whenever no local one is passed, so these wrappers refuse to build without one:

- MUSIQ: ``weights_path``, pyiqa's checkpoint for the chosen ``variant`` (``musiq_koniq_ckpt-e95806b9.pth``,
  ``musiq_spaq_ckpt-358bb6af.pth``, ``musiq_paq2piq_ckpt-364c0c84.pth``, ``musiq_ava_ckpt-e8d3f067.pth``).
- CLIP-IQA: ``backbone_path``, OpenAI's CLIP ``RN50.pt`` (the TorchScript file ``clip.load`` reads); CLIP-IQA+
  also ``prompt_path``, pyiqa's learned prompt tensor (``CLIP-IQA+_learned_prompts-603f3273.pth``, (2, 16, 512)).

Images arrive as BasicSR's ``tensor2img`` output: (H, W, 3) uint8 BGR in [0, 255]; higher scores are better.
"""
from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY
from torch import nn

__all__ = ['MUSIQ_VARIANTS', 'CLIPIQA_VARIANTS', 'build_musiq', 'build_clipiqa', 'calculate_musiq',
           'calculate_clipiqa']

# variant -> (pyiqa metric name, extra options pyiqa sets only on its download path)
MUSIQ_VARIANTS = {'koniq': ('musiq', {}), 'spaq': ('musiq-spaq', {}), 'paq2piq': ('musiq-paq2piq', {}),
                  'ava': ('musiq-ava', {'num_class': 10})}
CLIPIQA_VARIANTS = ('clipiqa', 'clipiqa+')
_CACHE: dict[tuple, nn.Module] = {}


def _import_pyiqa() -> types.ModuleType:
    try:
        import pyiqa
    except ImportError as e:
        raise ImportError('MUSIQ / CLIP-IQA need pyiqa, installed without its dependencies: '
                          'pip install --no-deps pyiqa==0.1.16 (scripts/setup_env.sh does)') from e
    return pyiqa


def _local_file(path: str | None, metric: str, option: str, what: str) -> Path:
    if path is None:
        raise ValueError(f'{metric} needs the metric option {option}: {what}; nothing is downloaded')
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f'{metric} option {option}: {file} does not exist')
    return file


def build_musiq(weights_path: str | None, variant: str = 'koniq', device: str = 'cpu') -> nn.Module:
    """pyiqa's MUSIQ inference model with the local checkpoint ``weights_path`` (loaded strictly).

    Raises:
        ValueError: unknown ``variant``, no ``weights_path``, or a checkpoint that is not this MUSIQ.
        FileNotFoundError: ``weights_path`` does not exist.
    """
    if variant not in MUSIQ_VARIANTS:
        raise ValueError(f'MUSIQ variant {variant!r} not in {tuple(MUSIQ_VARIANTS)}')
    path = _local_file(weights_path, 'MUSIQ', 'weights_path', f'a local pyiqa MUSIQ ({variant}) checkpoint')
    name, extra = MUSIQ_VARIANTS[variant]
    try:
        return _import_pyiqa().create_metric(name, device=torch.device(device), pretrained_model_path=str(path),
                                             **extra)
    except (RuntimeError, KeyError) as e:
        raise ValueError(f'MUSIQ option weights_path: {path} is not a pyiqa MUSIQ ({variant}) checkpoint: {e}') from e


def build_clipiqa(backbone_path: str | None, variant: str = 'clipiqa', prompt_path: str | None = None,
                  device: str = 'cpu') -> nn.Module:
    """pyiqa's CLIP-IQA (or CLIP-IQA+) inference model on a local CLIP RN50 (and learned prompts for ``+``).

    Raises:
        ValueError: unknown ``variant``, a missing option, or files of the wrong kind.
        FileNotFoundError: a given file does not exist.
    """
    if variant not in CLIPIQA_VARIANTS:
        raise ValueError(f'CLIP-IQA variant {variant!r} not in {CLIPIQA_VARIANTS}')
    backbone = _local_file(backbone_path, 'CLIP-IQA', 'backbone_path', "OpenAI's CLIP RN50.pt (TorchScript)")
    prompts = _local_file(prompt_path, 'CLIP-IQA+', 'prompt_path', "pyiqa's learned prompts "
                          '(CLIP-IQA+_learned_prompts-603f3273.pth)') if variant == 'clipiqa+' else None
    pyiqa = _import_pyiqa()
    try:
        # a path as ``backbone`` makes pyiqa's clip.load read that file; pretrained=False skips the prompt download
        model = pyiqa.create_metric(variant, device=torch.device(device), backbone=str(backbone),
                                    **({'pretrained': False} if prompts else {}))
    except (RuntimeError, EOFError, KeyError) as e:
        raise ValueError(f'CLIP-IQA option backbone_path: {backbone} is not a CLIP RN50 TorchScript file: {e}') from e
    if prompts is not None:
        ctx = torch.load(prompts, map_location='cpu', weights_only=True)
        target = model.net.prompt_learner.ctx
        if not isinstance(ctx, torch.Tensor) or ctx.shape != target.shape:
            got = tuple(ctx.shape) if isinstance(ctx, torch.Tensor) else type(ctx).__name__
            raise ValueError(f'CLIP-IQA+ option prompt_path: {prompts} holds {got}, expected a tensor of shape '
                             f'{tuple(target.shape)}')
        target.data.copy_(ctx.to(target.device))
    return model


def _score(model: nn.Module, img: np.ndarray, crop_border: int) -> float:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) image, got {img.shape}')
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
    rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1], dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        return float(model(rgb.to(next(model.parameters()).device)).squeeze())


@METRIC_REGISTRY.register()
def calculate_musiq(img: np.ndarray, weights_path: str | None = None, variant: str = 'koniq', crop_border: int = 0,
                    device: str = 'cpu', **kwargs) -> float:
    """MUSIQ score of ``img`` (no reference; higher is better; KonIQ variant about 0-100).

    Args:
        img: (H, W, 3) uint8 BGR in [0, 255].
        weights_path: local pyiqa MUSIQ checkpoint of ``variant`` (required).
        variant: one of ``MUSIQ_VARIANTS``.
        crop_border: pixels removed from each side.
        device: torch device.
        **kwargs: other BasicSR metric options (``img2`` is ignored).
    """
    key = ('musiq', variant, str(weights_path), device)
    if key not in _CACHE:
        _CACHE[key] = build_musiq(weights_path, variant, device)
    return _score(_CACHE[key], img, crop_border)


@METRIC_REGISTRY.register()
def calculate_clipiqa(img: np.ndarray, backbone_path: str | None = None, variant: str = 'clipiqa',
                      prompt_path: str | None = None, crop_border: int = 0, device: str = 'cpu', **kwargs) -> float:
    """CLIP-IQA score of ``img`` in [0, 1] (no reference; higher is better).

    Args:
        img: (H, W, 3) uint8 BGR in [0, 255].
        backbone_path: local OpenAI CLIP ``RN50.pt`` (required).
        variant: ``clipiqa`` or ``clipiqa+``.
        prompt_path: pyiqa's learned prompts (``clipiqa+`` only).
        crop_border: pixels removed from each side.
        device: torch device.
        **kwargs: other BasicSR metric options (``img2`` is ignored).
    """
    key = ('clipiqa', variant, str(backbone_path), str(prompt_path), device)
    if key not in _CACHE:
        _CACHE[key] = build_clipiqa(backbone_path, variant, prompt_path, device)
    return _score(_CACHE[key], img, crop_border)
