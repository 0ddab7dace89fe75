"""basicsr registries import ssr's registering packages on their first lookup, and only then."""
from __future__ import annotations

import pytest

from ssr.compat.lazy_registry import REGISTRY_NAMES, LazyLookups, is_pending, make_lazy

LOOKUPS = {
    'get': lambda r: r.get('Thing'),
    'in': lambda r: 'Thing' in r,
    'keys': lambda r: list(r.keys()),
    'iter': lambda r: list(r),
}


class Thing:
    pass


def _lazy_registry(loader):
    from basicsr.utils.registry import Registry

    registry = Registry('test')
    make_lazy(registry, loader)
    return registry


@pytest.mark.parametrize('lookup', sorted(LOOKUPS))
def test_first_lookup_runs_the_loader_once(lookup):
    calls = []
    registry = _lazy_registry(lambda: (calls.append(1), registry.register(Thing)))
    LOOKUPS[lookup](registry)
    LOOKUPS[lookup](registry)
    assert calls == [1] and not is_pending(registry)
    assert registry.get('Thing') is Thing


def test_registering_does_not_run_the_loader():
    registry = _lazy_registry(lambda: pytest.fail('the loader ran on register()'))
    registry.register(Thing)
    assert is_pending(registry)


def test_a_failing_loader_stays_pending():
    calls = []

    def loader():
        calls.append(1)
        raise ImportError('broken plug-in')

    registry = _lazy_registry(loader)
    for _ in range(2):
        with pytest.raises(ImportError, match='broken plug-in'):
            'Thing' in registry  # noqa: B015
    assert calls == [1, 1] and is_pending(registry)


@pytest.mark.parametrize('name', REGISTRY_NAMES)
def test_basicsr_registries_are_lazy_subclasses_of_their_class(name):
    import basicsr.utils.registry as registry_module

    registry = getattr(registry_module, name)
    assert isinstance(registry, LazyLookups) and isinstance(registry, registry_module.Registry)
    assert len(list(registry)) > 0 and not is_pending(registry)
