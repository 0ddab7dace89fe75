"""scripts/inference_ssr.py (and its engine ssr.tools.image_inference): odd and bad files in a folder, overwrite
policy, kernel / depth outputs, tiling."""
from __future__ import annotations

import logging
import os

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from ssr.pipelines.svkr import CONSTANT_DEPTH
from ssr.tools.image_inference import super_resolve_image
from ssr.utils.checkpoint import atomic_torch_save
from ssr.utils.options import load_yaml
from tests.conftest import REPO, load_script, photo, write_options

inference = load_script('inference_ssr')
TWIN = REPO / 'tests/data/test_blind_x4.yml'
SCALE = 4
GOOD = {'good.png': 'rgb8', 'photo.jpg': 'rgb8', 'gray.png': 'gray', 'rgba.png': 'rgba', 'deep.png': 'rgb16'}
BAD = ('corrupt.png', 'fake.png', 'tiny.png')  # notes.txt is not an image extension: ignored, not a failure


class _LogRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def text(self, level: int = logging.DEBUG) -> str:
        return '\n'.join(r.getMessage() for r in self.records if r.levelno >= level)


def _run_main(argv: list[str]) -> tuple[int, _LogRecords]:
    handler = _LogRecords()
    log = logging.getLogger('inference_ssr')
    log.addHandler(handler)
    try:
        return inference.main(argv), handler
    finally:
        log.removeHandler(handler)


@pytest.fixture(scope='module')
def tiny_opt(tmp_path_factory):
    """The tiny blind twin with seeded weights and ``svkr.depth: none`` (plain images carry no depth).

    NBSR's last convolution is scaled x8 and shifted by 0.5 so that the untrained network's output lies inside
    [0, 1] with some contrast (unchanged, it is slightly negative everywhere and clips to a black image, which would
    make any comparison of tiled and untiled outputs vacuous).
    """
    root = tmp_path_factory.mktemp('inference_model')
    merged = load_yaml(TWIN)
    paths = {}
    for key in ('network_e', 'network_g'):
        torch.manual_seed(0)
        net = ARCH_REGISTRY.get(merged[key]['type'])(**{k: v for k, v in merged[key].items() if k != 'type'})
        if key == 'network_g':
            with torch.no_grad():
                net.conv_last.weight.mul_(8)
                net.conv_last.bias.add_(0.5)
        atomic_torch_save({'params': net.state_dict()}, root / f'{key}.pth')
        paths[f'pretrain_{key}'] = str(root / f'{key}.pth')
    return write_options(root / 'tiny_blind.yml', {'_base_': str(TWIN), 'svkr': {'depth': 'none'}, 'path': paths})


@pytest.fixture(scope='module')
def model(tiny_opt):
    from ssr.tools.image_inference import load_pipeline

    return load_pipeline(tiny_opt, 'cpu')


def _write_inputs(folder):
    folder.mkdir()
    cv2.imwrite(str(folder / 'good.png'), photo('astronaut', 24))
    cv2.imwrite(str(folder / 'photo.jpg'), photo('coffee', 24), [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(folder / 'gray.png'), cv2.cvtColor(photo('chelsea', 24), cv2.COLOR_BGR2GRAY)[:20])
    rgba = cv2.cvtColor(photo('rocket', 24), cv2.COLOR_BGR2BGRA)
    rgba[:, :12, 3], rgba[:, 12:, 3] = 255, 0  # opaque left half, transparent right half
    cv2.imwrite(str(folder / 'rgba.png'), rgba)
    deep = photo('astronaut', 24).astype(np.uint16) * 257 + np.arange(24, dtype=np.uint16)[None, :, None]
    cv2.imwrite(str(folder / 'deep.png'), deep)
    ok, png = cv2.imencode('.png', photo('coffee', 24))
    (folder / 'corrupt.png').write_bytes(png.tobytes()[:60] + b'\x00' * 40)
    (folder / 'fake.png').write_text('not an image, only text\n')
    (folder / 'notes.txt').write_text('some notes\n')
    cv2.imwrite(str(folder / 'tiny.png'), np.full((1, 1, 3), 128, np.uint8))


@pytest.fixture(scope='module')
def folder_run(tmp_path_factory, tiny_opt):
    """One CLI run on a folder of good, odd and bad files: (exit code, log records, output folder)."""
    root = tmp_path_factory.mktemp('inference_folder')
    _write_inputs(root / 'in')
    code, log = _run_main(['-i', str(root / 'in'), '-o', str(root / 'out'), '--opt', str(tiny_opt), '--quiet'])
    return code, log, root / 'out'


# ----------------------------------------------------------------------------------------------------------------
# a folder of good, odd and bad files
def test_exit_code_counts_bad_images(folder_run):
    assert folder_run[0] == len(BAD)


def test_only_good_images_have_outputs(folder_run):
    out = folder_run[2]
    assert sorted(p.name for p in out.rglob('*')) == sorted(f'{name.rsplit(".", 1)[0]}_SR.png' for name in GOOD)


@pytest.mark.parametrize('name', BAD)
def test_bad_file_is_named_in_an_error(folder_run, name):
    assert name in folder_run[1].text(logging.ERROR)


def test_non_image_extension_is_not_an_error(folder_run):
    assert 'notes.txt' not in folder_run[1].text(logging.ERROR)


def test_reasons_are_given(folder_run):
    errors = folder_run[1].text(logging.ERROR)
    assert 'not a decodable image' in errors and 'too small' in errors


@pytest.mark.parametrize('name, kind', GOOD.items(), ids=list(GOOD))
def test_output_size_channels_and_depth(folder_run, name, kind):
    out = cv2.imread(str(folder_run[2] / f'{name.rsplit(".", 1)[0]}_SR.png'), cv2.IMREAD_UNCHANGED)
    h = 20 if kind == 'gray' else 24
    expected = {'rgb8': ((h * SCALE, 24 * SCALE, 3), np.uint8), 'gray': ((h * SCALE, 24 * SCALE), np.uint8),
                'rgba': ((h * SCALE, 24 * SCALE, 4), np.uint8), 'rgb16': ((h * SCALE, 24 * SCALE, 3), np.uint16)}
    assert (out.shape, out.dtype) == expected[kind]


def test_sixteen_bit_output_uses_the_full_range(folder_run):
    out = cv2.imread(str(folder_run[2] / 'deep_SR.png'), cv2.IMREAD_UNCHANGED)
    assert np.any(out % 257 != 0)  # not an 8-bit image scaled up


def test_alpha_is_upscaled_separately(folder_run):
    alpha = cv2.imread(str(folder_run[2] / 'rgba_SR.png'), cv2.IMREAD_UNCHANGED)[..., 3]
    # far from the edge at LR column 12 (x4 = 48) the bicubic alpha keeps the input's values exactly
    assert np.all(alpha[:, :40] == 255) and np.all(alpha[:, 56:] == 0)


def test_no_temporary_file_is_left(folder_run):
    assert not [p for p in folder_run[2].rglob('*') if p.name.startswith('.') or p.suffix == '.tmp']


# ----------------------------------------------------------------------------------------------------------------
# overwrite policy and extra outputs
def test_existing_output_is_kept_without_overwrite(tmp_path, tiny_opt):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('astronaut', 16))
    args = ['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--opt', str(tiny_opt), '--quiet']
    assert inference.main(args) == 0
    target = tmp_path / 'out' / 'a_SR.png'
    os.utime(target, ns=(10**18, 10**18))
    assert inference.main(args) == 0
    assert target.stat().st_mtime_ns == 10**18


def test_overwrite_rewrites_existing_output(tmp_path, tiny_opt):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('astronaut', 16))
    args = ['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--opt', str(tiny_opt), '--quiet']
    assert inference.main(args) == 0
    target = tmp_path / 'out' / 'a_SR.png'
    os.utime(target, ns=(10**18, 10**18))
    assert inference.main(args + ['--overwrite']) == 0
    assert target.stat().st_mtime_ns != 10**18


def test_save_kernel_and_depth(tmp_path, tiny_opt):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('chelsea', 16))
    assert inference.main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path), '--opt', str(tiny_opt), '--quiet',
                           '--save-kernel', '--save-depth', '--suffix', '_x4']) == 0
    heatmap = cv2.imread(str(tmp_path / 'a_x4_kernel_var.png'), cv2.IMREAD_UNCHANGED)
    assert heatmap.dtype == np.uint8 and heatmap.shape[2] == 3 and heatmap.shape[0] >= 256  # a captioned figure
    field = np.load(tmp_path / 'a_x4_kernel.npz')['kernel']
    assert field.dtype == np.float16 and field.shape == (11 * 11, 16, 16)
    np.testing.assert_allclose(field.astype(np.float32).sum(0), 1.0, atol=5e-3)  # every kernel sums to 1
    depth = cv2.imread(str(tmp_path / 'a_x4_depth.png'), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.ndim == 2
    assert np.all(depth == round(CONSTANT_DEPTH * 65535))  # svkr.depth: none is a constant map
    figure = cv2.imread(str(tmp_path / 'a_x4_depth_vis.png'))
    assert figure is not None and figure.shape[0] >= 256


@pytest.mark.parametrize('extra, message', [
    # precision and device
    (['--bf16'], '--bf16 needs --device cuda'),
    # tiling
    (['--tile', '16', '--tile-overlap', '16'], 'need 0 <= overlap < --tile'),
    (['--tile', '2'], 'at least'),
    (['--tile', '-1'], 'use 0'),
], ids=['bf16-on-cpu', 'overlap-not-below-tile', 'tile-too-small', 'negative-tile'])
def test_misuse_exits_2(tmp_path, capsys, extra, message):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('astronaut', 16))
    with pytest.raises(SystemExit) as exc:
        inference.main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), *extra])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_missing_weights_exit_1(tmp_path):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('astronaut', 16))
    opt = write_options(tmp_path / 'o.yml', {'_base_': str(TWIN), 'svkr': {'depth': 'none'},
                                             'path': {'pretrain_network_e': str(tmp_path / 'absent.pth')}})
    code, log = _run_main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--opt', str(opt)])
    assert code == 1 and 'could not build the model' in log.text(logging.ERROR)


def test_unwritable_output_fails_before_the_model_is_loaded(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('astronaut', 16))
    (tmp_path / 'file').write_text('not a folder')
    loaded = []
    monkeypatch.setattr('ssr.tools.image_inference.load_pipeline', lambda *a, **k: loaded.append(a))
    code, log = _run_main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'file'), '--opt', str(TWIN)])
    assert code == 2 and 'is a file, not a folder' in log.text(logging.ERROR) and not loaded


def test_read_only_output_fails_before_the_model_is_loaded(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('astronaut', 16))
    loaded = []
    monkeypatch.setattr('ssr.tools.image_inference.load_pipeline', lambda *a, **k: loaded.append(a))
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root ignores permission bits
        pytest.skip('running as root: permissions are not enforced')
    code, log = _run_main(['-i', str(tmp_path / 'a.png'), '-o', str(locked / 'out'), '--opt', str(TWIN)])
    assert code == 2 and 'is not writable' in log.text(logging.ERROR) and not loaded


# ----------------------------------------------------------------------------------------------------------------
# tiling
class _NearestUpsampler:
    """A pointwise x4 "model" (nearest upsampling): any correct blending of its tiles reproduces it exactly."""

    def __call__(self, lq):
        return {'sr': torch.nn.functional.interpolate(lq, scale_factor=SCALE, mode='nearest'),
                'kernel': lq[:, :2] + 1, 'depth': None}


@pytest.mark.parametrize('tile, overlap', [(16, 4), (13, 5), (10, 0), (40, 8)])
def test_blending_weights_form_a_partition_of_unity(tile, overlap):
    img = np.random.default_rng(0).random((37, 29, 3), dtype=np.float32)
    whole, kernel, _ = super_resolve_image(_NearestUpsampler(), img)
    tiled, tiled_kernel, _ = super_resolve_image(_NearestUpsampler(), img, tile, overlap)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    np.testing.assert_allclose(tiled_kernel, kernel, atol=1e-6)


def test_tiled_equals_untiled_below_a_tile(model):
    img = np.ascontiguousarray(photo('coffee', 28)[:20, :, ::-1], np.float32) / 255
    whole = super_resolve_image(model, img)
    tiled = super_resolve_image(model, img, tile=32, overlap=8)
    for a, b in zip(whole, tiled):
        np.testing.assert_array_equal(a, b)


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2))


def test_tiled_matches_untiled_on_a_larger_image(model):
    """Tiles of 32 px overlapping by 8 on a 48 px LR.

    Against the HR photo the two PSNRs agree within 0.1 dB (the issue's criterion); since an untrained model is far
    from the HR, that alone says little, so the tiled output must also reach 45 dB against the untiled one (these
    tiles without overlap give about 40 dB; with it the Gaussian blender of ssr.pipelines.tiling gives 51.7 dB, the
    linear ramps the script used before gave about 57 dB).
    """
    hr = np.ascontiguousarray(photo('astronaut', 48 * SCALE)[..., ::-1], np.float32) / 255
    lr = np.clip(cv2.resize(hr, (48, 48), interpolation=cv2.INTER_AREA), 0, 1)
    whole = super_resolve_image(model, lr)[0]
    tiled = super_resolve_image(model, lr, tile=32, overlap=8)[0]
    assert abs(_psnr(tiled, hr) - _psnr(whole, hr)) < 0.1
    assert _psnr(tiled, whole) >= 45


@pytest.mark.parametrize('modalities', [['lr'], None], ids=['lr-only', 'kernel-depth-lr'])
def test_ssr_files_with_data_conditions_run_only_when_sampling_needs_none(tmp_path, modalities):
    from basicsr.archs import build_network

    from ssr.tools.image_inference import load_pipeline

    oracle = load_yaml(REPO / 'tests/data/test_ssr_x4_oracle.yml')
    network_g = {**oracle['network_g'], **({'amf_modalities': modalities} if modalities else {})}
    torch.manual_seed(0)
    atomic_torch_save({'params': build_network(dict(network_g)).state_dict()}, tmp_path / 'g.pth')
    opt = write_options(tmp_path / 'oracle.yml', {'_base_': str(REPO / 'tests/data/test_ssr_x4_oracle.yml'),
                                                  'network_g': network_g,
                                                  'path': {'pretrain_network_g': str(tmp_path / 'g.pth')}})
    if modalities is None:  # the UNet fuses kernel and depth: plain images cannot give them
        with pytest.raises(ValueError, match='needs the ground-truth kernel and depth that plain images do not have'):
            load_pipeline(opt)
        return
    out = load_pipeline(opt)(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    assert out['sr'].shape == (1, 3, 32, 32) and out['kernel'] is None
