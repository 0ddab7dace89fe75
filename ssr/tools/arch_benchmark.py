"""Parameters and forward time of ssr's networks: DKENet, NBSR, MANet, DCLS and every MiDaS / DPT variant.

Networks are built from BasicSR's ``ARCH_REGISTRY`` with random weights (speed does not depend on the values) and
timed at batch 1 without gradients: the SR / kernel networks at an LR input of ``lr_size``^2 (x4), each MiDaS variant
at its native size; on CUDA in fp32 and bf16 (autocast). CLI: ``scripts/benchmark_archs.py``.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from ssr.utils.timing import median_time

__all__ = ['SR_NETWORKS', 'benchmark_archs']

SR_NETWORKS = {
    # name: (arch, kwargs, inputs(lr_size) -> kwargs of forward)
    'DKENet': ('DKENet', {}, lambda n: {'lq': torch.rand(1, 3, n, n), 'depth': torch.rand(1, 1, 4 * n, 4 * n)}),
    'DKENet (no depth)': ('DKENet', {'use_depth': False}, lambda n: {'lq': torch.rand(1, 3, n, n)}),
    'NBSR': ('NBSR', {}, lambda n: {'lq': torch.rand(1, 3, n, n),
                                    'kernel': torch.softmax(torch.randn(1, 441, n, n), 1)}),
    'RRDBNet (RealSR)': ('RRDBNet', {'num_in_ch': 3, 'num_out_ch': 3}, lambda n: {'x': torch.rand(1, 3, n, n)}),
    'MANetEstimator': ('MANetEstimator', {}, lambda n: {'lq': torch.rand(1, 3, n, n)}),
    'MANetBlindSR': ('MANetBlindSR', {}, lambda n: {'lq': torch.rand(1, 3, n, n)}),
    'DCLSNet': ('DCLSNet', {}, lambda n: {'lq': torch.rand(1, 3, n, n)}),
}


def benchmark_archs(lr_size: int = 128, device: str = 'cpu', repeats: int = 3, only: list[str] | None = None,
                    midas: bool = True) -> Iterator[dict]:
    """Yields one row per network: ``{'name', 'params' (millions), 'size' (input label), 'fp32', 'bf16'}``.

    Args:
        lr_size: LR side of the SR / kernel networks, pixels.
        device: ``'cpu'`` or ``'cuda'``.
        repeats: timed runs per row (median reported, after one warm-up run).
        only: row names to run; None runs all.
        midas: include the MiDaS / DPT variants.

    Yields:
        Rows in table order; ``fp32`` / ``bf16`` are median seconds (``bf16`` None off CUDA).
    """
    from basicsr.utils.registry import ARCH_REGISTRY

    from ssr.archs.midas_depth_arch import MIDAS_VARIANTS

    jobs = [(name, lambda a=arch, k=kw: ARCH_REGISTRY.get(a)(**k), make(lr_size), f'{lr_size}² LR')
            for name, (arch, kw, make) in SR_NETWORKS.items()]
    if midas:
        for variant in MIDAS_VARIANTS:
            def build(v=variant):
                return ARCH_REGISTRY.get('MiDaSDepth')(variant=v, random_weights=True)
            size = MIDAS_VARIANTS[variant].net_size
            jobs.append((f'MiDaS {variant}', build, {'img': torch.rand(1, 3, size, size)}, f'{size}² image'))
    for name, build, inputs, size in jobs:
        if only and name not in only:
            continue
        torch.manual_seed(0)
        net = build().to(device).eval()
        inputs = {k: v.to(device) for k, v in inputs.items()}
        params = sum(p.numel() for p in net.parameters()) / 1e6
        with torch.no_grad():
            fp32 = median_time(lambda: net(**inputs), device, repeats)
            bf16 = None
            if device == 'cuda':
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    bf16 = median_time(lambda: net(**inputs), device, repeats)
        yield {'name': name, 'params': params, 'size': size, 'fp32': fp32, 'bf16': bf16}
