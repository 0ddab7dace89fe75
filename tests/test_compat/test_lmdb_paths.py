"""basicsr's LMDB path helpers keep dots inside keys, in every basicsr module that imported them."""
from __future__ import annotations

import pytest

from ssr.compat import lmdb_paths


def _lmdb(folder, keys):
    folder.mkdir()
    (folder / 'meta_info.txt').write_text(''.join(f'{k}.png (8,8,3) 1\n' for k in keys))
    return str(folder)


@pytest.mark.parametrize('module,name', [('basicsr.data.data_util', 'paths_from_lmdb'),
                                         ('basicsr.data.data_util', 'paired_paths_from_lmdb'),
                                         ('basicsr.data.single_image_dataset', 'paths_from_lmdb'),
                                         ('basicsr.data.paired_image_dataset', 'paired_paths_from_lmdb'),
                                         ('basicsr.data.realesrgan_paired_dataset', 'paired_paths_from_lmdb')])
def test_rebound_in_every_basicsr_module(module, name):
    import importlib

    assert getattr(importlib.import_module(module), name) is getattr(lmdb_paths, name)


def test_keys_keep_their_dots(tmp_path):
    from basicsr.data.data_util import paired_paths_from_lmdb, paths_from_lmdb

    lq, gt = _lmdb(tmp_path / 'lq.lmdb', ['0001.s001', '0002']), _lmdb(tmp_path / 'gt.lmdb', ['0002', '0001.s001'])
    assert paths_from_lmdb(lq) == ['0001.s001', '0002']
    assert paired_paths_from_lmdb([lq, gt], ['lq', 'gt']) == [{'lq_path': '0001.s001', 'gt_path': '0001.s001'},
                                                              {'lq_path': '0002', 'gt_path': '0002'}]


def test_bad_folders(tmp_path):
    lq, gt = _lmdb(tmp_path / 'lq.lmdb', ['a']), _lmdb(tmp_path / 'gt.lmdb', ['b'])
    with pytest.raises(ValueError, match='should be in lmdb format'):
        lmdb_paths.paths_from_lmdb(str(tmp_path))
    with pytest.raises(ValueError, match='are different'):
        lmdb_paths.paired_paths_from_lmdb([lq, gt], ['lq', 'gt'])
