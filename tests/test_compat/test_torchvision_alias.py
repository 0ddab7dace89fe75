"""``torchvision.transforms.functional_tensor`` is provided when missing, and the real module wins when present."""
from __future__ import annotations

from tests.test_compat.subprocess_utils import run_fresh


def test_functional_tensor_alias_lets_basicsr_import():
    out = run_fresh('''
        import json, sys
        import ssr, basicsr.data.degradations as d
        import torchvision.transforms.functional as tf
        import torchvision.transforms.functional_tensor as f
        print(json.dumps([f.rgb_to_grayscale is not None, f.rgb_to_grayscale is tf.rgb_to_grayscale,
                          type(sys.meta_path[-1]).__name__]))
    ''')
    assert out == [True, True, 'FunctionalTensorFinder']


def test_a_real_functional_tensor_module_wins(tmp_path):
    (tmp_path / 'functional_tensor.py').write_text('ORIGIN = "real"\n')
    out = run_fresh(f'''
        import json
        import ssr
        import torchvision.transforms
        torchvision.transforms.__path__.append({str(tmp_path)!r})  # as if torchvision still shipped the module
        import torchvision.transforms.functional_tensor as f
        print(json.dumps(getattr(f, 'ORIGIN', 'alias')))
    ''')
    assert out == 'real'
