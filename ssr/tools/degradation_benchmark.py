"""Benchmark of the spatially variant blur + subsampling operator (:func:`ssr.ops.sv_blur.sv_blur_downsample`).

Two tables: throughput in HR patches per second for a batch of RGB patches, once with the kernel field given (the
operator alone) and once including the construction of the field from random per-pixel Gaussian parameters
(:func:`ssr.ops.kernel_field.kernel_field_from_params`); and the peak memory for one large image, on the CPU the
growth of the process's peak resident set (VmHWM, in a fresh interpreter per measurement, since tracemalloc does not
see torch's allocations), on CUDA ``torch.cuda.max_memory_allocated``. CLI: ``scripts/benchmark_degradation.py``.
"""
from __future__ import annotations

import math
import multiprocessing
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ssr.ops.kernel_field import kernel_field_from_params
from ssr.ops.sv_blur import AUTO_METHOD, METHODS, sv_blur_downsample
from ssr.utils.process_memory import reset_peak_rss, status_kb
from ssr.utils.timing import median_time

__all__ = ['TARGET_PATCHES_PER_S', 'TARGET_PEAK_MB', 'DegradationBenchmark', 'random_field',
           'field_from_random_params', 'throughput_rows', 'peak_worker', 'measure_peak', 'format_throughput',
           'format_peak']

TARGET_PATCHES_PER_S = {'cpu': 100.0, 'cuda': 10_000.0}  # cuda target is for an H100-class GPU
TARGET_PEAK_MB = 2048.0


@dataclass
class DegradationBenchmark:
    """Settings of one benchmark run.

    Attributes:
        methods: ``sv_blur_downsample`` methods to time (from ``METHODS``).
        batch: patches per batch.
        size: HR patch side, pixels (a multiple of ``scale``).
        kernel_size: k, odd, pixels.
        scale: s.
        repeats: timed runs per row (median reported).
        warmup: untimed runs before timing.
        peak_size: HR side of the single image of the peak-memory table, pixels (a multiple of ``scale``).
        seed: seed of the random inputs.
        threads: torch CPU threads of the peak-memory worker processes; None = torch default.
    """

    methods: list[str] = field(default_factory=lambda: list(METHODS))
    batch: int = 16
    size: int = 256
    kernel_size: int = 21
    scale: int = 4
    repeats: int = 5
    warmup: int = 1
    peak_size: int = 2048
    seed: int = 0
    threads: int | None = None


def random_field(batch: int, k: int, h: int, w: int, generator: torch.Generator, device: str) -> Tensor:
    """(B, k*k, h, w) positive field summing to 1, normalised in place (no second field-sized temporary)."""
    kernel_field = torch.rand(batch, k * k, h, w, generator=generator, device=device)
    return kernel_field.div_(kernel_field.sum(1, keepdim=True))


def field_from_random_params(batch: int, k: int, scale: int, h: int, w: int, generator: torch.Generator,
                             device: str) -> Tensor:
    """(B, k*k, h, w) Gaussian field from per-pixel sigma1, sigma2 ~ U[0.2, 4] std and theta ~ U[0, pi)."""
    u1, u2, u_theta = torch.rand(3, batch, h, w, generator=generator, device=device)
    sigma1, sigma2, theta = 0.2 + 3.8 * u1, 0.2 + 3.8 * u2, math.pi * u_theta
    return kernel_field_from_params(sigma1, sigma2, theta, k, scale)


def throughput_rows(bench: DegradationBenchmark, device: str) -> list[dict]:
    """One row per method and field mode (``given`` / ``built``): seconds per batch and patches per second."""
    k, s, b = bench.kernel_size, bench.scale, bench.batch
    h = bench.size // s
    generator = torch.Generator(device=device).manual_seed(bench.seed)
    hr = torch.rand(b, 3, bench.size, bench.size, generator=generator, device=device)
    given = random_field(b, k, h, h, generator, device)
    rows = []
    for method in bench.methods:
        for field_mode in ('given', 'built'):
            if field_mode == 'given':
                def run(method=method):
                    return sv_blur_downsample(hr, given, s, method=method)
            else:
                def run(method=method):
                    built = field_from_random_params(b, k, s, h, h, generator, device)
                    return sv_blur_downsample(hr, built, s, method=method)
            seconds = median_time(run, device, bench.repeats, bench.warmup)
            rows.append({'device': device, 'method': method, 'field': field_mode, 'seconds': seconds,
                         'patches_per_s': b / seconds})
    return rows


def peak_worker(bench: DegradationBenchmark, method: str, device: str) -> dict:
    """Runs the operator once on one ``peak_size``^2 image and reports memory in MiB (meant for a fresh process)."""
    k, s, n = bench.kernel_size, bench.scale, bench.peak_size
    generator = torch.Generator(device=device).manual_seed(bench.seed)
    if device == 'cuda':
        hr = torch.rand(1, 3, n, n, generator=generator, device=device)
        kernel_field = random_field(1, k, n // s, n // s, generator, device)
        torch.cuda.synchronize()
        inputs = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        sv_blur_downsample(hr, kernel_field, s, method=method)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {'inputs_mb': inputs / 2**20, 'op_mb': (peak - inputs) / 2**20, 'total_mb': peak / 2**20}
    base = status_kb('VmRSS')
    hr = torch.rand(1, 3, n, n, generator=generator)
    kernel_field = random_field(1, k, n // s, n // s, generator, device)
    after_inputs = status_kb('VmRSS')
    reset = reset_peak_rss()
    sv_blur_downsample(hr, kernel_field, s, method=method)
    peak = status_kb('VmHWM')
    return {'inputs_mb': (after_inputs - base) / 1024, 'op_mb': (peak - after_inputs) / 1024 if reset else None,
            'total_mb': (peak - base) / 1024}


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def measure_peak(bench: DegradationBenchmark, method: str, device: str) -> dict:
    """:func:`peak_worker` in a fresh interpreter (``spawn``: earlier allocations cannot hide the peak); its result.

    Raises:
        RuntimeError: the worker failed (its exception is chained).
    """
    context = multiprocessing.get_context('spawn')
    with context.Pool(1, initializer=_set_threads, initargs=(bench.threads,)) as pool:
        try:
            return pool.apply(peak_worker, (bench, method, device))
        except Exception as e:  # the worker's exception, re-raised here by the pool
            raise RuntimeError(f'peak-memory worker for {method} on {device} failed: {e}') from e


def _method_label(method: str, device: str) -> str:
    return f'{method} (auto)' if AUTO_METHOD.get(device) == method else method


def format_throughput(rows: list[dict], bench: DegradationBenchmark) -> str:
    """Markdown table of :func:`throughput_rows`, each row against ``TARGET_PATCHES_PER_S``."""
    lines = [f'Throughput: batch {bench.batch} x 3 x {bench.size}^2 HR, k={bench.kernel_size}, x{bench.scale}, '
             'float32', '', '| device | method | field | ms / batch | patches/s | target |',
             '|---|---|---|---:|---:|---|']
    for r in rows:
        target = TARGET_PATCHES_PER_S[r['device']]
        verdict = 'ok' if r['patches_per_s'] >= target else 'below'
        lines.append(f"| {r['device']} | {_method_label(r['method'], r['device'])} | {r['field']} | "
                     f"{1000 * r['seconds']:.1f} | {r['patches_per_s']:,.0f} | >= {target:,.0f}: {verdict} |")
    return '\n'.join(lines)


def format_peak(rows: list[dict], bench: DegradationBenchmark) -> str:
    """Markdown table of :func:`measure_peak` rows (with ``device`` and ``method``), against ``TARGET_PEAK_MB``."""
    lines = [f'Peak memory: one 3 x {bench.peak_size}^2 image, field (1, {bench.kernel_size**2}, '
             f'{bench.peak_size // bench.scale}, {bench.peak_size // bench.scale}) given, MiB',
             '', '| device | method | inputs | operator (over inputs) | total | target |',
             '|---|---|---:|---:|---:|---|']
    for r in rows:
        op = 'n/a' if r['op_mb'] is None else f"{r['op_mb']:.0f}"
        verdict = 'ok' if r['total_mb'] < TARGET_PEAK_MB else 'above'
        lines.append(f"| {r['device']} | {_method_label(r['method'], r['device'])} | {r['inputs_mb']:.0f} | {op} | "
                     f"{r['total_mb']:.0f} | < {TARGET_PEAK_MB:.0f}: {verdict} |")
    return '\n'.join(lines)
