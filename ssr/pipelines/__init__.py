"""How a trained SSR runs on a tensor, outside BasicSR: SVKR (Algorithm 1) and its option block, the SSR pipeline
(first stage + AMF-UNet + sampler + SVKR + tiling + colour fix), the samplers and the Gaussian tile blender.

Floor: imports ``ssr.ops``, ``ssr.archs``, ``ssr.data``, ``ssr.metrics`` and ``ssr.utils``; never ``ssr.models``.
The names below are imported on first access (PEP 562), so ``from ssr.pipelines.svkr import SVKR`` (the blind
path) does not import diffusers, which the samplers and the SSR pipeline need.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    'SamplerConfig': 'sampling', 'build_scheduler': 'sampling', 'diffusion_config': 'sampling',
    'sample_latents': 'sampling',
    'SSROutput': 'ssr_pipeline', 'SSRPipeline': 'ssr_pipeline', 'SSRPipelineConfig': 'ssr_pipeline',
    'CONSTANT_DEPTH': 'svkr', 'SVKR': 'svkr', 'OneNetworkSR': 'svkr', 'SVKRConfig': 'svkr', 'SVKROutput': 'svkr',
    'blind_sr': 'svkr',
    'GaussianBlender': 'tiling', 'tiled_fields': 'tiling',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
