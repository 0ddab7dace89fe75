"""BlindSRModel validation reports kernel error and, with an estimated depth (svkr.depth: midas), depth AbsRel."""
from __future__ import annotations

import cv2
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model

from ssr.utils.options import load_yaml
from tests.conftest import PHOTOS, REPO, load_script, photo


@pytest.mark.slow
def test_validation_reports_kernel_and_depth_errors(tmp_path):
    hr = tmp_path / 'hr'
    hr.mkdir()
    for name in PHOTOS[:2]:
        cv2.imwrite(str(hr / f'{name}.png'), photo(name, 64))
    assert load_script('generate_sv_testset').main(['-i', str(hr), '-o', str(tmp_path / 'sv'), '--kernel-size', '11',
                                                    '--quiet']) == 0
    opt = load_yaml(REPO / 'tests/data/test_blind_x4.yml')
    opt.update(dist=False, rank=0, world_size=1, is_train=False, num_gpu=0,
               path={'visualization': str(tmp_path / 'vis'), 'log': str(tmp_path)},
               network_d={'type': 'MiDaSDepth', 'variant': 'midas_v21_small_256', 'random_weights': True},
               svkr={'iterations': 1, 'gamma': 0.9, 'depth': 'midas'})
    torch.manual_seed(0)
    model = build_model(opt)
    ds_opt = {'name': 'tiny_sv', 'type': 'SVPairedDataset', 'dataroot': str(tmp_path / 'sv'), 'phase': 'test',
              'scale': 4}
    loader = build_dataloader(build_dataset(ds_opt), ds_opt, num_gpu=0, dist=False, sampler=None, seed=0)
    model.validation(loader, current_iter=1, tb_logger=None, save_img=False)
    values = model.kernel_metric_results
    assert set(values) == {'kernel_mse', 'kernel_psnr', 'depth_abs_rel'}
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values())
    assert values['depth_abs_rel'] > 0  # random MiDaS weights: a real, non-zero error
