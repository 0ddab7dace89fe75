"""scripts/evaluate.py: bicubic and an option-file method on a small SV test set, every metric that can run here,
the others marked n/a; markdown + CSV output."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import torch

from ssr.utils.checkpoint import atomic_torch_save
from tests.conftest import PHOTOS, REPO, load_script, photo, write_options

evaluate = load_script('evaluate')


def test_table_for_bicubic_and_a_method(tmp_path, monkeypatch):
    from basicsr.archs.rrdbnet_arch import RRDBNet
    from basicsr.metrics import calculate_psnr
    from basicsr.utils.matlab_functions import imresize

    monkeypatch.setenv('SSR_ROOT', str(tmp_path))
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in PHOTOS[:2]:
        cv2.imwrite(str(photos / f'{name}.png'), photo(name, 208))  # NIQE needs 2 x 2 blocks of 96 px
    assert load_script('generate_sv_testset').main(['-i', str(photos), '-o', str(tmp_path / 'sv'), '--kernel-size',
                                                    '11', '--quiet']) == 0
    torch.manual_seed(0)
    net = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    atomic_torch_save({'params': net.state_dict()}, tmp_path / 'w.pth')
    opt = write_options(tmp_path / 'm.yml', {'_base_': str(REPO / 'tests/data/test_realsr_x4.yml'),
                                             'datasets': {'test_1': {'dataroot': str(tmp_path / 'sv')}},
                                             'path': {'pretrain_network_g': str(tmp_path / 'w.pth')}})
    out = tmp_path / 'table.md'
    assert evaluate.main(['bicubic', f'tiny={opt}', '-o', str(out)]) == 0
    table = out.read_text()
    assert '| bicubic | tiny_sv |' in table and '| tiny | tiny_sv |' in table
    assert 'NIQE ↓' in table and 'ST-LPIPS ↓' in table and table.count('| n/a | n/a | n/a |') == 2
    assert 'LPIPS: n/a, no weights (--lpips-backbone).' in table and 'MUSIQ: n/a' in table
    with open(out.with_suffix('.csv')) as f:
        rows = {r['method']: r for r in csv.DictReader(f)}
    # bicubic's PSNR is the mean over the set of an independent computation
    expected = []
    for name in PHOTOS[:2]:
        lr = cv2.imread(str(tmp_path / 'sv/LR' / f'{name}.png')).astype(np.float32) / 255
        hr = cv2.imread(str(tmp_path / 'sv/HR' / f'{name}.png'))
        up = (np.clip(imresize(lr, 4), 0, 1) * 255).round().astype(np.uint8)
        expected.append(calculate_psnr(up, hr, crop_border=4, test_y_channel=True))
    assert abs(float(rows['bicubic']['psnr']) - float(np.mean(expected))) < 0.05
    assert float(rows['tiny']['sec_per_img']) > 0 and rows['tiny']['images'] == '2'
    assert float(rows['bicubic']['niqe']) > 0  # the random tiny network's flat output may have no NIQE (nan)
    for row in rows.values():
        assert float(row['stlpips']) > 0 and row['lpips'] == ''
    assert evaluate.main(['bicubic', f'tiny={opt}', '-o', str(out)]) == 1  # refuses to overwrite


def test_a_missing_weight_file_is_an_error_before_any_work(tmp_path):
    out = tmp_path / 'table.md'
    code = evaluate.main(['bicubic', '--reference', str(REPO / 'tests/data/test_realsr_x4.yml'), '-o', str(out),
                          '--lpips-backbone', str(tmp_path / 'absent.pth')])
    assert code == 2 and not out.exists()
