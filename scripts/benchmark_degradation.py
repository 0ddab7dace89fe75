"""Benchmark the spatially variant blur + subsampling operator (``ssr.ops.sv_blur``) per method and device.

Prints two markdown tables:

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
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ssr.ops.sv_blur import AUTO_METHOD, METHODS, sv_blur_downsample
from ssr.utils.process_memory import reset_peak_rss, status_kb

REPO = Path(__file__).resolve().parents[1]
TARGET_PATCHES_PER_S = {'cpu': 100.0, 'cuda': 10_000.0}  # cuda target is for an H100-class GPU
TARGET_PEAK_MB = 2048.0


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
    parser.add_argument('--peak-worker', nargs=2, metavar=('METHOD', 'DEVICE'), help=argparse.SUPPRESS)
    return parser


def random_field(batch: int, k: int, h: int, w: int, generator: torch.Generator, device: str) -> Tensor:
    """(B, k*k, h, w) positive field summing to 1, normalised in place (no second field-sized temporary)."""
    field = torch.rand(batch, k * k, h, w, generator=generator, device=device)
    return field.div_(field.sum(1, keepdim=True))


def field_from_random_params(batch: int, k: int, scale: int, h: int, w: int, generator: torch.Generator,
                             device: str) -> Tensor:
    """(B, k*k, h, w) Gaussian field from per-pixel sigma1, sigma2 ~ U[0.2, 4] std and theta ~ U[0, pi)."""
    u1, u2, u_theta = torch.rand(3, batch, h, w, generator=generator, device=device)
    sigma1, sigma2, theta = 0.2 + 3.8 * u1, 0.2 + 3.8 * u2, math.pi * u_theta
    try:
        from ssr.ops.kernel_field import kernel_field_from_params
    except ImportError:
        from ssr.ops.kernels import gaussian_kernels
        kernels = gaussian_kernels(sigma1, sigma2, theta, k, scale)  # (B, h, w, k, k)
        return kernels.flatten(-2).permute(0, 3, 1, 2).contiguous()
    return kernel_field_from_params(sigma1, sigma2, theta, k, scale)


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], device: str, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput_rows(args: argparse.Namespace, device: str) -> list[dict]:
    k, s, b = args.kernel_size, args.scale, args.batch
    h = args.size // s
    generator = torch.Generator(device=device).manual_seed(args.seed)
    hr = torch.rand(b, 3, args.size, args.size, generator=generator, device=device)
    field = random_field(b, k, h, h, generator, device)
    rows = []
    for method in args.methods:
        for field_mode in ('given', 'built'):
            if field_mode == 'given':
                def run(method=method):
                    return sv_blur_downsample(hr, field, s, method=method)
            else:
                def run(method=method):
                    built = field_from_random_params(b, k, s, h, h, generator, device)
                    return sv_blur_downsample(hr, built, s, method=method)
            seconds = time_call(run, device, args.repeats, args.warmup)
            rows.append({'device': device, 'method': method, 'field': field_mode, 'seconds': seconds,
                         'patches_per_s': b / seconds})
    return rows




def peak_worker(args: argparse.Namespace, method: str, device: str) -> dict:
    """Runs the operator once on one ``--peak-size``^2 image and reports memory in MiB (run in a fresh process)."""
    k, s, n = args.kernel_size, args.scale, args.peak_size
    generator = torch.Generator(device=device).manual_seed(args.seed)
    if device == 'cuda':
        hr = torch.rand(1, 3, n, n, generator=generator, device=device)
        field = random_field(1, k, n // s, n // s, generator, device)
        torch.cuda.synchronize()
        inputs = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        sv_blur_downsample(hr, field, s, method=method)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {'inputs_mb': inputs / 2**20, 'op_mb': (peak - inputs) / 2**20, 'total_mb': peak / 2**20}
    base = status_kb('VmRSS')
    hr = torch.rand(1, 3, n, n, generator=generator)
    field = random_field(1, k, n // s, n // s, generator, device)
    after_inputs = status_kb('VmRSS')
    reset = reset_peak_rss()
    sv_blur_downsample(hr, field, s, method=method)
    peak = status_kb('VmHWM')
    return {'inputs_mb': (after_inputs - base) / 1024, 'op_mb': (peak - after_inputs) / 1024 if reset else None,
            'total_mb': (peak - base) / 1024}


def measure_peak(args: argparse.Namespace, method: str, device: str) -> dict:
    """Starts a fresh interpreter for one peak-memory measurement and parses its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), '--peak-worker', method, device,
           '--peak-size', str(args.peak_size), '--kernel-size', str(args.kernel_size), '--scale', str(args.scale),
           '--seed', str(args.seed)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f'peak-memory worker for {method} on {device} failed:\n{proc.stderr[-2000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _method_label(method: str, device: str) -> str:
    return f'{method} (auto)' if AUTO_METHOD.get(device) == method else method


def format_throughput(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f'Throughput: batch {args.batch} x 3 x {args.size}^2 HR, k={args.kernel_size}, x{args.scale}, float32',
             '', '| device | method | field | ms / batch | patches/s | target |',
             '|---|---|---|---:|---:|---|']
    for r in rows:
        target = TARGET_PATCHES_PER_S[r['device']]
        verdict = 'ok' if r['patches_per_s'] >= target else 'below'
        lines.append(f"| {r['device']} | {_method_label(r['method'], r['device'])} | {r['field']} | "
                     f"{1000 * r['seconds']:.1f} | {r['patches_per_s']:,.0f} | >= {target:,.0f}: {verdict} |")
    return '\n'.join(lines)


def format_peak(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f'Peak memory: one 3 x {args.peak_size}^2 image, field (1, {args.kernel_size**2}, '
             f'{args.peak_size // args.scale}, {args.peak_size // args.scale}) given, MiB',
             '', '| device | method | inputs | operator (over inputs) | total | target |',
             '|---|---|---:|---:|---:|---|']
    for r in rows:
        op = 'n/a' if r['op_mb'] is None else f"{r['op_mb']:.0f}"
        verdict = 'ok' if r['total_mb'] < TARGET_PEAK_MB else 'above'
        lines.append(f"| {r['device']} | {_method_label(r['method'], r['device'])} | {r['inputs_mb']:.0f} | {op} | "
                     f"{r['total_mb']:.0f} | < {TARGET_PEAK_MB:.0f}: {verdict} |")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_worker:
        method, device = args.peak_worker
        print(json.dumps(peak_worker(args, method, device)))
        return 0
    if args.size % args.scale or args.peak_size % args.scale:
        parser.error(f'--size {args.size} and --peak-size {args.peak_size} must be multiples of --scale {args.scale}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('CUDA requested but not available', file=sys.stderr)
        return 1
    devices = ['cpu', 'cuda'] if args.device == 'auto' else [args.device]
    devices = [d for d in devices if d == 'cpu' or torch.cuda.is_available()]
    print(f'torch {torch.__version__}, CPU threads {torch.get_num_threads()}'
          + (f', GPU {torch.cuda.get_device_name()}' if 'cuda' in devices else ''))
    print(format_throughput([row for d in devices for row in throughput_rows(args, d)], args))
    if not args.no_peak:
        print()
        print(format_peak([{'device': d, 'method': m, **measure_peak(args, m, d)} for d in devices
                           for m in args.methods], args))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
