"""The process's resident and peak resident memory on Linux (for benchmarks; tracemalloc does not see torch), and
:func:`measure`, the latency / peak-memory probe the benchmark scripts share."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from ssr.utils.timing import synchronize


def status_kb(key: str) -> int:
    """A ``/proc/self/status`` field in kB, e.g. ``VmRSS`` (resident) or ``VmHWM`` (peak resident)."""
    with open('/proc/self/status', encoding='ascii') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{key} not found in /proc/self/status')


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, ``echo 5 > /proc/self/clear_refs``); False where not allowed."""
    try:
        with open('/proc/self/clear_refs', 'w', encoding='ascii') as f:
            f.write('5')
        return True
    except OSError:
        return False


def measure(fn: Callable[[], object], device: str, repeats: int) -> tuple[float, float | None]:
    """(median seconds over ``repeats`` calls, peak MiB of the first call above the state before it, or None).

    Memory is taken from the first (cold) call, since allocator caches make later calls look free: on CUDA
    ``max_memory_allocated``, on the CPU the peak resident set (None where the peak cannot be reset); time from the
    later (warm) calls.
    """
    cuda = str(device).startswith('cuda')
    synchronize(device)
    if cuda:
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = status_kb('VmRSS') * 1024 if reset_peak_rss() else None
    fn()
    synchronize(device)
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        peak = None if before is None else (status_kb('VmHWM') * 1024 - before) / 2**20
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), peak
