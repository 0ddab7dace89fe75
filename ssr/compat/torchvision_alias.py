"""``torchvision.transforms.functional_tensor`` for basicsr 1.4.2 on torchvision >= 0.17.

torchvision 0.17 folded ``transforms/functional_tensor.py`` into ``transforms.functional`` (keeping a private
``_functional_tensor``); basicsr 1.4.2's ``data/degradations.py`` still runs
``from torchvision.transforms.functional_tensor import rgb_to_grayscale`` when basicsr is imported.

:func:`install` appends a finder to the END of ``sys.meta_path``: the standard finders go first, so on an older
torchvision that still ships the module the real one is imported, and only when they all fail does the finder
provide an alias module whose ``rgb_to_grayscale`` is ``torchvision.transforms.functional.rgb_to_grayscale``.
Nothing is imported until something imports the alias.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from types import ModuleType

ALIAS = 'torchvision.transforms.functional_tensor'


class _AliasLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        from torchvision.transforms import functional

        module.__doc__ = ('Alias created by ssr.compat.torchvision_alias: torchvision >= 0.17 folded this module into '
                          'torchvision.transforms.functional.')
        module.rgb_to_grayscale = functional.rgb_to_grayscale


class FunctionalTensorFinder(importlib.abc.MetaPathFinder):
    """Provides :data:`ALIAS` when no other finder does."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != ALIAS:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader())


def install() -> None:
    """Append :class:`FunctionalTensorFinder` to ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, FunctionalTensorFinder) for f in sys.meta_path):
        sys.meta_path.append(FunctionalTensorFinder())
