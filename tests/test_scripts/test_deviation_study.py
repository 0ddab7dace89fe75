"""scripts/deviation_study.py (paper Fig. 8 / 9): a tiny blind path on a generated layered set; table, CSV and
figure written, δ = 0 shared by the studies, no output on error."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from tests.conftest import PHOTOS, REPO, load_script, photo, tiny_blind_weights, write_options

study = load_script('deviation_study')


@pytest.fixture(scope='module')
def blind_file(tmp_path_factory):
    root = tmp_path_factory.mktemp('deviation')
    (root / 'hr').mkdir()
    for name in PHOTOS[:2]:
        cv2.imwrite(str(root / 'hr' / f'{name}.png'), photo(name, 48))
    assert load_script('generate_sv_testset').main(['-i', str(root / 'hr'), '-o', str(root / 'layered'), '--mode',
                                                    'layered_depth', '--kernel-size', '11', '--quiet']) == 0
    paths = tiny_blind_weights(root)
    return write_options(root / 'blind.yml', {
        '_base_': str(REPO / 'tests/data/test_blind_x4.yml'), 'svkr': {'iterations': 0, 'depth': 'file'},
        'datasets': {'test_1': {'dataroot': str(root / 'layered')}}, 'path': paths})


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_table_csv_and_figure(blind_file, tmp_path):
    out = tmp_path / 'dev' / 'study.md'
    assert study.main(['-opt', str(blind_file), '-o', str(out), '--deltas', '-0.25', '0.25']) == 0
    rows = read_rows(out.with_suffix('.csv'))
    assert len(rows) == 3 * 3  # three studies x {-0.25, 0 (added), 0.25}
    assert {(r['study'], float(r['delta'])) for r in rows} == {
        (s, d) for s in ('kernel', 'depth_shift', 'depth_scale') for d in (-0.25, 0.0, 0.25)}
    assert all(r['testset'] == 'tiny_sv' and r['images'] == '2' for r in rows)
    at_zero = {r['study']: (r['psnr'], r['kernel_psnr']) for r in rows if float(r['delta']) == 0}
    assert len(set(at_zero.values())) == 1  # δ = 0 is the method's own conditions in every study
    kernel = {float(r['delta']): float(r['kernel_psnr']) for r in rows if r['study'] == 'kernel'}
    assert len(set(kernel.values())) == 3  # the kernel study changes the field
    assert all(np.isfinite(float(r['psnr'])) and 0 < float(r['ssim']) <= 1 for r in rows)
    text = out.read_text()
    assert text.startswith('# Deviation study: tiny_test_blind_x4') and text.count('| tiny_sv |') == 9
    fig = cv2.imread(str(out.with_suffix('.png')))
    assert fig is not None and fig.shape[1] > 2 * fig.shape[0] and len(np.unique(fig.reshape(-1, 3), axis=0)) > 50
    assert study.main(['-opt', str(blind_file), '-o', str(out)]) == 1  # refuses to overwrite


def test_kernel_study_around_the_true_field(blind_file, tmp_path):
    out = tmp_path / 'k.md'
    assert study.main(['-opt', str(blind_file), '-o', str(out), '--studies', 'kernel', '--deltas', '0.5',
                       '--kernel-reference', 'true', '--max-images', '1']) == 0
    rows = {float(r['delta']): r for r in read_rows(out.with_suffix('.csv'))}
    assert set(rows) == {0.0, 0.5} and rows[0.0]['images'] == '1'
    assert float(rows[0.0]['kernel_psnr']) > 60  # the true field itself (fp16 storage only)
    assert float(rows[0.5]['kernel_psnr']) < float(rows[0.0]['kernel_psnr'])


@pytest.mark.parametrize('args, message', [
    (['--deltas', '-1.0'], 'factor 1 + delta <= 0'),
    (['--testsets', 'absent'], 'no test set left'),
])
def test_bad_input_is_one_error_and_no_output(blind_file, tmp_path, args, message, caplog):
    out = tmp_path / 'bad.md'
    assert study.main(['-opt', str(blind_file), '-o', str(out)] + args) == 2
    assert message in caplog.text
    assert not list(tmp_path.iterdir())


def test_data_without_depth_is_an_error_naming_it(blind_file, tmp_path, caplog):
    import shutil

    from ssr.utils.options import load_yaml

    data = tmp_path / 'nodepth'
    shutil.copytree(load_yaml(blind_file)['datasets']['test_1']['dataroot'], data)
    shutil.rmtree(data / 'depth')
    opt = write_options(tmp_path / 'o.yml', {'_base_': str(blind_file), 'datasets': {'test_1': {'dataroot': str(data)}}})
    out = tmp_path / 'res' / 'x.md'
    assert study.main(['-opt', str(opt), '-o', str(out), '--studies', 'depth_shift']) == 2
    assert 'no depth (dataroot_depth)' in caplog.text and not out.parent.exists()


def test_a_network_without_a_kernel_input_is_refused(blind_file, tmp_path, caplog):
    from basicsr.archs.rrdbnet_arch import RRDBNet

    from ssr.utils.checkpoint import atomic_torch_save

    atomic_torch_save({'params': RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4).state_dict()},
                      tmp_path / 'w.pth')
    opt = write_options(tmp_path / 'o.yml', {'_base_': str(REPO / 'tests/data/test_realsr_x4.yml'),
                                             'path': {'pretrain_network_g': str(tmp_path / 'w.pth')}})
    out = tmp_path / 'x.md'
    assert study.main(['-opt', str(opt), '-o', str(out)]) == 2
    assert 'takes no kernel field' in caplog.text and not out.exists()
