"""ssr.data.mmsr_lmdb: the MMSR (MANet / DCLS) LMDB layout, written and read back, and its error messages."""
from __future__ import annotations

import collections
import pickle
from pathlib import Path

import lmdb
import numpy as np
import pytest

from ssr.data.mmsr_lmdb import MMSRLmdbReader, read_meta_info, write_mmsr_lmdb
from tests.conftest import photo


def raw_mmsr_folder(folder: Path, values: dict[str, bytes], meta: object) -> Path:
    """An MMSR folder written by hand: raw values and an arbitrary ``meta_info.pkl``."""
    env = lmdb.open(str(folder), map_size=1 << 22)
    with env.begin(write=True) as txn:
        for key, value in values.items():
            txn.put(key.encode('ascii'), value)
    env.close()
    (folder / 'meta_info.pkl').write_bytes(pickle.dumps(meta))
    return folder


@pytest.fixture
def images() -> dict[str, np.ndarray]:
    return {'0801_s001': photo('astronaut', 24), 'baby': photo('chelsea', 24)}


@pytest.mark.parametrize('per_key, stored_resolution', [(False, ['3_24_24']), (True, ['3_24_24', '3_24_24'])],
                         ids=['shared', 'per-key'])
def test_write_then_read(tmp_path, images, per_key, stored_resolution):
    folder = tmp_path / 'Set5_x4'
    write_mmsr_lmdb(folder, images, per_key_resolution=per_key)
    meta = pickle.loads((folder / 'meta_info.pkl').read_bytes())
    assert meta == {'name': 'Set5_x4', 'keys': ['0801_s001', 'baby'], 'resolution': stored_resolution}
    reader = MMSRLmdbReader(folder)
    assert reader.keys == ['0801_s001', 'baby'] and len(reader) == 2 and 'baby' in reader
    for key, img in images.items():
        np.testing.assert_array_equal(reader.read(key), img)


def test_mixed_sizes_get_one_resolution_per_key(tmp_path):
    images = {'a': photo('coffee', 16), 'b': photo('rocket', 8)[..., :1]}
    write_mmsr_lmdb(tmp_path / 'mixed', images)
    reader = MMSRLmdbReader(tmp_path / 'mixed')
    assert read_meta_info(tmp_path / 'mixed').shapes == {'a': (16, 16, 3), 'b': (8, 8, 1)}
    np.testing.assert_array_equal(reader.read('b'), images['b'])


def test_value_layout_is_raw_hwc_uint8(tmp_path):
    """Values written by hand (as MMSR's create_lmdb.py does) decode with np.frombuffer(...).reshape(H, W, C)."""
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    folder = raw_mmsr_folder(tmp_path / 'raw', {'k': img.tobytes()}, {'name': 'x', 'keys': ['k'],
                                                                         'resolution': '3_2_3'})
    np.testing.assert_array_equal(MMSRLmdbReader(folder).read('k'), img)


def test_reader_survives_pickling_after_a_read(tmp_path, images):
    write_mmsr_lmdb(tmp_path / 'db', images)
    reader = MMSRLmdbReader(tmp_path / 'db')
    reader.read('baby')
    clone = pickle.loads(pickle.dumps(reader))  # what a DataLoader worker receives
    np.testing.assert_array_equal(clone.read('baby'), images['baby'])
    reader.close()


def test_missing_meta_info(tmp_path, images):
    write_mmsr_lmdb(tmp_path / 'db', images)
    (tmp_path / 'db' / 'meta_info.pkl').unlink()
    with pytest.raises(FileNotFoundError, match=r'db is not an MMSR LMDB: meta_info\.pkl is missing'):
        MMSRLmdbReader(tmp_path / 'db')


def test_missing_data_mdb(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='empty is not an LMDB folder: data.mdb is missing'):
        MMSRLmdbReader(tmp_path / 'empty')


class _Evil:
    def __reduce__(self):
        return (print, ('executed',))


@pytest.mark.parametrize('meta, match', [
    # not plain data: a global would be resolved on load
    (_Evil(), 'global builtins.print is not allowed'),
    (collections.OrderedDict(keys=['k'], resolution=['3_2_2']), 'global collections.OrderedDict is not allowed'),
    # wrong structure
    (['k'], 'expected a dict, got list'),
    ({'keys': ['k'], 'resolution': ['3_2_2'], 'extra': 3}, "entry 'extra' must be a string or a list of strings"),
    ({'keys': [1], 'resolution': ['3_2_2']}, "entry 'keys' must be a string or a list of strings"),
    ({'keys': 'k', 'resolution': ['3_2_2']}, 'keys must be a non-empty list of strings'),
    ({'keys': [], 'resolution': ['3_2_2']}, 'keys must be a non-empty list of strings'),
    ({'keys': ['k', 'k'], 'resolution': ['3_2_2']}, 'keys must be unique ASCII strings'),
    ({'resolution': ['3_2_2']}, "missing entry 'keys'"),
    ({'keys': ['k']}, "missing entry 'resolution'"),
    # bad resolutions
    ({'keys': ['k'], 'resolution': ['3x2x2']}, "resolution '3x2x2' is not of the form C_H_W"),
    ({'keys': ['k'], 'resolution': ['3_0_2']}, "resolution '3_0_2' is not of the form C_H_W"),
    ({'keys': ['a', 'b', 'c'], 'resolution': ['3_2_2'] * 2}, '2 resolutions for 3 keys'),
], ids=['reduce-global', 'ordered-dict', 'list', 'extra-int', 'int-key', 'keys-str', 'keys-empty', 'keys-dup',
        'no-keys', 'no-resolution', 'resolution-x', 'resolution-zero', 'resolution-count'])
def test_bad_meta_info(tmp_path, meta, match):
    folder = raw_mmsr_folder(tmp_path / 'db', {'k': bytes(12)}, meta)
    with pytest.raises(ValueError, match=match) as exc:
        MMSRLmdbReader(folder)
    assert 'db' in str(exc.value)


def test_truncated_pickle(tmp_path):
    folder = raw_mmsr_folder(tmp_path / 'db', {'k': bytes(12)}, {'keys': ['k'], 'resolution': ['3_2_2']})
    (folder / 'meta_info.pkl').write_bytes((folder / 'meta_info.pkl').read_bytes()[:10])
    with pytest.raises(ValueError, match='not a plain meta_info pickle'):
        MMSRLmdbReader(folder)


def test_unknown_key(tmp_path, images):
    write_mmsr_lmdb(tmp_path / 'db', images)
    with pytest.raises(KeyError, match=r"'nope' is not a key of .*db \(2 keys in meta_info\.pkl\)"):
        MMSRLmdbReader(tmp_path / 'db').read('nope')


def test_key_listed_but_absent_from_data(tmp_path):
    folder = raw_mmsr_folder(tmp_path / 'db', {'k': bytes(12)}, {'keys': ['k', 'gone'], 'resolution': ['3_2_2']})
    with pytest.raises(KeyError, match="'gone' is listed in .*meta_info.pkl but missing from its data.mdb"):
        MMSRLmdbReader(folder).read('gone')


def test_value_size_disagrees_with_resolution(tmp_path):
    folder = raw_mmsr_folder(tmp_path / 'db', {'k': bytes(10)}, {'keys': ['k'], 'resolution': ['3_2_2']})
    with pytest.raises(ValueError, match="value of 'k' has 10 bytes, its resolution 3_2_2 needs 12"):
        MMSRLmdbReader(folder).read('k')


@pytest.mark.parametrize('images, match', [
    ({}, 'images is empty'),
    ({'caf\u00e9': np.zeros((2, 2, 3), np.uint8)}, 'must be an ASCII string'),
    ({'k': np.zeros((2, 2, 3), np.float32)}, r'must be uint8 \(H, W\) or \(H, W, C\), got float32'),
], ids=['empty', 'non-ascii', 'float'])
def test_write_bad_input(tmp_path, images, match):
    with pytest.raises(ValueError, match=match):
        write_mmsr_lmdb(tmp_path / 'db', images)
    assert not (tmp_path / 'db').exists()


def test_write_refuses_to_overwrite(tmp_path, images):
    write_mmsr_lmdb(tmp_path / 'db', images)
    with pytest.raises(FileExistsError, match='pass overwrite=True'):
        write_mmsr_lmdb(tmp_path / 'db', images)
    write_mmsr_lmdb(tmp_path / 'db', {'only': images['baby']}, overwrite=True)
    assert MMSRLmdbReader(tmp_path / 'db').keys == ['only']
