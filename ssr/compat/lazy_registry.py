"""BasicSR registries that import ssr's registering sub-packages on their first lookup.

ssr's archs, datasets, losses, metrics and models register themselves in basicsr's five registries
(``basicsr.utils.registry``) when their modules are imported. Importing them from ``import ssr`` would make every
``import ssr.<anything>`` load basicsr, diffusers and timm; importing them from basicsr's post-import hook would be
circular (``ssr.archs`` itself imports basicsr). Instead, :func:`install` turns each registry into a
:class:`LazyLookups` registry holding a loader (:func:`ssr.compat.register`) that runs the first time the registry is
queried through ``get``, ``in``, ``keys()`` or iteration, which is how ``build_network`` / ``build_model`` /
``build_dataset`` / ``build_loss`` / ``calculate_metric`` and ssr's option validator read it. Registering
(``@ARCH_REGISTRY.register()``) does not trigger the loader.

Only the class of the five registry objects changes (to a subclass of their own class); every lookup returns what
basicsr's ``Registry`` returns once the loader has run. Nothing here imports basicsr at module level.
"""
from __future__ import annotations

from collections.abc import Callable

REGISTRY_NAMES = ('ARCH_REGISTRY', 'DATASET_REGISTRY', 'LOSS_REGISTRY', 'METRIC_REGISTRY', 'MODEL_REGISTRY')
_LOADER_ATTR = '_ssr_pending_loader'
_lazy_classes: dict[type, type] = {}


class LazyLookups:
    """Mixin for basicsr's ``Registry``: runs the pending loader (once) before each kind of lookup.

    A loader that raises stays pending, so the next lookup retries it and raises again instead of answering from a
    half-filled registry.
    """

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
        self._run_pending_loader()
        return super().get(name, suffix)

    def __contains__(self, name) -> bool:
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


def make_lazy(registry, loader: Callable[[], None]) -> None:
    """Make ``registry`` (a basicsr ``Registry``) run ``loader`` before its first lookup.

    Its class becomes a subclass of its own class with :class:`LazyLookups`; a registry whose loader has already
    run is left as it is.
    """
    if isinstance(registry, LazyLookups) and not is_pending(registry):
        return
    registry.__class__ = _lazy_class(type(registry))
    setattr(registry, _LOADER_ATTR, loader)


def install(loader: Callable[[], None]) -> None:
    """:func:`make_lazy` on basicsr's five registries (basicsr must be imported)."""
    import basicsr.utils.registry as registry_module

    for name in REGISTRY_NAMES:
        make_lazy(getattr(registry_module, name), loader)


def is_pending(registry) -> bool:
    """Whether ``registry`` still holds a loader that has not run."""
    return _LOADER_ATTR in vars(registry)
