"""Which ssr module registers which name in which basicsr registry, read from the source without importing it.

ssr's archs, datasets, losses, metrics and models register with ``@<X>_REGISTRY.register()`` (or a call
``<X>_REGISTRY.register(obj)``). :func:`registry_index` parses the files of the registering packages
(:data:`REGISTERING_PACKAGES`) with :mod:`ast` (about 30 ms for the whole tree; nothing is imported) and returns,
per registry, ``{name: module}``. The lazy registries (:mod:`ssr.compat.lazy_registry`) use it to import only the
module that holds a looked-up name: building a DKENet imports ``ssr.archs.dkenet_arch``, not diffusers or timm.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

REGISTERING_PACKAGES = ('archs', 'data', 'losses', 'metrics', 'models')
REGISTRY_NAMES = ('ARCH_REGISTRY', 'DATASET_REGISTRY', 'LOSS_REGISTRY', 'METRIC_REGISTRY', 'MODEL_REGISTRY')

_SSR_DIR = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(_SSR_DIR.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _registry_of(node: ast.AST) -> str | None:
    """``X_REGISTRY`` for ``X_REGISTRY.register`` (a decorator or a call target), else None."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute) and node.attr == 'register' and isinstance(node.value, ast.Name):
        return node.value.id if node.value.id in REGISTRY_NAMES else None
    return None


def _registrations(tree: ast.Module):
    """(registry, name) for every class / function registered in a module's top level."""
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            for decorator in node.decorator_list:
                registry = _registry_of(decorator)
                if registry is not None:
                    yield registry, node.name
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            registry = _registry_of(node.value.func)
            args = node.value.args
            if registry is not None and args and isinstance(args[0], ast.Name):
                yield registry, args[0].id


@lru_cache(maxsize=1)
def registry_index() -> dict[str, dict[str, str]]:
    """``{registry name: {registered name: module}}`` for ssr's registering packages (cached)."""
    index: dict[str, dict[str, str]] = {name: {} for name in REGISTRY_NAMES}
    for package in REGISTERING_PACKAGES:
        for path in sorted((_SSR_DIR / package).glob('*.py')):
            tree = ast.parse(path.read_bytes(), filename=str(path))
            for registry, name in _registrations(tree):
                index[registry][name] = _module_name(path)
    return index


def registering_modules() -> list[str]:
    """Every module that registers something, in a stable order (what :func:`ssr.compat.register` imports)."""
    modules = {module for names in registry_index().values() for module in names.values()}
    return sorted(modules)
