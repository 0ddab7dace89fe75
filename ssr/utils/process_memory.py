"""The process's resident and peak resident memory on Linux (for benchmarks; tracemalloc does not see torch)."""
from __future__ import annotations


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
