"""``import ssr`` only runs ssr.compat.apply(): light imports, fixes when basicsr is imported, its BaseModel intact."""
from __future__ import annotations

import pytest

from tests.test_compat.subprocess_utils import run_fresh

# the ground floor imports torch / numpy / cv2 only; these must stay out of `import ssr.ops`
HEAVY = ('basicsr', 'diffusers', 'timm', 'torchvision')
BASE_MODEL_METHODS = ('get_optimizer', 'model_to_device', 'save_network', 'save_training_state', 'resume_training',
                      'load_network')


def test_import_ssr_ops_loads_no_heavy_package_and_is_fast():
    # torch / numpy / cv2 are imported first and timed apart: the bound is on what ssr adds (torch alone takes
    # about a second on a loaded machine)
    out = run_fresh(f'''
        import json, sys, time
        import cv2, numpy, torch
        start = time.perf_counter()
        import ssr.ops
        seconds = time.perf_counter() - start
        heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)})
        print(json.dumps({{'seconds': seconds, 'heavy': heavy}}))
    ''')
    assert out['heavy'] == []
    assert out['seconds'] < 2


def test_import_ssr_then_registry_lookup_finds_ssr_names():
    out = run_fresh('''
        import json, sys
        import ssr
        from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY
        before = 'ssr.archs' in sys.modules
        arch = ARCH_REGISTRY.get('DKENet')
        print(json.dumps({'before': before, 'arch': arch.__module__, 'model': 'SVSRModel' in MODEL_REGISTRY}))
    ''')
    assert out == {'before': False, 'arch': 'ssr.archs.dkenet_arch', 'model': True}


def test_basicsr_imported_before_ssr_is_fixed_at_once():
    # basicsr 1.4.2 only imports with a functional_tensor module: another plug-in's alias stands in for ssr's here
    out = run_fresh('''
        import json, sys, types
        import torchvision.transforms.functional as tf
        alias = types.ModuleType('torchvision.transforms.functional_tensor')
        alias.rgb_to_grayscale = tf.rgb_to_grayscale
        sys.modules[alias.__name__] = alias
        import basicsr.train
        import ssr
        from basicsr.utils.registry import ARCH_REGISTRY
        print(json.dumps([basicsr.train.load_resume_state.__module__, 'NBSR' in ARCH_REGISTRY]))
    ''')
    assert out == ['ssr.compat.train_pipeline', True]


def test_compat_modules_import_no_basicsr_and_still_fix_it_later():
    """Importing a fix module first must not import basicsr (whose hook would then find it half-initialised)."""
    out = run_fresh('''
        import json, sys
        from ssr.compat import _import_hooks, lazy_registry, lmdb_paths, torchvision_alias
        from ssr.compat.train_pipeline import ResumableEnlargedSampler, load_resume_state
        before = 'basicsr' in sys.modules
        import basicsr.train
        print(json.dumps([before, basicsr.train.load_resume_state is load_resume_state,
                          basicsr.train.EnlargedSampler is ResumableEnlargedSampler]))
    ''')
    assert out == [False, True, True]


def test_basicsr_base_model_keeps_its_own_methods():
    out = run_fresh(f'''
        import json, os
        import ssr
        import basicsr
        from basicsr.models.base_model import BaseModel
        from basicsr.utils.registry import MODEL_REGISTRY
        MODEL_REGISTRY.get('SSRModel')  # every ssr model module imported
        root = os.path.dirname(basicsr.__file__)
        print(json.dumps({{name: [getattr(BaseModel, name).__module__,
                                  getattr(BaseModel, name).__code__.co_filename.startswith(root)]
                           for name in {BASE_MODEL_METHODS}}}))
    ''')
    assert out == {name: ['basicsr.models.base_model', True] for name in BASE_MODEL_METHODS}


@pytest.mark.parametrize('name', BASE_MODEL_METHODS)
def test_ssr_models_override_what_basicsr_base_model_lacks(name):
    from basicsr.models.base_model import BaseModel

    from ssr.models.base_model import SVBaseModel

    assert vars(BaseModel)[name].__module__ == 'basicsr.models.base_model'
    assert getattr(SVBaseModel, name) is vars(SVBaseModel)[name]


def test_apply_and_register_are_idempotent():
    import sys

    import ssr.compat
    from ssr.compat.registry_index import REGISTERING_PACKAGES
    from ssr.compat.torchvision_alias import FunctionalTensorFinder

    ssr.compat.apply()
    ssr.compat.register()
    ssr.compat.register()
    assert sum(isinstance(f, FunctionalTensorFinder) for f in sys.meta_path) == 1
    assert all(f'ssr.{name}' in sys.modules for name in REGISTERING_PACKAGES)
