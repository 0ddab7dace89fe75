"""The module index the lazy registries use matches what ssr's modules really register; lookups import one module."""
from __future__ import annotations

import importlib

import pytest

from ssr.compat.registry_index import REGISTRY_NAMES, registering_modules, registry_index
from tests.test_compat.subprocess_utils import run_fresh


@pytest.mark.parametrize('registry_name', REGISTRY_NAMES)
def test_index_equals_the_registrations_of_ssr_modules(registry_name):
    import basicsr.utils.registry as registry_module

    import ssr.compat

    ssr.compat.register()
    registry = getattr(registry_module, registry_name)
    registered = {name: obj.__module__ for name, obj in registry if obj.__module__.startswith('ssr.')}
    assert registered == registry_index()[registry_name]
    assert registered, f'ssr registers nothing in {registry_name}'


def test_registering_modules_all_import_and_cover_every_package():
    modules = registering_modules()
    assert {m.split('.')[1] for m in modules} == {'archs', 'data', 'losses', 'metrics', 'models'}
    for module in modules:
        importlib.import_module(module)


def test_blind_path_lookups_import_neither_diffusers_nor_timm():
    out = run_fresh('''
        import json, sys
        import ssr
        from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
        found = ['SSRModel' in MODEL_REGISTRY, 'AMFUNet' in ARCH_REGISTRY]  # answered from the index
        ARCH_REGISTRY.get('DKENet'), ARCH_REGISTRY.get('NBSR'), MODEL_REGISTRY.get('BlindSRModel')
        DATASET_REGISTRY.get('SVDegradationDataset')
        heavy = sorted({m.split('.')[0] for m in sys.modules} & {'diffusers', 'timm'})
        print(json.dumps({'found': found, 'heavy': heavy}))
    ''')
    assert out == {'found': [True, True], 'heavy': []}


def test_ssr_model_lookup_imports_diffusers_and_an_unknown_name_lists_everything():
    out = run_fresh('''
        import json, sys
        import ssr
        from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY
        MODEL_REGISTRY.get('SSRModel')
        diffusers = 'diffusers' in sys.modules
        try:
            ARCH_REGISTRY.get('NoSuchNet')
        except KeyError as exc:
            message = str(exc)
        print(json.dumps({'diffusers': diffusers, 'lists_midas': 'MiDaSDepth' in message or 'timm' in sys.modules}))
    ''')
    assert out == {'diffusers': True, 'lists_midas': True}
