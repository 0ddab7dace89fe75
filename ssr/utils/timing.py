"""Wall-clock timing for benchmarks: the median of repeated calls, with CUDA work waited for around each call."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ['synchronize', 'median_time']


def synchronize(device: torch.device | str) -> None:
    """Wait for the queued CUDA work when ``device`` is a CUDA device; nothing on the CPU."""
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def median_time(fn: Callable[[], object], device: torch.device | str, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` calls, after ``warmup`` untimed calls.

    The warm-up calls absorb one-off costs (allocations, cuDNN autotuning); each timed call is bracketed by
    :func:`synchronize` so asynchronous CUDA kernels count where they run.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
