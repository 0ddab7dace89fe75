"""BasicSR registries that import ssr's registering modules when a lookup needs them, one module per name.

ssr's archs, datasets, losses, metrics and models register themselves in basicsr's five registries
(``basicsr.utils.registry``) when their modules are imported. Importing them from ``import ssr`` would make every
``import ssr.<anything>`` load basicsr, diffusers and timm; importing them from basicsr's post-import hook would be
circular (``ssr.archs`` itself imports basicsr). Instead, :func:`install` turns each registry into a
:class:`LazyLookups` registry that knows, from :func:`ssr.compat.registry_index.registry_index` (the source, parsed,
not imported), which module registers which name:

- ``get(name)`` imports only the module that registers ``name`` (a DKENet does not import diffusers or timm);
- ``name in registry`` answers from the index without importing anything;
- ``keys()``, iteration, and a ``get`` of a name the index does not know run the full loader
  (:func:`ssr.compat.register`) once, so that basicsr's own "not found" error lists everything.

That is how ``build_network`` / ``build_model`` / ``build_dataset`` / ``build_loss`` / ``calculate_metric`` and
ssr's option validator read them. Registering (``@ARCH_REGISTRY.register()``) triggers nothing.

Only the class of the five registry objects changes (to a subclass of their own class); every lookup returns what
basicsr's ``Registry`` returns once the loader has run. Nothing here imports basicsr at module level.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from ssr.compat.registry_index import REGISTRY_NAMES, registry_index

_LOADER_ATTR = '_ssr_pending_loader'
_INDEX_ATTR = '_ssr_module_index'
_lazy_classes: dict[type, type] = {}


class LazyLookups:
    """Mixin for basicsr's ``Registry``: runs the pending loader (once) before each kind of lookup.

    A loader that raises stays pending, so the next lookup retries it and raises again instead of answering from a
    half-filled registry.
    """

    def _import_module_of(self, name) -> None:
        """Import the module the index names for ``name`` when ``name`` is not registered yet."""
        index = self.__dict__.get(_INDEX_ATTR) or {}
        if isinstance(name, str) and name not in self._obj_map and name in index:
            importlib.import_module(index[name])

    def _run_pending_loader(self) -> None:
        loader = self.__dict__.pop(_LOADER_ATTR, None)
        if loader is None:
            return
        try:
            loader()
        except BaseException:
            setattr(self, _LOADER_ATTR, loader)
            raise

    def get(self, name, suffix='basicsr'):
        self._import_module_of(name)
        self._import_module_of(f'{name}_{suffix}')
        if name not in self._obj_map and f'{name}_{suffix}' not in self._obj_map:
            self._run_pending_loader()
        return super().get(name, suffix)

    def __contains__(self, name) -> bool:
        if super().__contains__(name) or name in (self.__dict__.get(_INDEX_ATTR) or {}):
            return True
        self._run_pending_loader()
        return super().__contains__(name)

    def __iter__(self):
        self._run_pending_loader()
        return super().__iter__()

    def keys(self):
        self._run_pending_loader()
        return super().keys()


def _lazy_class(base: type) -> type:
    if issubclass(base, LazyLookups):
        return base
    if base not in _lazy_classes:
        _lazy_classes[base] = type(f'Lazy{base.__name__}', (LazyLookups, base), {'__module__': __name__})
    return _lazy_classes[base]


def make_lazy(registry, loader: Callable[[], None], index: Mapping[str, str] | None = None) -> None:
    """Make ``registry`` (a basicsr ``Registry``) import what its lookups need.

    Args:
        registry: a basicsr ``Registry``; its class becomes a subclass of its own class with :class:`LazyLookups`.
        loader: imports everything (run once, by ``keys()``, iteration or a lookup the index cannot answer).
        index: ``{registered name: module}``; a ``get`` of one of these names imports only that module.

    A registry whose loader has already run is left as it is.
    """
    if isinstance(registry, LazyLookups) and not is_pending(registry):
        return
    registry.__class__ = _lazy_class(type(registry))
    setattr(registry, _LOADER_ATTR, loader)
    setattr(registry, _INDEX_ATTR, dict(index or {}))


def install(loader: Callable[[], None]) -> None:
    """:func:`make_lazy` on basicsr's five registries with ssr's module index (basicsr must be imported)."""
    import basicsr.utils.registry as registry_module

    index = registry_index()
    for name in REGISTRY_NAMES:
        make_lazy(getattr(registry_module, name), loader, index[name])


def is_pending(registry) -> bool:
    """Whether ``registry`` still holds a loader that has not run."""
    return _LOADER_ATTR in vars(registry)
