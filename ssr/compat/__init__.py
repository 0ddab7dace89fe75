"""Every basicsr 1.4.2 / torchvision fix ssr needs, applied by one :func:`apply` (called by ``import ssr``).

basicsr 1.4.2 predates torch 2 and torchvision 0.17. :func:`apply` is cheap and imports neither basicsr nor
torchvision: it installs two import hooks, and the fixes run when (and only when) basicsr itself is imported, by
anyone, in any order.

Module-level fixes, one module each:
    - :mod:`~ssr.compat.torchvision_alias`: ``torchvision.transforms.functional_tensor`` (removed in torchvision
      0.17, imported by basicsr's ``data/degradations.py``) is provided on demand when the real one is missing.
    - :mod:`~ssr.compat.lmdb_paths`: ``paths_from_lmdb`` / ``paired_paths_from_lmdb`` keep dots inside LMDB keys.
    - :mod:`~ssr.compat.train_pipeline`: ``basicsr.train`` / ``basicsr.test`` use ssr's option parser and resume
      exactly (CPU-safe state loading, the interrupted epoch's consumed batches skipped, true epoch count).
    - :mod:`~ssr.compat.lazy_registry`: basicsr's registries import the one ssr module that registers a looked-up
      name (:mod:`~ssr.compat.registry_index` reads which from the source), so ``import ssr`` imports neither
      basicsr, diffusers nor timm, and the blind path never imports diffusers or timm; :func:`register` imports
      them all.

What basicsr lets us subclass is not patched: ssr's models share :class:`ssr.models.base_model.SVBaseModel`
(any ``torch.optim`` optimizer, DDP on CPU, atomic checkpoints with RNG and EMA states, strict ``weights_only``
loading), and basicsr's own ``BaseModel`` is left as basicsr wrote it.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ssr.compat import torchvision_alias
from ssr.compat._import_hooks import when_imported
from ssr.compat.registry_index import registering_modules

_applied = False
_registered = False


def _fix_basicsr(basicsr: ModuleType) -> None:
    """Post-import hook of ``basicsr``: the function-level fixes, then the lazy registries."""
    from ssr.compat import lazy_registry, lmdb_paths, train_pipeline

    lmdb_paths.apply()
    train_pipeline.apply()
    lazy_registry.install(register)


def apply() -> None:
    """Install the fixes (idempotent): at once for what is already imported, on import for the rest."""
    global _applied
    if _applied:
        return
    torchvision_alias.install()
    when_imported('basicsr', _fix_basicsr)
    _applied = True


def register() -> None:
    """Import every ssr module that registers in basicsr's registries (idempotent).

    The lazy registries call it for ``keys()``, iteration and names their index does not know; call it to check
    that every registering module imports (it loads diffusers and timm: ~1 s more than the blind path needs).
    """
    global _registered
    if _registered:
        return
    _registered = True  # before importing: a lookup made while the packages import must not re-enter
    try:
        for module in registering_modules():
            importlib.import_module(module)
    except BaseException:
        _registered = False
        raise
