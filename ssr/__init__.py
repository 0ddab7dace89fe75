"""ssr: depth-informed, spatially variant blind super-resolution (SSR) as a BasicSR plugin.

``import ssr`` runs :func:`ssr.compat.apply` and nothing else: it imports neither basicsr nor diffusers, so
``import ssr.ops`` stays light. BasicSR's registries still hold ssr's archs, datasets, models, losses and metrics
whenever they are queried after ``import ssr`` (``build_network``, ``build_model``, ``'DKENet' in ARCH_REGISTRY``,
...): the first lookup imports the registering sub-packages (:func:`ssr.compat.register`).
"""
import importlib

from ssr import compat

compat.apply()

__version__ = '0.1.0'

_SUBPACKAGES = ('archs', 'compat', 'data', 'losses', 'metrics', 'models', 'ops', 'utils')


def __getattr__(name: str):
    # ``import ssr; ssr.archs.X`` worked when ssr imported its sub-packages eagerly; keep it working, lazily
    if name in _SUBPACKAGES:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
