"""scripts/create_lmdb.py and ssr.data.basicsr_lmdb: BasicSR round trip, keys with dots, 16-bit depth, no partial
output, overwrite policy."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

import ssr  # noqa: F401  (compatibility fixes before basicsr is imported)
from basicsr.data.data_util import paths_from_lmdb
from basicsr.utils import FileClient
from ssr.data.basicsr_lmdb import create_lmdb, depth_to_uint16
from ssr.data.image_source import lmdb_keys
from tests.conftest import load_script, photo

script = load_script('create_lmdb')


def lmdb_get(folder: Path, key: str) -> np.ndarray:
    """Decode the value of ``key`` as BasicSR's LMDB datasets fetch it."""
    client = FileClient('lmdb', db_paths=[str(folder)], client_keys=['gt'])
    buf = client.get(key, 'gt')
    assert buf is not None, f'{key!r} missing from {folder}'
    return cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Keys: ``0001.s001`` (dotted), ``astronaut_s001``, ``sub/chelsea``."""
    folder = tmp_path / 'imgs'
    (folder / 'sub').mkdir(parents=True)
    cv2.imwrite(str(folder / '0001.s001.png'), photo('coffee', 24))
    cv2.imwrite(str(folder / 'astronaut_s001.png'), photo('astronaut', 32))
    cv2.imwrite(str(folder / 'sub' / 'chelsea.png'), photo('chelsea', 16))
    return folder


def test_round_trip_through_basicsr_file_client(image_dir, tmp_path):
    out = tmp_path / 'gt.lmdb'
    assert create_lmdb(image_dir, out) == 3
    keys = lmdb_keys(out)
    assert keys == ['0001.s001', 'astronaut_s001', 'sub/chelsea']
    for key in keys:
        np.testing.assert_array_equal(lmdb_get(out, key), cv2.imread(str(image_dir / f'{key}.png')))
    assert not (tmp_path / 'gt.lmdb.tmp').exists()


def test_meta_info_lines(image_dir, tmp_path):
    out = tmp_path / 'gt.lmdb'
    create_lmdb(image_dir, out, compression=3)
    assert (out / 'meta_info.txt').read_text().splitlines() == [
        '0001.s001.png (24,24,3) 3', 'astronaut_s001.png (32,32,3) 3', 'sub/chelsea.png (16,16,3) 3']


def test_paths_from_lmdb_reads_dot_free_keys(image_dir, tmp_path):
    (image_dir / '0001.s001.png').unlink()
    out = tmp_path / 'gt.lmdb'
    create_lmdb(image_dir, out)
    assert paths_from_lmdb(str(out)) == lmdb_keys(out) == ['astronaut_s001', 'sub/chelsea']


def test_paths_from_lmdb_keeps_dotted_keys(image_dir, tmp_path):
    out = tmp_path / 'gt.lmdb'
    create_lmdb(image_dir, out)
    assert paths_from_lmdb(str(out)) == lmdb_keys(out)


def test_grayscale_and_16bit_images_are_stored_unchanged(tmp_path):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    gray16 = cv2.cvtColor(photo('rocket', 16), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    cv2.imwrite(str(folder / 'g.png'), gray16)
    create_lmdb(folder, tmp_path / 'x.lmdb')
    assert (tmp_path / 'x.lmdb' / 'meta_info.txt').read_text() == 'g.png (16,16,1) 1\n'
    np.testing.assert_array_equal(lmdb_get(tmp_path / 'x.lmdb', 'g'), gray16)


def test_depth_npy_round_trip_within_one_level(tmp_path):
    folder = tmp_path / 'depth'
    folder.mkdir()
    rng = np.random.default_rng(0)
    depth = rng.random((20, 30)).astype(np.float32)
    depth[0, :2] = [0.0, 1.0]
    np.save(folder / 'a.npy', depth)
    create_lmdb(folder, tmp_path / 'd.lmdb', depth=True)
    stored = lmdb_get(tmp_path / 'd.lmdb', 'a')
    assert stored.dtype == np.uint16 and stored.shape == (20, 30)
    assert stored[0, 0] == 0 and stored[0, 1] == 65535
    assert np.abs(stored / 65535.0 - depth).max() <= 1 / 65535


@pytest.mark.parametrize('stored, expected', [
    (np.arange(0, 65535, 97, dtype=np.uint16)[:600].reshape(20, 30), None),  # kept bit-exactly
    (np.arange(600, dtype=np.uint16).reshape(20, 30).astype(np.uint8), 'x257'),
], ids=['png16', 'png8'])
def test_depth_png_inputs(tmp_path, stored, expected):
    folder = tmp_path / 'depth'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), stored)
    create_lmdb(folder, tmp_path / 'd.lmdb', depth=True)
    want = stored.astype(np.uint16) * 257 if expected == 'x257' else stored
    np.testing.assert_array_equal(lmdb_get(tmp_path / 'd.lmdb', 'a'), want)


@pytest.mark.parametrize('depth, match', [
    # value range
    (np.full((4, 4), 1.5, np.float32), r'finite and in \[0, 1\]'),
    (np.full((4, 4), -0.1, np.float32), r'finite and in \[0, 1\]'),
    (np.full((4, 4), np.nan, np.float32), r'finite and in \[0, 1\]'),
    # layout and type
    (np.zeros((4, 4, 3), np.uint16), r'single-channel \(H, W\), got shape \(4, 4, 3\)'),
    (np.zeros((4, 4), np.int32), 'depth dtype int32'),
], ids=['above-1', 'negative', 'nan', 'three-channels', 'int32'])
def test_bad_depth(depth, match):
    with pytest.raises(ValueError, match=match):
        depth_to_uint16(depth, 'x.npy')


def _garbage(path: Path) -> None:
    path.write_bytes(b'\x00 definitely not a PNG')


def _truncated(path: Path) -> None:  # a valid header, so only decoding fails (after earlier entries were put)
    ok, buf = cv2.imencode('.png', photo('hubble_deep_field', 32))
    path.write_bytes(buf.tobytes()[:200])


@pytest.mark.parametrize('corrupt', [_garbage, _truncated], ids=['garbage', 'truncated'])
def test_corrupt_input_exits_1_and_leaves_nothing(image_dir, tmp_path, caplog, corrupt):
    bad = image_dir / 'zz_bad.png'
    corrupt(bad)
    out = tmp_path / 'gt.lmdb'
    with caplog.at_level(logging.ERROR):
        assert script.main(['-i', str(image_dir), '-o', str(out), '--quiet']) == 1
    assert str(bad) in caplog.text
    assert not out.exists() and not (tmp_path / 'gt.lmdb.tmp').exists()


def test_refuses_to_overwrite(image_dir, tmp_path, caplog):
    out = tmp_path / 'gt.lmdb'
    out.mkdir()
    (out / 'stale').write_text('x')
    args = ['-i', str(image_dir), '-o', str(out), '--quiet']
    with caplog.at_level(logging.ERROR):
        assert script.main(args) == 1
    assert 'pass --overwrite' in caplog.text and (out / 'stale').exists()
    assert script.main(args + ['--overwrite']) == 0
    assert not (out / 'stale').exists() and len(lmdb_keys(out)) == 3


@pytest.mark.parametrize('name, match', [
    ('with space.png', 'ASCII without whitespace'),
    ('caf\u00e9.png', 'ASCII without whitespace'),
    ('astronaut_s001.jpg', "same key 'astronaut_s001'"),
], ids=['space', 'non-ascii', 'duplicate-key'])
def test_bad_keys(image_dir, tmp_path, name, match):
    cv2.imwrite(str(image_dir / 'tmp.png'), photo('astronaut', 8))
    (image_dir / 'tmp.png').rename(image_dir / name)
    with pytest.raises(ValueError, match=match):
        create_lmdb(image_dir, tmp_path / 'gt.lmdb')


def test_output_must_end_with_lmdb(image_dir, tmp_path):
    with pytest.raises(ValueError, match='must end with .lmdb'):
        create_lmdb(image_dir, tmp_path / 'gt')


@pytest.mark.parametrize('args', [['-i', 'imgs', '-o', 'gt'], ['-i', 'imgs', '-o', 'gt.lmdb', '--compression', '10']],
                         ids=['no-lmdb-suffix', 'compression10'])
def test_cli_misuse_exits_2(args):
    with pytest.raises(SystemExit) as exc:
        script.main(args)
    assert exc.value.code == 2
