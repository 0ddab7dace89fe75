"""Optional native CPU kernels, compiled from ``ssr/ops/csrc`` on first use.

The C++ sources are built by ``torch.utils.cpp_extension.load`` (ninja + the system C++ compiler) into torch's
extension cache (``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``): the first process on a machine
compiles (a few seconds), later ones only load the library. Every caller keeps a pure-torch path with the same
results (up to float rounding), which runs when

- the environment variable ``SSR_NATIVE`` is ``0`` (or ``false`` / ``no`` / ``off``),
- no compiler or ninja is found, or the build fails: one warning line says why, once per process,
- the inputs are not what the kernel handles (the callers check: CPU float32, no autograd).

The kernels are built for, and only used on, CPUs for which torch reports the AVX-512 capability
(``torch.backends.cpu.get_cpu_capability()``; ``ATEN_CPU_CAPABILITY`` lowers it): they are written for 16-float
vectors, and built for AVX2 they measured slower than the torch path (elsewhere the torch path runs, with one info
line). The capability is part of the library's name, so an extension cache shared by machines of different CPUs
keeps one build per capability.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sysconfig
from collections.abc import Callable
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

ENV_VAR = 'SSR_NATIVE'
CSRC = Path(__file__).with_name('csrc')
_FLAGS = {'AVX512': ['-mavx512f', '-mavx512dq', '-mavx512vl', '-mavx512bw', '-mavx2', '-mfma']}


def native_enabled() -> bool:
    """False when ``SSR_NATIVE`` disables the native kernels (read at every call, so it can change at run time)."""
    return os.environ.get(ENV_VAR, '1').strip().lower() not in ('0', 'false', 'no', 'off')


def _ninja_on_path() -> None:
    """Puts the environment's scripts directory on PATH when ``ninja`` is found there but not on PATH (a venv used
    without activating it, with ``pip install ninja``), since torch's builder calls ``ninja`` by name."""
    scripts = sysconfig.get_path('scripts')
    if shutil.which('ninja') is None and scripts and shutil.which('ninja', path=scripts) is not None:
        os.environ['PATH'] = os.pathsep.join([scripts, os.environ.get('PATH', '')])


@functools.lru_cache(maxsize=None)
def _load() -> bool:
    """Builds (or loads from the cache) the ``ssr_native`` operator library; False, with one warning, on failure."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in _FLAGS:
        logger.info('ssr native CPU kernels not used on CPU capability %s (built for AVX512); using the torch path',
                    capability)
        return False
    try:
        _ninja_on_path()
        # importing the builder warns about CUDA_HOME on machines without a CUDA runtime; that is not our concern
        cpp_logger = logging.getLogger('torch.utils.cpp_extension')
        level = cpp_logger.level
        cpp_logger.setLevel(logging.ERROR)
        try:
            from torch.utils.cpp_extension import load
        finally:
            cpp_logger.setLevel(level)
        load(name=f'ssr_native_{capability.lower()}', sources=[str(CSRC / 'gaussian_field_blur.cpp')],
             extra_cflags=['-O3', '-ffp-contract=fast', *_FLAGS[capability]], is_python_module=False, verbose=False)
    except Exception as err:  # noqa: BLE001 - any build failure means: use the torch path
        reason = ' '.join(str(err).split())[:300] or type(err).__name__
        logger.warning('ssr native CPU kernels unavailable, using the torch path (%s: %s)', type(err).__name__,
                       reason)
        return False
    return True


def native_op(name: str) -> Callable | None:
    """``torch.ops.ssr_native.<name>``, building the library on first use; ``None`` when disabled or unavailable."""
    if not native_enabled() or not _load():
        return None
    return getattr(torch.ops.ssr_native, name)

