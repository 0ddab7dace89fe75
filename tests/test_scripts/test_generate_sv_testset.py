"""scripts/generate_sv_testset.py: layout, determinism per image, modes, refusal to overwrite, no partial output."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tests.conftest import load_script, photo

script = load_script('generate_sv_testset')


def generate(argv: list[str]) -> int:
    return script.main(argv)


@pytest.fixture()
def hr(tmp_path):
    folder = tmp_path / 'hr'
    folder.mkdir()
    for name in ('astronaut', 'chelsea'):
        cv2.imwrite(str(folder / f'{name}.png'), photo(name, 40))
    return folder


def test_layout_and_protocol(hr, tmp_path):
    out = tmp_path / 'set'
    assert generate(['-i', str(hr), '-o', str(out), '--kernel-size', '9', '--noise', '5', '--jpeg', '80',
                     '--quiet']) == 0
    for sub, ext in (('HR', '.png'), ('LR', '.png'), ('kernel', '.npz'), ('depth', '.png')):
        assert sorted(p.name for p in (out / sub).iterdir()) == [f'astronaut{ext}', f'chelsea{ext}']
    protocol = json.loads((out / 'protocol.json').read_text())
    assert protocol['mode'] == 'sv_depth' and protocol['scale'] == 4
    info = protocol['images']['chelsea']
    assert info['lr_size'] == [10, 10] and info['jpeg_quality'] == 80
    assert info['noise_level'] == pytest.approx(5 / 255)
    with np.load(out / 'kernel' / 'chelsea.npz') as f:
        assert f['kernel'].dtype == np.float16 and f['kernel'].shape == (81, 10, 10)
    assert cv2.imread(str(out / 'depth' / 'chelsea.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_deterministic_per_image(hr, tmp_path):
    generate(['-i', str(hr), '-o', str(tmp_path / 'a'), '--kernel-size', '9', '--quiet'])
    (hr / 'astronaut.png').unlink()  # the other image's degradation must not depend on this one
    generate(['-i', str(hr), '-o', str(tmp_path / 'b'), '--kernel-size', '9', '--quiet'])
    for sub in ('LR/chelsea.png', 'depth/chelsea.png'):
        assert (tmp_path / 'a' / sub).read_bytes() == (tmp_path / 'b' / sub).read_bytes(), sub


@pytest.mark.parametrize('mode', ['gaussian8', 'aniso', 'sv_random', 'sv_depth'])
def test_modes(hr, tmp_path, mode):
    out = tmp_path / mode
    assert generate(['-i', str(hr), '-o', str(out), '--mode', mode, '--kernel-size', '9', '--quiet']) == 0
    with np.load(out / 'kernel' / 'astronaut.npz') as f:
        field = f['kernel'].astype(np.float32)
    spatially_variant = not np.allclose(field, field[:, :1, :1], atol=1e-3)
    assert spatially_variant == mode.startswith('sv_')


def test_refuses_to_overwrite(hr, tmp_path, caplog):
    out = tmp_path / 'set'
    out.mkdir()
    assert generate(['-i', str(hr), '-o', str(out), '--quiet']) == 1
    assert 'pass --overwrite' in caplog.text


def test_corrupt_input_leaves_nothing(hr, tmp_path, caplog):
    (hr / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    out = tmp_path / 'set'
    assert generate(['-i', str(hr), '-o', str(out), '--quiet']) == 1
    assert 'broken.png' in caplog.text
    assert not out.exists() and not list(tmp_path.glob('.set*'))


def test_missing_input_folder(tmp_path, caplog):
    assert generate(['-i', str(tmp_path / 'none'), '-o', str(tmp_path / 'o'), '--quiet']) == 1
    assert 'does not exist' in caplog.text


def test_layered_depth_mode(hr, tmp_path):
    out = tmp_path / 'layered'
    assert generate(['-i', str(hr), '-o', str(out), '--mode', 'layered_depth', '--kernel-size', '9', '--quiet']) == 0
    protocol = json.loads((out / 'protocol.json').read_text())
    assert protocol['depth'] == 'layered' and protocol['images']['chelsea']['kernel_family'] == 'layered'
    composite = cv2.imread(str(out / 'HR' / 'chelsea.png'))
    assert composite.shape == (40, 40, 3)
    depth = cv2.imread(str(out / 'depth' / 'chelsea.png'), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.min() == 0 and depth.max() == 65535
    again = tmp_path / 'again'
    assert generate(['-i', str(hr), '-o', str(again), '--mode', 'layered_depth', '--kernel-size', '9', '--quiet']) == 0
    assert (again / 'LR' / 'chelsea.png').read_bytes() == (out / 'LR' / 'chelsea.png').read_bytes()


def test_layered_depth_needs_two_images(tmp_path):
    folder = tmp_path / 'one'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), photo('astronaut', 40))
    out = tmp_path / 'set'
    assert generate(['-i', str(folder), '-o', str(out), '--mode', 'layered_depth', '--quiet']) != 0
    assert not out.exists() and not list(tmp_path.glob('.set*'))
