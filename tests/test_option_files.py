"""Every option file under options/ (and options/ablation/) loads and validates, and has a tiny twin at the same
place under tests/data/."""
from __future__ import annotations

from pathlib import Path

import pytest

from ssr.utils.options import load_options, load_yaml
from tests.conftest import REPO

OPTIONS = REPO / 'options'
OPTION_DIRS = ('.', 'ablation')  # the recipes, and the paper's ablations (Table 2); not _base_/ nor lite_variants/
OPTION_FILES = sorted(p for folder in OPTION_DIRS for p in (OPTIONS / folder).glob('*.yml'))
IDS = [str(p.relative_to(OPTIONS)) for p in OPTION_FILES]


def _is_train(path: Path) -> bool:
    return path.name.startswith('train_')


def test_there_are_option_files():
    assert OPTION_FILES


@pytest.mark.parametrize('path', OPTION_FILES, ids=IDS)
def test_option_file_validates(path, tmp_path):
    opt = load_options(path, is_train=_is_train(path), root=tmp_path)
    assert opt['name'] and opt['model_type']


@pytest.mark.parametrize('path', OPTION_FILES, ids=IDS)
def test_option_file_has_a_tiny_twin(path, tmp_path):
    twin = REPO / 'tests' / 'data' / path.relative_to(OPTIONS)
    assert twin.is_file(), f'{path.relative_to(OPTIONS)} has no tiny twin under tests/data/'
    assert load_yaml(twin)['model_type'] == load_yaml(path)['model_type']
    load_options(twin, is_train=_is_train(path), root=tmp_path)


# measurement recipes composed of twinned files (the depth study, Table 1 on a GPU): they load and validate
DERIVED = sorted(p for folder in ('depth_study', 'table1') for p in (OPTIONS / folder).glob('*.yml'))


@pytest.mark.parametrize('path', DERIVED, ids=[str(p.relative_to(OPTIONS)) for p in DERIVED])
def test_measurement_option_file_validates(path, tmp_path):
    opt = load_options(path, is_train=False, root=tmp_path)
    assert opt['name'] and opt['datasets']
