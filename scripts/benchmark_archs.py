"""Parameters and forward time of ssr's networks: DKENet, NBSR, MANet, DCLS and every MiDaS / DPT variant.

Prints a markdown table: parameters, and the median forward time (batch 1, no gradient) at an LR input of
``--lr-size``^2 (x4) for the SR / kernel networks and at each MiDaS variant's native size; on CUDA in fp32 and bf16
(autocast). Networks are built with random weights: speed does not depend on the values.

Example::

    python scripts/benchmark_archs.py --threads 2              # CPU
    python scripts/benchmark_archs.py --device cuda --repeats 20
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu', help='device (default: cpu)')
    p.add_argument('--lr-size', type=int, default=128, help='LR side of the SR / kernel networks, px (default: 128)')
    p.add_argument('--repeats', type=int, default=3, help='timed runs per row, median reported (default: 3)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--only', nargs='*', default=None, help='row names to run (default: all)')
    p.add_argument('--no-midas', action='store_true', help='skip the MiDaS / DPT variants')
    return p


def median_time(fn: Callable[[], object], device: str, repeats: int) -> float:
    fn()  # warm-up (allocations, cudnn autotune)
    times = []
    for _ in range(repeats):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rows(args: argparse.Namespace):
    from basicsr.utils.registry import ARCH_REGISTRY

    from ssr.archs.midas_depth_arch import MIDAS_VARIANTS

    jobs = [(name, lambda a=arch, k=kw: ARCH_REGISTRY.get(a)(**k), make(args.lr_size), f'{args.lr_size}² LR')
            for name, (arch, kw, make) in SR_NETWORKS.items()]
    if not args.no_midas:
        for variant in MIDAS_VARIANTS:
            def build(v=variant):
                return ARCH_REGISTRY.get('MiDaSDepth')(variant=v, random_weights=True)
            size = MIDAS_VARIANTS[variant].net_size
            jobs.append((f'MiDaS {variant}', build, {'img': torch.rand(1, 3, size, size)}, f'{size}² image'))
    for name, build, inputs, size in jobs:
        if args.only and name not in args.only:
            continue
        torch.manual_seed(0)
        net = build().to(args.device).eval()
        inputs = {k: v.to(args.device) for k, v in inputs.items()}
        params = sum(p.numel() for p in net.parameters()) / 1e6
        with torch.no_grad():
            fp32 = median_time(lambda: net(**inputs), args.device, args.repeats)
            bf16 = None
            if args.device == 'cuda':
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    bf16 = median_time(lambda: net(**inputs), args.device, args.repeats)
        yield {'name': name, 'params': params, 'size': size, 'fp32': fp32, 'bf16': bf16}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import ssr  # noqa: F401

    if args.device == 'cuda' and not torch.cuda.is_available():
        print('CUDA is not available', file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'device: {device}; batch 1; median of {args.repeats}; x4\n')
    print('| network | params (M) | input | fp32 (s) | bf16 (s) |\n|---|---:|---|---:|---:|')
    for r in rows(args):
        bf16 = '' if r['bf16'] is None else f"{r['bf16']:.4f}"
        print(f"| {r['name']} | {r['params']:.2f} | {r['size']} | {r['fp32']:.4f} | {bf16} |", flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
