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


def test_get_imports_only_the_indexed_module(tmp_path, monkeypatch):
    import sys

    for name in ('a', 'b'):
        (tmp_path / f'plugin_{name}.py').write_text(
            'from tests.test_compat.test_lazy_registry import REGISTRY_UNDER_TEST as R\n'
            f'class Thing{name.upper()}:\n    pass\nR.register(Thing{name.upper()})\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    from basicsr.utils.registry import Registry

    calls = []
    registry = Registry('test')
    make_lazy(registry, lambda: calls.append(1), {'ThingA': 'plugin_a', 'ThingB': 'plugin_b'})
    global REGISTRY_UNDER_TEST
    REGISTRY_UNDER_TEST = registry
    try:
        assert 'ThingB' in registry and 'plugin_b' not in sys.modules  # `in` answers from the index
        assert registry.get('ThingA').__name__ == 'ThingA'
        assert 'plugin_a' in sys.modules and 'plugin_b' not in sys.modules
        assert calls == [] and is_pending(registry)
    finally:
        for name in ('plugin_a', 'plugin_b'):
            sys.modules.pop(name, None)


REGISTRY_UNDER_TEST = None
