"""Option mistakes that used to pass silently or crash mid-run are one ``OptionError`` naming the key (issue 16 /
15): misspelled keys with the closest known one, ``network_G``, strings for network ints, scheduler periods shorter
than ``total_iter``, scale / kernel-size mismatches."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from ssr.utils.options import OptionError, validate_options
from tests.test_entrypoints.tiny_options import tiny_train_options

BASE = tiny_train_options(Path('/data'), 'tiny')


def check(edit) -> str:
    import ssr.compat

    ssr.compat.register()
    opt = copy.deepcopy(BASE)
    edit(opt)
    with pytest.raises(OptionError) as info:
        validate_options(opt, 'o.yml', is_train=True)
    return str(info.value)


def test_the_base_is_valid():
    import ssr.compat

    ssr.compat.register()
    validate_options(copy.deepcopy(BASE), 'o.yml', is_train=True)


@pytest.mark.parametrize('edit, key, closest', [
    (lambda o: o.update(manual_sed=1), 'manual_sed', 'manual_seed'),
    (lambda o: o['train'].update(grad_clp=1.0), 'train.grad_clp', 'grad_clip'),
    (lambda o: o['train'].update(totl_iter=5), 'train.totl_iter', 'total_iter'),
    (lambda o: o.update(val={'val_freq': 5, 'save_imgs': True}), 'val.save_imgs', 'save_img'),
    (lambda o: o['logger'].update(print_frq=1), 'logger.print_frq', 'print_freq'),
])
def test_misspelled_keys_name_the_closest_known_one(edit, key, closest):
    message = check(edit)
    assert message.startswith(f'o.yml: {key}: unknown key; closest known: {closest}'), message


def test_network_capital_g_is_named():
    def edit(o):
        o['network_G'] = o.pop('network_g')

    assert "write 'network_g'" in check(edit)


def test_pretrain_path_for_a_network_the_file_lacks():
    assert 'there is no network_e' in check(lambda o: o['path'].update(pretrain_network_e='x.pth'))


def test_string_for_a_network_int():
    message = check(lambda o: o.update(network_g={'type': 'NBSR', 'num_feat': '8'}))
    assert message.startswith("o.yml: network_g.num_feat: NBSR expects int for 'num_feat', got str '8'"), message


def test_cosine_periods_shorter_than_total_iter():
    def edit(o):
        o['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [10], 'restart_weights': [1]}

    assert 'training would crash at iteration 11' in check(edit)


def test_restart_weights_per_period():
    def edit(o):
        o['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [10, 10], 'restart_weights': [1]}

    assert 'one restart weight per period' in check(edit)


def test_top_level_scale_against_the_network():
    assert 'differs from the top-level scale 4' in check(lambda o: o['network_g'].update(scale=2))


def test_network_kernel_size_against_the_data():
    def edit(o):
        o['network_g'] = {'type': 'NBSR', 'kernel_size': 21}
        o['datasets']['train']['degradation'] = {'kernel_size': 11}

    message = check(edit)
    assert 'network_g.kernel_size: 21 differs from datasets.train.degradation.kernel_size 11' in message, message


def _sv_train_dataset(o, **extra):
    o['datasets']['train'] = {'name': 'sv', 'type': 'SVDegradationDataset', 'dataroot_gt': '/data/hr',
                              'gt_size': 32, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, **extra}


def test_an_ssr_dataset_block_is_valid_with_its_own_and_basicsr_loader_keys():
    import ssr.compat

    ssr.compat.register()
    opt = copy.deepcopy(BASE)
    _sv_train_dataset(opt, use_shuffle=True, dataset_enlarge_ratio=2, prefetch_mode=None, depth_source='layered')
    validate_options(opt, 'o.yml', is_train=True)


@pytest.mark.parametrize('edit, key, closest', [
    (lambda o: _sv_train_dataset(o, gt_sise=32), 'datasets.train.gt_sise', 'gt_size'),
    (lambda o: _sv_train_dataset(o, depth_sorce='file'), 'datasets.train.depth_sorce', 'depth_source'),
    (lambda o: o['datasets']['train'].update(use_hflp=True), 'datasets.train.use_hflp', 'use_hflip'),
    (lambda o: o.update(val={'val_freq': 5, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_boder': 4}}}),
     'val.metrics.psnr.crop_boder', 'crop_border'),
    (lambda o: o.update(val={'val_freq': 5, 'metrics': {'k': {'type': 'calculate_kernel_psnr', 'test_y_chanel': 1}}}),
     'val.metrics.k.test_y_chanel', 'test_y_channel'),
])
def test_misspelled_dataset_and_metric_keys_name_the_closest_known_one(edit, key, closest):
    message = check(edit)
    assert message.startswith(f'o.yml: {key}: unknown key; closest known: {closest}'), message


def test_sampler_keys_are_checked():
    from ssr.pipelines.sampling import SamplerConfig

    with pytest.raises(ValueError, match=r"sampler: unknown key\(s\) \['stpes'\] \(closest known: steps"):
        SamplerConfig.from_options({'stpes': 4})
