"""Import-system helpers for :mod:`ssr.compat`: run a callback right after a module has been imported.

The callback is how ssr fixes basicsr without importing it: ``import ssr`` only installs a finder, and basicsr's
own import (whenever and by whomever it happens) runs the fixes once its ``__init__`` has finished.
"""
from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable
from types import ModuleType

Callback = Callable[[ModuleType], None]


class _CallbackLoader(importlib.abc.Loader):
    """Wraps the real loader of one module: executes it, restores the real loader, then runs the callback."""

    def __init__(self, loader: importlib.abc.Loader, callback: Callback, on_done: Callable[[], None]):
        self._loader = loader
        self._callback = callback
        self._on_done = on_done

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        # the module keeps its genuine loader (introspection, importlib.resources, reloading)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._callback(module)
        self._on_done()

    def __getattr__(self, name: str):
        # get_source, get_filename, is_package, get_resource_reader, ... of the real loader
        return getattr(self._loader, name)


class PostImportFinder(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` entry that runs ``callback(module)`` once, after module ``name`` is first imported.

    It never provides a module itself: it asks the finders behind it for the real spec and wraps the spec's loader.
    It removes itself from ``sys.meta_path`` once the module and the callback have run, so the callback runs once
    per process; an import that fails (in the module or in the callback) leaves it in place for the next attempt.
    """

    def __init__(self, name: str, callback: Callback):
        self.name = name
        self.callback = callback
        self._searching = False

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != self.name or self._searching:
            return None
        self._searching = True
        try:
            spec = None
            for finder in [f for f in sys.meta_path if f is not self]:
                find = getattr(finder, 'find_spec', None)
                spec = find(fullname, path, target) if find is not None else None
                if spec is not None:
                    break
        finally:
            self._searching = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        spec.loader = _CallbackLoader(spec.loader, self.callback, self.remove)
        return spec

    def remove(self) -> None:
        """Take this finder off ``sys.meta_path`` (no-op when it is not there)."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def when_imported(name: str, callback: Callback) -> None:
    """Run ``callback(module)`` now if module ``name`` is already imported, else right after its first import.

    Installing twice the same callback for the same name is a no-op.
    """
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return
    if not any(isinstance(f, PostImportFinder) and f.name == name and f.callback is callback for f in sys.meta_path):
        sys.meta_path.insert(0, PostImportFinder(name, callback))
