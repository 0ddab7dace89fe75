"""Install metadata: torch as a range (a user's CUDA build is kept), the lmdb pin, the declared licence present."""
from __future__ import annotations

import ast

from tests.conftest import REPO


def requires() -> list[str]:
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'REQUIRES':
            return ast.literal_eval(node.value)
    raise AssertionError('setup.py has no REQUIRES list')


def test_torch_is_a_range_and_lmdb_is_pinned_below_2():
    reqs = {r.split('>')[0].split('<')[0].split('=')[0]: r for r in requires()}
    assert reqs['torch'].startswith('torch>=') and '==' not in reqs['torch']
    assert reqs['torchvision'].startswith('torchvision>=')
    assert '<2' in reqs['lmdb']
    for name in ('diffusers', 'timm', 'opencv-python', 'pyyaml', 'addict', 'matplotlib'):
        assert name in reqs


def test_the_declared_licence_is_shipped():
    assert "license='Apache-2.0'" in (REPO / 'setup.py').read_text()
    text = (REPO / 'LICENSE').read_text()
    assert text.lstrip().startswith('Apache License') and 'Version 2.0, January 2004' in text
