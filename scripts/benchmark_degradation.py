"""Benchmark the spatially variant blur + subsampling operator (``ssr.ops.sv_blur``) per method and device.

Prints two markdown tables (``ssr.tools.degradation_benchmark``):

1. throughput in HR patches per second for a batch of ``--batch`` RGB patches of ``--size``^2 pixels, k x k
   kernels, scale s; once with the kernel field given (the operator alone) and once including the construction of
   the field from random per-pixel Gaussian parameters (``ssr.ops.kernel_field.kernel_field_from_params``);
2. peak memory for one ``--peak-size``^2 image: on the CPU the growth of the process's peak resident set (VmHWM in
   /proc/self/status, in a fresh subprocess per measurement, since tracemalloc does not see torch's allocations);
   on CUDA ``torch.cuda.max_memory_allocated``.

Example::

    python scripts/benchmark_degradation.py --threads 2
"""
from __future__ import annotations

import argparse
import sys

import torch

from ssr.ops.sv_blur import METHODS
from ssr.tools.degradation_benchmark import (DegradationBenchmark, format_peak, format_throughput, measure_peak,
                                             throughput_rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Benchmark spatially variant blur + subsampling methods.')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                        help="'auto': cpu, plus cuda when available. Default: auto.")
    parser.add_argument('--methods', nargs='+', choices=METHODS, default=list(METHODS),
                        help=f'Methods to time. Default: all ({" ".join(METHODS)}).')
    parser.add_argument('--batch', type=int, default=16, help='Patches per batch. Default: 16.')
    parser.add_argument('--size', type=int, default=256, help='HR patch size, pixels. Default: 256.')
    parser.add_argument('--kernel-size', type=int, default=21, help='Odd kernel size k, pixels. Default: 21.')
    parser.add_argument('--scale', type=int, default=4, help='Scale s. Default: 4.')
    parser.add_argument('--repeats', type=int, default=5, help='Timed runs per row (median reported). Default: 5.')
    parser.add_argument('--warmup', type=int, default=1, help='Untimed runs before timing. Default: 1.')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (torch.set_num_threads). Default: torch default.')
    parser.add_argument('--peak-size', type=int, default=2048,
                        help='HR size of the single image of the peak-memory table, pixels. Default: 2048.')
    parser.add_argument('--no-peak', action='store_true', help='Skip the peak-memory table. Default: off.')
    parser.add_argument('--seed', type=int, default=0, help='Seed of the random inputs. Default: 0.')
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.size % args.scale or args.peak_size % args.scale:
        parser.error(f'--size {args.size} and --peak-size {args.peak_size} must be multiples of --scale {args.scale}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('CUDA requested but not available', file=sys.stderr)
        return 1
    bench = DegradationBenchmark(methods=args.methods, batch=args.batch, size=args.size, kernel_size=args.kernel_size,
                                 scale=args.scale, repeats=args.repeats, warmup=args.warmup, peak_size=args.peak_size,
                                 seed=args.seed, threads=args.threads)
    devices = ['cpu', 'cuda'] if args.device == 'auto' else [args.device]
    devices = [d for d in devices if d == 'cpu' or torch.cuda.is_available()]
    print(f'torch {torch.__version__}, CPU threads {torch.get_num_threads()}'
          + (f', GPU {torch.cuda.get_device_name()}' if 'cuda' in devices else ''))
    print(format_throughput([row for d in devices for row in throughput_rows(bench, d)], bench))
    if not args.no_peak:
        print()
        print(format_peak([{'device': d, 'method': m, **measure_peak(bench, m, d)} for d in devices
                           for m in args.methods], bench))
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
