"""Install metadata: torch as a range (a user's CUDA build is kept), the lmdb pin, the declared licence present."""
from __future__ import annotations

import ast

import pytest

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


def test_an_install_without_the_repository_uses_the_working_directory_and_says_so(tmp_path, monkeypatch):
    from ssr.utils import paths
    from ssr.utils.checkpoint import safe_torch_load

    site = tmp_path / 'site-packages'
    (site / 'ssr').mkdir(parents=True)  # the package alone: no options/ or weights/ beside it
    work = tmp_path / 'work'
    work.mkdir()
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    monkeypatch.setattr(paths, '_package_parent', lambda: site)
    monkeypatch.chdir(work)
    assert paths.repo_root() == work.resolve()
    with pytest.raises(FileNotFoundError, match='set SSR_ROOT=<your ssr clone>'):
        safe_torch_load('weights/missing.pth')
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    assert paths.repo_root() == tmp_path.resolve() and paths.root_hint() == ''


def test_a_clone_is_its_own_root():
    from ssr.utils import paths

    assert paths.is_clone(paths._package_parent()) and paths.repo_root() == paths._package_parent()
