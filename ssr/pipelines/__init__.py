"""How a trained SSR runs on a tensor, outside BasicSR: SVKR (Algorithm 1) and its option block, the SSR pipeline
(first stage + AMF-UNet + sampler + SVKR + tiling + colour fix), the samplers and the Gaussian tile blender.

Floor: imports ``ssr.ops``, ``ssr.archs``, ``ssr.data``, ``ssr.metrics`` and ``ssr.utils``; never ``ssr.models``.
"""
from ssr.pipelines.sampling import SamplerConfig, build_scheduler, diffusion_config, sample_latents
from ssr.pipelines.ssr_pipeline import SSROutput, SSRPipeline, SSRPipelineConfig
from ssr.pipelines.svkr import CONSTANT_DEPTH, SVKR, OneNetworkSR, SVKRConfig, SVKROutput, blind_sr
from ssr.pipelines.tiling import GaussianBlender, tiled_fields

__all__ = ['CONSTANT_DEPTH', 'GaussianBlender', 'OneNetworkSR', 'SSROutput', 'SSRPipeline', 'SSRPipelineConfig',
           'SVKR', 'SVKRConfig', 'SVKROutput', 'SamplerConfig', 'blind_sr', 'build_scheduler', 'diffusion_config',
           'sample_latents', 'tiled_fields']
