"""The paper's Table 2 ablations: SSRModel with ``network_g.amf_modalities`` subsets on data conditions, and every
file under options/ablation/ through its tiny twin in this process (train twins: one iteration and one validation;
test twins: one validation pass with freshly built weights), on one tiny SV image."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import cv2
import pytest
import torch
from basicsr.archs import build_network
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model

from ssr.utils.checkpoint import atomic_torch_save
from ssr.utils.options import load_yaml
from tests.conftest import PHOTOS, REPO, load_script, photo
from tests.test_models.test_ssr_model import batch, build, tiny_opt

TWINS = REPO / 'tests' / 'data' / 'ablation'
TRAIN_TWINS = sorted(p.name for p in TWINS.glob('train_*.yml'))
TEST_TWINS = sorted(p.name for p in TWINS.glob('test_*.yml'))


# ----------------------------------------------------------------------------------------------------------------
# SSRModel with data conditions
def test_without_the_kernel_modality_the_data_needs_no_kernel():
    model = build(tiny_opt(network_g={'amf_modalities': ['depth', 'lr']}))
    data = {k: v for k, v in batch().items() if k != 'kernel'}
    model.feed_data(data)
    model.optimize_parameters(current_iter=1)
    log = model.get_current_log()
    assert math.isfinite(log['l_eps']) and log['l_reg'] > 0
    model.test()
    assert model.output.shape == (2, 3, 32, 32) and torch.isfinite(model.output).all()


def test_without_the_depth_modality_the_data_needs_no_depth_and_dropout_is_skipped():
    model = build(tiny_opt(network_g={'amf_modalities': ['kernel', 'lr']}, train={'depth_dropout': 0.5}))
    model.feed_data({k: v for k, v in batch().items() if k != 'depth'})
    model.optimize_parameters(current_iter=1)
    assert math.isfinite(model.get_current_log()['l_eps'])
    model.test()
    assert torch.isfinite(model.output).all()


@pytest.mark.parametrize('modalities, missing', [(['kernel', 'lr'], 'kernel'), (['depth', 'lr'], 'depth')],
                         ids=['kernel', 'depth'])
def test_a_used_condition_missing_from_the_data_raises(modalities, missing):
    model = build(tiny_opt(network_g={'amf_modalities': modalities}))
    with pytest.raises(ValueError, match=f'needs {missing} in the data'):
        model.feed_data({k: v for k, v in batch().items() if k != missing})


def test_the_unused_modality_weight_does_not_enter_eq5():
    """train.reg_weights keeps three values; the kernel's lambda is unused without the kernel modality."""
    logs = []
    for weights in ([1e-4, 1e-4, 1e-4], [5.0, 1e-4, 1e-4]):
        model = build(tiny_opt(network_g={'amf_modalities': ['depth', 'lr']}, train={'reg_weights': weights}))
        assert model.fused_reg_weights == weights[1:]
        model.feed_data(batch())
        model.optimize_parameters(current_iter=1)
        logs.append(model.get_current_log())
    assert logs[0]['l_reg'] > 0
    assert logs[1]['l_reg'] == pytest.approx(logs[0]['l_reg'], rel=1e-6)


def test_the_pipeline_reads_only_the_used_conditions():
    model = build(tiny_opt(is_train=False, network_g={'amf_modalities': ['depth', 'lr']}))
    assert not model.pipeline.needs('kernel') and model.pipeline.needs('depth')
    data = {k: v for k, v in batch().items() if k != 'gt'}
    with_kernel = model.pipeline(data['lq'], data['kernel'], data['depth']).sr
    without = model.pipeline(data['lq'], None, data['depth']).sr
    assert torch.equal(with_kernel, without)
    with pytest.raises(ValueError, match=r'needs the depth map of the call \(network_g.amf_modalities'):
        model.pipeline(data['lq'], data['kernel'], None)


def test_latent_tiles_crop_the_features_of_a_subset():
    """Tiled sampling crops whatever features the UNet returns: one tile covering the latent equals no tiles."""
    data = {k: v for k, v in batch().items() if k not in ('gt', 'kernel')}
    outs = []
    for tile in ({'size': 0, 'overlap': 0}, {'size': 8, 'overlap': 0}, {'size': 4, 'overlap': 2}):
        model = build(tiny_opt(is_train=False, network_g={'amf_modalities': ['depth', 'lr']}, sampler={'tile': tile}))
        outs.append(model.pipeline(data['lq'], None, data['depth']).sr)
    assert torch.equal(outs[0], outs[1])
    assert outs[2].shape == outs[0].shape and torch.isfinite(outs[2]).all()


# ----------------------------------------------------------------------------------------------------------------
# the tiny twins of options/ablation/
@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """Two 48 px photos for one training batch (of 2 crops), and the SV test set (HR, LR, kernel, depth) of the first
    for validation."""
    root = tmp_path_factory.mktemp('ablation')
    photos, first = root / 'photos', root / 'first'
    photos.mkdir()
    first.mkdir()
    for name in PHOTOS[:2]:
        cv2.imwrite(str(photos / f'{name}.png'), photo(name, 48))
    cv2.imwrite(str(first / f'{PHOTOS[0]}.png'), photo(PHOTOS[0], 48))
    generate = load_script('generate_sv_testset').main
    assert generate(['-i', str(first), '-o', str(root / 'sv'), '--kernel-size', '11', '--quiet']) == 0
    return {'photos': photos, 'sv': root / 'sv'}


def _options(twin: str, is_train: bool, root: Path) -> dict:
    """The twin's options as BasicSR's parser would hand them to ``build_model`` (no directories made)."""
    opt = load_yaml(TWINS / twin)
    opt.update(dist=False, rank=0, world_size=1, is_train=is_train, num_gpu=0)
    opt['path'].update(models=str(root / 'models'), training_states=str(root / 'states'), log=str(root),
                       visualization=str(root / 'visualization'))
    for phase, ds in opt['datasets'].items():
        ds.update(phase=phase.split('_')[0], scale=opt['scale'])
    return opt


def _loader(ds_opt: dict):
    return build_dataloader(build_dataset(ds_opt), ds_opt, num_gpu=0, dist=False, sampler=None, seed=0)


def _check_validation(model) -> None:
    values = model.metric_results
    assert values and all(math.isfinite(v) for v in values.values()), values


def _check_modalities(opt: dict, model) -> None:
    net = model.get_bare_model(model.net_g)
    wanted = opt['network_g'].get('amf_modalities')
    if wanted is not None:  # SSR twins
        assert set(net.modalities) == set(wanted)
        assert all((getattr(net, f'{m}_encoder') is None) == (m not in wanted) for m in ('kernel', 'depth', 'lr'))


@pytest.mark.parametrize('twin', TRAIN_TWINS)
def test_train_twin_trains_one_iteration_and_validates(tmp_path, tiny_data, twin):
    opt = _options(twin, True, tmp_path)
    opt['datasets']['train']['dataroot_gt'] = str(tiny_data['photos'])
    opt['datasets']['val']['dataroot'] = str(tiny_data['sv'])
    torch.manual_seed(0)
    model = build_model(opt)
    _check_modalities(opt, model)
    model.feed_data(next(iter(_loader(opt['datasets']['train']))))
    model.optimize_parameters(current_iter=1)
    log = model.get_current_log()
    assert log and all(math.isfinite(v) for v in log.values()), log
    model.validation(_loader(opt['datasets']['val']), current_iter=1, tb_logger=None, save_img=False)
    _check_validation(model)


def _write_weights(opt: dict, folder: Path) -> dict[str, str]:
    """Freshly built weights for every network of a test twin (the recipe, not quality, is tested)."""
    paths = {}
    for key in [k for k in opt if k.startswith('network_')]:
        torch.manual_seed(0)
        state = build_network(copy.deepcopy(opt[key])).state_dict()
        atomic_torch_save({'params': state, 'params_ema': state}, folder / f'{key}.pth')
        paths[f'pretrain_{key}'] = str(folder / f'{key}.pth')
    return paths


@pytest.mark.parametrize('twin', TEST_TWINS)
def test_test_twin_validates(tmp_path, tiny_data, twin):
    opt = _options(twin, False, tmp_path)
    opt['datasets']['test_1']['dataroot'] = str(tiny_data['sv'])
    opt['path'].update(_write_weights(opt, tmp_path))
    torch.manual_seed(0)
    model = build_model(opt)
    _check_modalities(opt, model)
    if opt['network_e'].get('use_depth') is False:  # the plain-kernel estimator has no depth branch
        assert model.net_e.depth_encoder is None
    model.validation(_loader(opt['datasets']['test_1']), current_iter=0, tb_logger=None, save_img=False)
    _check_validation(model)
    assert model.blind_metric_results  # SVKR's I^T, scored beside the SSR output
