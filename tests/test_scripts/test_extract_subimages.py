"""scripts/extract_subimages.py and ssr.data.subimages: window layout, pixel-exact sub-images, format conversion,
failures, CLI policy."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from ssr.data.subimages import extract_subimages, window_starts
from tests.conftest import load_script, photo

script = load_script('extract_subimages')


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.fixture
def hr_dir(tmp_path: Path) -> Path:
    folder = tmp_path / 'hr'
    folder.mkdir()
    cv2.imwrite(str(folder / 'astronaut.png'), photo('astronaut', 128))
    return folder


@pytest.mark.parametrize('length, crop, step, thresh, expected', [
    (1000, 480, 240, 0, [0, 240, 480, 520]),  # 40 px left after 480 + 480: one border-flush window
    (1000, 480, 240, 48, [0, 240, 480]),  # 40 px <= thresh: dropped, as in BasicSR
    (960, 480, 240, 0, [0, 240, 480]),  # exact fit
    (480, 480, 240, 0, [0]),
], ids=['remainder', 'remainder-below-thresh', 'exact', 'one-window'])
def test_window_starts(length, crop, step, thresh, expected):
    assert window_starts(length, crop, step, thresh) == [(s, crop) for s in expected]


def test_window_starts_short_axis_covers_whole_axis():
    assert window_starts(300, 480, 240, 0) == [(0, 300)]


def test_subimages_are_exact_crops_in_row_major_order(hr_dir, tmp_path):
    out = tmp_path / 'sub'
    result = extract_subimages(hr_dir, out, crop_size=64, step=32, workers=0)
    img = read(hr_dir / 'astronaut.png')
    names = sorted(p.name for p in out.iterdir())
    assert names == [f'astronaut_s{i:03d}.png' for i in range(1, 10)]
    assert result.counts == {str(hr_dir / 'astronaut.png'): 9} and not result.failed
    np.testing.assert_array_equal(read(out / 'astronaut_s002.png'), img[0:64, 32:96])
    np.testing.assert_array_equal(read(out / 'astronaut_s009.png'), img[64:128, 64:128])
    assert not (tmp_path / 'sub.tmp').exists()


@pytest.mark.parametrize('policy, expected_files', [('whole', ['astronaut_s001.png']), ('skip', [])],
                         ids=['whole', 'skip'])
def test_image_smaller_than_crop(hr_dir, tmp_path, caplog, policy, expected_files):
    out = tmp_path / 'sub'
    extract_subimages(hr_dir, out, crop_size=200, step=100, small_images=policy, workers=0)
    assert sorted(p.name for p in out.iterdir()) == expected_files
    if policy == 'whole':
        np.testing.assert_array_equal(read(out / 'astronaut_s001.png'), read(hr_dir / 'astronaut.png'))
    else:
        assert 'smaller than --crop-size 200' in caplog.text


def test_max_side_downscales_with_inter_area_first(hr_dir, tmp_path):
    out = tmp_path / 'sub'
    extract_subimages(hr_dir, out, crop_size=64, step=64, max_side=64, workers=0)
    expected = cv2.resize(read(hr_dir / 'astronaut.png'), (64, 64), interpolation=cv2.INTER_AREA)
    assert [p.name for p in out.iterdir()] == ['astronaut_s001.png']
    np.testing.assert_array_equal(read(out / 'astronaut_s001.png'), expected)


_BGR = photo('chelsea', 32)
_GRAY = cv2.cvtColor(_BGR, cv2.COLOR_BGR2GRAY)


@pytest.mark.parametrize('stored, expected', [
    (_GRAY, np.repeat(_GRAY[..., None], 3, axis=2)),
    (np.concatenate([_BGR, np.full_like(_BGR[..., :1], 7)], axis=2), _BGR),
    (_BGR.astype(np.uint16) * 257, _BGR),  # 16-bit v * 257 maps back to v exactly
    (_GRAY.astype(np.uint16) * 257, np.repeat(_GRAY[..., None], 3, axis=2)),
], ids=['gray8', 'bgra8', 'bgr16', 'gray16'])
def test_output_is_8bit_3channel_bgr(tmp_path, stored, expected):
    (tmp_path / 'hr').mkdir()
    cv2.imwrite(str(tmp_path / 'hr' / 'x.png'), stored)
    extract_subimages(tmp_path / 'hr', tmp_path / 'sub', crop_size=32, step=32, workers=0)
    out = read(tmp_path / 'sub' / 'x_s001.png')
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize('kwargs, match', [
    # window geometry
    (dict(crop_size=0), 'crop_size 0'),
    (dict(step=0), 'step 0'),
    (dict(thresh_size=-1), 'thresh_size -1'),
    # encoding and resizing
    (dict(compression=10), r'compression 10 not in 0\.\.9'),
    (dict(max_side=0), 'max_side 0'),
    # policies
    (dict(small_images='pad'), "small_images 'pad' not in"),
    (dict(workers=-1), 'workers -1'),
], ids=['crop0', 'step0', 'thresh-neg', 'compression10', 'max-side0', 'small-pad', 'workers-neg'])
def test_bad_settings(hr_dir, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        extract_subimages(hr_dir, tmp_path / 'sub', **kwargs)
    assert not (tmp_path / 'sub').exists()


def test_inputs_sharing_a_stem_are_refused(hr_dir, tmp_path):
    cv2.imwrite(str(hr_dir / 'astronaut.jpg'), photo('astronaut', 32))
    with pytest.raises(ValueError, match="share the stem 'astronaut'"):
        extract_subimages(hr_dir, tmp_path / 'sub', workers=0)


def test_cli_unreadable_file_is_reported_and_others_written(hr_dir, tmp_path, caplog):
    bad = hr_dir / 'broken.png'
    bad.write_bytes(b'not an image at all')
    out = tmp_path / 'sub'
    with caplog.at_level(logging.ERROR):
        rc = script.main(['-i', str(hr_dir), '-o', str(out), '--crop-size', '64', '--step', '64',
                           '--workers', '2', '--quiet'])
    assert rc == 1
    assert str(bad) in caplog.text
    assert sorted(p.name for p in out.iterdir()) == [f'astronaut_s{i:03d}.png' for i in range(1, 5)]


def test_cli_refuses_to_overwrite(hr_dir, tmp_path, caplog):
    out = tmp_path / 'sub'
    out.mkdir()
    (out / 'stale.png').write_bytes(b'')
    args = ['-i', str(hr_dir), '-o', str(out), '--crop-size', '128', '--workers', '0', '--quiet']
    with caplog.at_level(logging.ERROR):
        assert script.main(args) == 1
    assert 'pass --overwrite' in caplog.text and (out / 'stale.png').exists()
    assert script.main(args + ['--overwrite']) == 0
    assert [p.name for p in out.iterdir()] == ['astronaut_s001.png']


@pytest.mark.parametrize('args', [['-o', 'sub'], ['-i', 'hr', '-o', 'sub', '--crop-size', '0']],
                         ids=['no-input', 'crop0'])
def test_cli_misuse_exits_2(tmp_path, args):
    with pytest.raises(SystemExit) as exc:
        script.main(args)
    assert exc.value.code == 2
