"""Parameters and forward time of ssr's networks: DKENet, NBSR, MANet, DCLS and every MiDaS / DPT variant.

Prints a markdown table (``ssr.tools.arch_benchmark``): parameters, and the median forward time (batch 1, no
gradient) at an LR input of ``--lr-size``^2 (x4) for the SR / kernel networks and at each MiDaS variant's native
size; on CUDA in fp32 and bf16 (autocast). Networks are built with random weights: speed does not depend on the values.

Example::

    python scripts/benchmark_archs.py --threads 2              # CPU
    python scripts/benchmark_archs.py --device cuda --repeats 20
"""
from __future__ import annotations

import argparse
import sys

import torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu', help='device (default: cpu)')
    p.add_argument('--lr-size', type=int, default=128, help='LR side of the SR / kernel networks, px (default: 128)')
    p.add_argument('--repeats', type=int, default=3, help='timed runs per row, median reported (default: 3)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--only', nargs='*', default=None, help='row names to run (default: all)')
    p.add_argument('--no-midas', action='store_true', help='skip the MiDaS / DPT variants')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import ssr  # noqa: F401
    from ssr.tools.arch_benchmark import benchmark_archs

    if args.device == 'cuda' and not torch.cuda.is_available():
        print('CUDA is not available', file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'device: {device}; batch 1; median of {args.repeats}; x4\n')
    print('| network | params (M) | input | fp32 (s) | bf16 (s) |\n|---|---:|---|---:|---:|')
    for r in benchmark_archs(args.lr_size, args.device, args.repeats, args.only, midas=not args.no_midas):
        bf16 = '' if r['bf16'] is None else f"{r['bf16']:.4f}"
        print(f"| {r['name']} | {r['params']:.2f} | {r['size']} | {r['fp32']:.4f} | {bf16} |", flush=True)
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
