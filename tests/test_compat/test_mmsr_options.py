"""MMSR-style option files (MANet / DCLS layout, fixtures written here mirroring their key structure) are translated
at load, every key accounted for; ``ssr/test.py`` runs them as they are; ``scripts/convert_options.py`` writes the
translation."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from ssr.utils.mmsr_options import is_mmsr, translate_mmsr
from ssr.utils.options import OptionError, load_options
from tests.conftest import load_script, run_entry, write_options

MANET = {  # the layout of MANet's options/test/test_stage3.yml, tiny widths
    'name': 'manet_mmsr', 'suffix': None, 'model': 'blind', 'distortion': 'sr', 'scale': 4, 'crop_border': None,
    'gpu_ids': None, 'kernel_size': 11, 'code_length': 6, 'sig': 1.6, 'sig1': 6, 'sig2': 1, 'theta': 0,
    'rate_iso': 0, 'sv_mode': 0, 'test_noise': False, 'noise': 15, 'test_jpeg': False, 'jpeg': 70, 'cal_lr_psnr': False,
    'datasets': {'test1': {'name': 'tiny', 'mode': 'LQGT', 'dataroot_GT': 'HR', 'dataroot_LQ': 'LR'}},
    'network_G': {'which_model_G': 'MANet_s3', 'in_nc': 3, 'out_nc': 3, 'nf': 8, 'nb': 1, 'gc': 4, 'manet_nf': 8,
                  'manet_nb': 1, 'split': 2},
    'path': {'strict_load': True, 'pretrain_model_G': 'manet.pth'},
}
DCLS = {  # the layout of DCLS's options/test/test_setting1_x4.yml, tiny widths
    'name': 'dcls_mmsr', 'suffix': None, 'model': 'blind', 'distortion': 'sr', 'scale': 4, 'crop_border': None,
    'gpu_ids': [0], 'pca_matrix_path': 'pca_matrix.pth',
    'degradation': {'random_kernel': True, 'ksize': 21, 'code_length': 10, 'sig_min': 0.2, 'sig_max': 4.0,
                    'rate_iso': 1.0, 'random_disturb': False},
    'datasets': {'test1': {'name': 'Set5', 'mode': 'LQGT', 'dataroot_GT': 'x4HR.lmdb', 'dataroot_LQ': 'x4LR.lmdb'},
                 'test2': {'name': 'lq_only', 'mode': 'LQ', 'dataroot_LQ': 'lr'}},
    'network_G': {'which_model_G': 'DCLS', 'setting': {'nf': 8, 'nb': 1, 'ng': 1, 'input_para': 16,
                                                       'kernel_size': 11}},
    'path': {'pretrain_model_G': 'dcls.pth', 'strict_load': True},
}


def assert_translation_error(opt: dict, edit, file: str, is_train: bool, key: str, message: str) -> None:
    """``edit(opt)`` makes ``translate_mmsr`` raise an OptionError naming ``key`` with ``message``."""
    edit(opt)
    with pytest.raises(OptionError, match=message) as info:
        translate_mmsr(opt, file, is_train=is_train)
    assert info.value.key == key


def test_manet_translation():
    assert is_mmsr(MANET) and not is_mmsr({'network_g': {'type': 'NBSR'}})
    opt, notes = translate_mmsr(MANET, 'm.yml', is_train=False)
    assert opt['model_type'] == 'BlindSRModel' and opt['num_gpu'] == 0 and opt['scale'] == 4
    assert opt['network_g'] == {'type': 'MANetBlindSR', 'in_nc': 3, 'out_nc': 3, 'nf': 8, 'nb': 1, 'gc': 4,
                                'manet_nf': 8, 'manet_nb': 1, 'split': 2, 'kernel_size': 11, 'code_length': 6,
                                'scale': 4, 'kernel_layout': 'ssr'}
    assert opt['datasets'] == {'test_1': {'name': 'tiny', 'dataroot_gt': 'HR', 'dataroot_lq': 'LR',
                                          'io_backend': {'type': 'disk'}, 'type': 'PairedImageDataset'}}
    assert opt['path'] == {'strict_load_g': True, 'pretrain_network_g': 'manet.pth', 'param_key_g': None}
    assert opt['val']['metrics']['psnr'] == {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}
    # every MMSR key is accounted for in a note or in the translation
    assert 'gpu_ids: None -> num_gpu: 0' in notes and 'sig1: not used (LR synthesis of mode: GT; no GT set)' in notes
    assert 'distortion: not used' in notes


def test_dcls_translation():
    opt, notes = translate_mmsr(DCLS, 'd.yml', is_train=False)
    assert opt['num_gpu'] == 1
    assert opt['network_g'] == {'type': 'DCLSNet', 'nf': 8, 'nb': 1, 'ng': 1, 'input_para': 16, 'kernel_size': 11,
                                'upscale': 4}
    assert opt['datasets']['test_1']['io_backend'] == {'type': 'lmdb'}
    assert opt['datasets']['test_2'] == {'name': 'lq_only', 'dataroot_lq': 'lr', 'io_backend': {'type': 'disk'},
                                         'type': 'SingleImageDataset'}
    assert 'degradation: not used (LR synthesis of mode: GT; no GT set)' in notes


@pytest.mark.parametrize('edit, key, message', [
    (lambda o: o.update(made_up=1), 'made_up', 'has no meaning in ssr'),
    (lambda o: o['network_G'].update(nff=8), 'network_G.nff', 'has no meaning for MANetBlindSR'),
    (lambda o: o['network_G'].update(which_model_G='IKC_SFTMD'), 'network_G.which_model_G', 'is not translated'),
    (lambda o: o['network_G'].update(which_model_G='Corrector'), 'network_G.which_model_G', 'one of IKC'),
    (lambda o: o['datasets']['test1'].update(mode='SR'), 'datasets.test1.mode', 'expected LQGT, GTLQ, LQ or GT'),
    (lambda o: o['datasets']['test1'].update(mode='GT', dataroot_GT=None, dataroot_LQ=None),
     'datasets.test1.dataroot_GT', 'mode GT needs dataroot_GT'),
    (lambda o: o['datasets']['test1'].update(mode='GT'), 'datasets.test1.dataroot_LQ', 'set dataroot_LQ: ~'),
    (lambda o: o['datasets']['test1'].update(GT_size=96), 'datasets.test1.GT_size', 'has no meaning'),
    (lambda o: o['path'].update(pretrain_model_K='k.pth'), 'path.pretrain_model_K', 'has no meaning'),
])
def test_keys_without_meaning_are_errors_naming_them(edit, key, message):
    assert_translation_error(copy.deepcopy(MANET), edit, 'm.yml', False, key, message)


def test_mode_gt_becomes_an_on_the_fly_dataset_with_the_file_kernel_noise_and_jpeg():
    opt = copy.deepcopy(MANET)
    opt['datasets']['test1'] = {'name': 'bsd', 'mode': 'GT', 'dataroot_GT': 'HR', 'dataroot_LQ': None}
    opt.update(test_noise=True, test_jpeg=True, sv_mode=2)
    out, notes = translate_mmsr(opt, 'm.yml', is_train=False)
    assert out['datasets']['test_1'] == {
        'name': 'bsd', 'type': 'MMSRGTDataset', 'dataroot_gt': 'HR', 'kernel_size': 11, 'noise_level': 15.0,
        'jpeg_quality': 70, 'io_backend': {'type': 'disk'},
        'kernel': {'sig': 1.6, 'sig1': 6, 'sig2': 1, 'theta': 0, 'rate_iso': 0, 'sv_mode': 2}}
    assert any(n.startswith('datasets.test1 (mode GT) -> MMSRGTDataset') and 'sv_mode 2' in n for n in notes)
    assert 'sig1 -> the kernel / noise / JPEG of the mode: GT sets' in notes


MANET_TRAIN = {  # the layout of MANet's options/train/train_stage3.yml, tiny widths and sizes
    'name': 'manet_train', 'use_tb_logger': False, 'model': 'blind', 'distortion': 'sr', 'scale': 4, 'gpu_ids': None,
    'kernel_size': 11, 'code_length': 6, 'sig_min': 0.7, 'sig_max': 10.0, 'train_noise': True, 'noise_high': 15,
    'train_jpeg': False, 'jpeg_low': 70, 'sig': 1.6, 'sig1': 6, 'sig2': 1, 'theta': 0, 'rate_iso': 0,
    'test_noise': False, 'noise': 15, 'test_jpeg': False, 'jpeg': 70, 'cal_lr_psnr': False,
    'datasets': {
        'train': {'name': 'tiny', 'mode': 'GT', 'dataroot_GT': 'HR', 'dataroot_LQ': None, 'use_shuffle': True,
                  'n_workers': 0, 'batch_size': 2, 'GT_size': 32, 'LR_size': None, 'use_flip': True,
                  'use_rot': True, 'color': 'RGB'},
        'val': {'name': 'tiny_val', 'mode': 'GT', 'dataroot_GT': 'HR', 'dataroot_LQ': None}},
    'network_G': {'which_model_G': 'MANet_s3', 'in_nc': 3, 'out_nc': 3, 'nf': 8, 'nb': 1, 'gc': 4, 'manet_nf': 8,
                  'manet_nb': 1, 'split': 2},
    'path': {'pretrain_model_K': 'k.pth', 'pretrain_model_G': 'g.pth', 'strict_load': False, 'resume_state': None},
    'train': {'lr_G': 5e-5, 'lr_scheme': 'MultiStepLR', 'beta1': 0.9, 'beta2': 0.999, 'niter': 4, 'warmup_iter': -1,
              'lr_steps': [2, 3], 'lr_gamma': 0.5, 'restarts': None, 'restart_weights': None, 'eta_min': 1e-7,
              'pixel_criterion': 'l1', 'pixel_weight': 1.0, 'manual_seed': 0, 'val_freq': 4},
    'logger': {'print_freq': 1, 'save_checkpoint_freq': 4},
}


def test_manet_stage3_training_translation():
    opt, notes = translate_mmsr(MANET_TRAIN, 'train_stage3.yml', is_train=True)
    assert opt['model_type'] == 'BlindSRModel' and opt['manual_seed'] == 0
    assert opt['network_g']['estimator_path'] == 'k.pth' and opt['network_g']['sr_path'] == 'g.pth'
    assert opt['datasets']['train'] == {
        'name': 'tiny', 'type': 'MMSRGTDataset', 'dataroot_gt': 'HR', 'use_shuffle': True, 'num_worker_per_gpu': 0,
        'batch_size_per_gpu': 2, 'gt_size': 32, 'use_hflip': True, 'use_rot': True, 'kernel_size': 11,
        'random_kernel': {'sig_min': 0.7, 'sig_max': 10.0, 'rate_iso': 0}, 'noise_high': 15.0, 'jpeg_low': None,
        'io_backend': {'type': 'disk'}}
    assert opt['datasets']['val']['type'] == 'MMSRGTDataset' and opt['datasets']['val']['kernel']['sig1'] == 6
    assert opt['train'] == {
        'optim_g': {'type': 'Adam', 'lr': 5e-5, 'betas': [0.9, 0.999], 'weight_decay': 0.0},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [2, 3], 'gamma': 0.5}, 'total_iter': 4,
        'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}}
    assert opt['logger'] == {'print_freq': 1, 'save_checkpoint_freq': 4, 'use_tb_logger': False}
    assert opt['val']['val_freq'] == 4
    assert any(n.startswith('sig_min -> datasets.train') for n in notes)


@pytest.mark.parametrize('edit, key, message', [
    (lambda o: o['network_G'].update(which_model_G='IKC_SFTMD'), 'network_G.which_model_G', 'MANet stages 1-3'),
    (lambda o: o['train'].update(lr_E=1e-4), 'train.lr_E', 'has no meaning in ssr for a MANet training file'),
    (lambda o: o['train'].update(lr_scheme='StepLR'), 'train.lr_scheme', 'is not translated'),
    (lambda o: o['datasets']['train'].update(mode='LQGT'), 'datasets.train.mode', 'MANet trains on mode: GT'),
    (lambda o: o['logger'].update(wandb=1), 'logger.wandb', 'has no meaning'),
])
def test_training_keys_without_meaning_are_errors(edit, key, message):
    assert_translation_error(copy.deepcopy(MANET_TRAIN), edit, 'train_stage3.yml', True, key, message)


def _stage(train: dict, which: str) -> dict:
    """MANET_TRAIN edited into the layout of MANet's train_stage1.yml / train_stage2.yml."""
    opt = copy.deepcopy(train)
    if which == 'MANet_s1':  # the estimator alone, trained with the kernel loss
        opt['network_G'] = {'which_model_G': 'MANet_s1', 'in_nc': 3, 'out_nc': None, 'nf': None, 'nb': None,
                            'gc': None, 'manet_nf': 8, 'manet_nb': 1, 'split': 2}
        del opt['train']['pixel_criterion'], opt['train']['pixel_weight']
        opt['train'].update(kernel_criterion='l1', kernel_weight=1.0)
    else:  # the non-blind SR fed with the true kernels
        opt['network_G'] = {'which_model_G': 'MANet_s2', 'in_nc': 3, 'out_nc': 3, 'nf': 8, 'nb': 1, 'gc': 4,
                            'manet_nf': None, 'manet_nb': None, 'split': None}
        opt['train'].update(lr_scheme='CosineAnnealingLR_Restart', T_period=[2, 2, 2], restarts=[2],
                            restart_weights=[0.5])
        opt['pca_path'] = None
    opt['path'] = {'pretrain_model_G': None, 'strict_load': True, 'resume_state': None}
    return opt


def test_manet_stage1_training_translation():
    opt, notes = translate_mmsr(_stage(MANET_TRAIN, 'MANet_s1'), 'train_stage1.yml', is_train=True)
    assert opt['model_type'] == 'KernelEstimatorModel' and opt['depth_input'] == 'none'
    assert opt['network_g'] == {'type': 'MANetEstimator', 'in_nc': 3, 'kernel_size': 11, 'nc': [8, 16], 'nb': 1,
                                'split': 2, 'scale': 4, 'kernel_layout': 'ssr'}
    # MANet: kernel_weight * L1(1e4 K_est, 1e4 K) / (h w), L1 the mean over B x (h w) x k x k; KernelFieldLoss sums
    # the k*k taps: the same loss for loss_weight 1e4 / (h w k^2), here h = w = 32 / 4, k = 11
    assert opt['train']['kernel_opt'] == {'type': 'KernelFieldLoss', 'criterion': 'l1',
                                          'loss_weight': pytest.approx(1e4 / (8 * 8 * 11 * 11))}
    assert 'pixel_opt' not in opt['train'] and 'metrics' not in opt['val']
    assert opt['datasets']['train']['type'] == 'MMSRGTDataset'
    assert 'network_G.out_nc' not in ' '.join(notes)  # None values are the official file's "not used" markers


def test_manet_stage1_kernel_loss_equals_manets():
    from ssr.losses.kernel_loss import KernelFieldLoss

    opt, _ = translate_mmsr(_stage(MANET_TRAIN, 'MANet_s1'), 'train_stage1.yml', is_train=True)
    kernel_opt = dict(opt['train']['kernel_opt'])
    kernel_opt.pop('type')
    gen = torch.Generator().manual_seed(0)
    est = torch.rand(2, 121, 8, 8, generator=gen).softmax(1)
    true = torch.rand(2, 121, 1, 1, generator=gen).softmax(1).expand(-1, -1, 8, 8)
    # MANet's stage-1 loss: kernels as (B, h*w, k, k), true kernel repeated over the pixels
    official = torch.nn.L1Loss()(est.flatten(2).transpose(1, 2) * 1e4, true.flatten(2).transpose(1, 2) * 1e4) / 64
    torch.testing.assert_close(KernelFieldLoss(**kernel_opt)(est, true), official)


def test_manet_stage2_training_translation():
    opt, notes = translate_mmsr(_stage(MANET_TRAIN, 'MANet_s2'), 'train_stage2.yml', is_train=True)
    assert opt['model_type'] == 'NonBlindSRModel'
    assert opt['network_g'] == {'type': 'MANetSR', 'in_nc': 3, 'out_nc': 3, 'nf': 8, 'nb': 1, 'gc': 4, 'scale': 4,
                                'code_length': 6, 'kernel_size': 11, 'kernel_layout': 'ssr'}
    # MMSR: restarts at iteration 2 with weight 0.5; BasicSR: one weight per period that runs
    assert opt['train']['scheduler'] == {'type': 'CosineAnnealingRestartLR', 'periods': [2, 2],
                                         'restart_weights': [1, 0.5], 'eta_min': 1e-7}
    assert opt['train']['pixel_opt']['type'] == 'L1Loss'


def test_manet_stage1_and_stage2_test_files():
    s1 = copy.deepcopy(MANET)
    s1['network_G'] = _stage(MANET_TRAIN, 'MANet_s1')['network_G']
    s1['path'] = {'strict_load': True, 'pretrain_model_K': 'stage1.pth'}
    opt, _ = translate_mmsr(s1, 'test_stage1.yml', is_train=False)
    assert opt['model_type'] == 'KernelEstimatorModel'
    assert opt['path'] == {'strict_load_g': True, 'pretrain_network_g': 'stage1.pth', 'param_key_g': None}
    s2 = copy.deepcopy(MANET)
    s2['network_G'] = _stage(MANET_TRAIN, 'MANet_s2')['network_G']
    s2['pca_path'] = 'pca.pth'
    opt, _ = translate_mmsr(s2, 'test_stage2.yml', is_train=False)
    assert opt['model_type'] == 'NonBlindSRModel' and opt['network_g']['pca_path'] == 'pca.pth'
    assert opt['path']['pretrain_network_g'] == 'manet.pth'


@pytest.mark.parametrize('which, edit, key, message', [
    ('MANet_s1', lambda o: o['train'].update(pixel_criterion='l1'), 'train.pixel_criterion', 'no SR output'),
    ('MANet_s1', lambda o: o['train'].update(kernel_criterion='cb'), 'train.kernel_criterion', 'not in'),
    ('MANet_s1', lambda o: o['path'].update(pretrain_model_K='k.pth', pretrain_model_G='g.pth'),
     'path.pretrain_model_G', 'not both'),
    ('MANet_s1', lambda o: o['train'].update(pixel_criterion_lr='l1'), 'train.pixel_criterion_lr', 'not translated'),
    ('MANet_s2', lambda o: o['train'].update(kernel_criterion='l1'), 'train.kernel_criterion', 'pixel loss only'),
    ('MANet_s2', lambda o: o['path'].update(pretrain_model_K='k.pth'), 'path.pretrain_model_K', 'no kernel estimator'),
    ('MANet_s2', lambda o: o['network_G'].update(manet_nff=3), 'network_G.manet_nff', 'has no meaning for MANet_s2'),
    ('MANet_s2', lambda o: o['train'].update(restarts=[3]), 'train.restarts', 'not where the T_period'),
    ('MANet_s2', lambda o: o['train'].update(restart_weights=[1, 1]), 'train.restart_weights', 'one per restart'),
])
def test_stage_keys_without_meaning_are_errors(which, edit, key, message):
    assert_translation_error(_stage(MANET_TRAIN, which), edit, 'train.yml', True, key, message)


@pytest.mark.slow
@pytest.mark.parametrize('which', ['MANet_s1', 'MANet_s2'])
def test_train_py_runs_the_manet_stage1_and_stage2_files_as_they_are(which, tmp_path, paired_folder):
    opt = _stage(MANET_TRAIN, which)
    for ds in opt['datasets'].values():
        ds['dataroot_GT'] = str(paired_folder / 'hr')
    proc = run_entry('train.py', ['-opt', str(write_options(tmp_path / 'train.yml', opt))], root=tmp_path)
    log = proc.stdout + proc.stderr
    metric = '# kernel_psnr:' if which == 'MANet_s1' else '# psnr:'
    assert 'MMSR-style option file' in log and metric in log, log[-3000:]
    assert (tmp_path / 'experiments/manet_train/models/net_g_4.pth').is_file()


@pytest.mark.slow
def test_train_py_runs_the_manet_stage3_file_as_it_is(tmp_path, paired_folder):
    from ssr.archs.manet_arch import MANetEstimator, MANetSR

    torch.manual_seed(0)
    torch.save(MANetEstimator(kernel_size=11, nc=(8, 16), nb=1).state_dict(), tmp_path / 'k.pth')
    torch.save(MANetSR(nf=8, nb=1, gc=4, kernel_size=11, code_length=6).state_dict(), tmp_path / 'g.pth')
    opt = copy.deepcopy(MANET_TRAIN)
    for ds in opt['datasets'].values():
        ds['dataroot_GT'] = str(paired_folder / 'hr')
    opt['path'].update(pretrain_model_K=str(tmp_path / 'k.pth'), pretrain_model_G=str(tmp_path / 'g.pth'))
    proc = run_entry('train.py', ['-opt', str(write_options(tmp_path / 'train_stage3.yml', opt))], root=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'MMSR-style option file' in log and '# psnr:' in log, log[-3000:]
    assert (tmp_path / 'experiments/manet_train/models/net_g_4.pth').is_file()


DCLS_TRAIN = {  # the layout of DCLS's options/setting1/train/train_setting1_x4.yml, tiny widths and sizes
    'name': 'dcls_train', 'use_tb_logger': False, 'model': 'blind', 'distortion': 'sr', 'scale': 4, 'gpu_ids': None,
    'pca_matrix_path': 'pca_matrix.pth',
    'degradation': {'random_kernel': True, 'ksize': 11, 'code_length': 10, 'sig_min': 0.2, 'sig_max': 4.0,
                    'rate_iso': 1.0, 'random_disturb': False},
    'datasets': {
        'train': {'name': 'tiny', 'mode': 'GT', 'dataroot_GT': 'HR', 'use_shuffle': True, 'n_workers': 0,
                  'batch_size': 2, 'GT_size': 48, 'LR_size': 12, 'use_flip': True, 'use_rot': True, 'color': 'RGB'},
        'val': {'name': 'tiny_val', 'mode': 'LQGT', 'dataroot_GT': 'HR', 'dataroot_LQ': 'LR'}},
    'network_G': {'which_model_G': 'DCLS', 'setting': {'nf': 16, 'nb': 1, 'ng': 1, 'input_para': 16,
                                                       'kernel_size': 11}},
    'path': {'pretrain_model_G': None, 'strict_load': True, 'resume_state': None},
    'train': {'lr_G': 4e-4, 'lr_E': 2e-4, 'lr_scheme': 'MultiStepLR', 'beta1': 0.9, 'beta2': 0.99, 'niter': 4,
              'warmup_iter': -1, 'lr_steps': [2, 3], 'lr_gamma': 0.5, 'eta_min': 1e-7, 'pixel_criterion': 'l1',
              'pixel_weight': 1.0, 'manual_seed': 0, 'val_freq': 4},
    'logger': {'print_freq': 1, 'save_checkpoint_freq': 4},
}


def test_dcls_training_translation():
    opt, notes = translate_mmsr(DCLS_TRAIN, 'train_setting1_x4.yml', is_train=True)
    assert opt['model_type'] == 'BlindSRModel' and opt['network_g']['type'] == 'DCLSNet'
    assert opt['datasets']['train'] == {
        'name': 'tiny', 'type': 'DCLSGTDataset', 'dataroot_gt': 'HR', 'use_shuffle': True, 'num_worker_per_gpu': 0,
        'batch_size_per_gpu': 2, 'gt_size': 48, 'use_hflip': True, 'use_rot': True, 'kernel_size': 11,
        'degradation': {'random_kernel': True, 'sig_min': 0.2, 'sig_max': 4.0, 'rate_iso': 1.0,
                        'random_disturb': False}, 'io_backend': {'type': 'disk'}}
    assert opt['datasets']['val']['type'] == 'PairedImageDataset'
    # DCLS's B_Model: Restorer at lr_G, Estimator at lr_E; L1 on the reformulated kernel + the unweighted pixel loss
    assert opt['train']['optim_g'] == {'type': 'Adam', 'lr': 4e-4, 'betas': [0.9, 0.99], 'weight_decay': 0.0,
                                       'lr_by_prefix': {'Estimator.': 2e-4}}
    assert opt['train']['kernel_opt'] == {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
    assert opt['train']['pixel_opt'] == {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
    assert opt['path'] == {'strict_load_g': True, 'resume_state': None}
    assert any('degradation.code_length: not used' in n for n in notes)


def test_dcls_mode_gt_test_set_uses_the_degradation_block():
    opt = copy.deepcopy(DCLS)
    opt['degradation'].update(random_kernel=False, sig=1.8, ksize=11)
    opt['datasets'] = {'test1': {'name': 'x', 'mode': 'GT', 'dataroot_GT': 'HR'}}
    out, notes = translate_mmsr(opt, 'd.yml', is_train=False)
    assert out['datasets']['test_1'] == {
        'name': 'x', 'type': 'DCLSGTDataset', 'dataroot_gt': 'HR', 'kernel_size': 11,
        'degradation': {'random_kernel': False, 'sig_min': 0.2, 'sig_max': 4.0, 'rate_iso': 1.0,
                        'random_disturb': False, 'sig': 1.8}, 'io_backend': {'type': 'disk'}}
    assert 'degradation -> the DCLSGTDataset sets (kernels, noise)' in notes


@pytest.mark.parametrize('edit, key, message', [
    (lambda o: o['degradation'].update(ksize=21), 'degradation.ksize', 'network_G.setting.kernel_size'),
    (lambda o: o['degradation'].update(stored_kernel=True), 'degradation.stored_kernel', 'has no meaning'),
    (lambda o: o['datasets']['train'].update(LR_size=16), 'datasets.train.LR_size', 'GT_size'),
    (lambda o: o['datasets']['train'].update(mode='LQGT'), 'datasets.train.mode', 'DCLS trains on mode: GT'),
    (lambda o: o['train'].update(kernel_weight=1.0), 'train.kernel_weight', 'DCLS training file'),
    (lambda o: o['path'].update(pretrain_model_K='k.pth'), 'path.pretrain_model_K', 'no kernel estimator'),
])
def test_dcls_training_keys_without_meaning_are_errors(edit, key, message):
    assert_translation_error(copy.deepcopy(DCLS_TRAIN), edit, 'train_setting1_x4.yml', True, key, message)


@pytest.mark.slow
def test_train_py_runs_the_dcls_training_file_as_it_is(tmp_path, paired_folder):
    opt = copy.deepcopy(DCLS_TRAIN)
    opt['datasets']['train']['dataroot_GT'] = str(paired_folder / 'hr')
    opt['datasets']['val'].update(dataroot_GT=str(paired_folder / 'hr'), dataroot_LQ=str(paired_folder / 'lr'))
    proc = run_entry('train.py', ['-opt', str(write_options(tmp_path / 'train_setting1_x4.yml', opt))], root=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'MMSR-style option file' in log and 'l_kernel' in log and '# psnr:' in log, log[-3000:]
    assert 'lr:(4.000e-04,2.000e-04,)' in log  # the Restorer at lr_G, the Estimator at lr_E
    assert (tmp_path / 'experiments/dcls_train/models/net_g_4.pth').is_file()


@pytest.mark.slow
def test_test_py_runs_a_dcls_mode_gt_file_and_scores_its_kernel(tmp_path, paired_folder):
    from ssr.archs.dcls_arch import DCLSNet

    torch.manual_seed(0)
    torch.save(DCLSNet(nf=16, nb=1, ng=1, input_para=16, kernel_size=11).state_dict(), tmp_path / 'dcls.pth')
    opt = copy.deepcopy(DCLS)
    opt['network_G']['setting']['nf'] = 16
    opt['gpu_ids'] = None
    opt['degradation'].update(random_kernel=False, sig=1.8, ksize=11)
    opt['datasets'] = {'test1': {'name': 'gt', 'mode': 'GT', 'dataroot_GT': str(paired_folder / 'hr')}}
    opt['path']['pretrain_model_G'] = str(tmp_path / 'dcls.pth')
    proc = run_entry('test.py', ['-opt', str(write_options(tmp_path / 'test_dcls.yml', opt))], root=tmp_path)
    log = proc.stdout + proc.stderr
    # DCLS's estimate scored against its own reformulated LR-space target, under its own name
    assert 'DCLSGTDataset' in log and '# psnr:' in log and '# kernel_lr_psnr:' in log, log[-3000:]
    assert '# kernel_psnr:' not in log


def test_lr_by_prefix_must_name_parameters(tmp_path):
    from basicsr.models import build_model

    opt, _ = translate_mmsr(DCLS_TRAIN, 'train_setting1_x4.yml', is_train=True)
    opt = copy.deepcopy(dict(opt))
    opt.update(dist=False, rank=0, world_size=1, is_train=True, num_gpu=0, root_path=str(tmp_path),
               path={'log': str(tmp_path), 'models': str(tmp_path), 'training_states': str(tmp_path)})
    opt['train']['optim_g']['lr_by_prefix'] = {'Estimatr.': 1e-4}
    with pytest.raises(ValueError, match="lr_by_prefix: no trainable parameter of network_g starts with 'Estimatr.'"):
        build_model(opt)


def test_load_options_translates_and_says_so(tmp_path, capsys):
    opt = load_options(write_options(tmp_path / 'm.yml', MANET), is_train=False, root=tmp_path)
    assert opt['network_g']['type'] == 'MANetBlindSR' and opt['path']['pretrain_network_g'] == str(
        tmp_path / 'manet.pth')
    assert 'MMSR-style option file' in capsys.readouterr().err


@pytest.mark.slow
def test_test_py_runs_the_mmsr_file_as_it_is(tmp_path, paired_folder):
    from ssr.archs.manet_arch import MANetBlindSR

    torch.manual_seed(0)
    net = MANetBlindSR(nf=8, nb=1, gc=4, kernel_size=11, code_length=6, manet_nf=8)
    torch.save(net.state_dict(), tmp_path / 'manet.pth')  # a raw state_dict, as the official releases
    opt = copy.deepcopy(MANET)
    opt['datasets']['test1'].update(dataroot_GT=str(paired_folder / 'hr'), dataroot_LQ=str(paired_folder / 'lr'))
    opt['path']['pretrain_model_G'] = str(tmp_path / 'manet.pth')
    proc = run_entry('test.py', ['-opt', str(write_options(tmp_path / 'test_stage3.yml', opt))], root=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'MMSR-style option file' in log and '# psnr:' in log
    assert len(list((tmp_path / 'results' / 'manet_mmsr' / 'visualization' / 'tiny').glob('*.png'))) == 4


@pytest.mark.slow
def test_test_py_runs_a_mode_gt_file_as_it_is(tmp_path, paired_folder):
    from ssr.archs.manet_arch import MANetBlindSR

    torch.manual_seed(0)
    net = MANetBlindSR(nf=8, nb=1, gc=4, kernel_size=11, code_length=6, manet_nf=8)
    torch.save(net.state_dict(), tmp_path / 'manet.pth')
    opt = copy.deepcopy(MANET)
    opt['datasets'] = {'test1': {'name': 'gt', 'mode': 'GT', 'dataroot_GT': str(paired_folder / 'hr'),
                                 'dataroot_LQ': None}}
    opt.update(sv_mode=1, test_noise=True)
    opt['path']['pretrain_model_G'] = str(tmp_path / 'manet.pth')
    proc = run_entry('test.py', ['-opt', str(write_options(tmp_path / 'test_stage3.yml', opt))], root=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'MMSRGTDataset' in log and '# psnr:' in log and '# kernel_psnr:' in log, log[-3000:]
    assert len(list((tmp_path / 'results' / 'manet_mmsr' / 'visualization' / 'gt').glob('*.png'))) == 4


def test_convert_options_writes_the_translation(tmp_path):
    convert = load_script('convert_options')
    src = write_options(tmp_path / 'd.yml', DCLS)
    assert convert.main([str(src), str(tmp_path / 'out.yml')]) == 0
    written = yaml.safe_load((tmp_path / 'out.yml').read_text())
    assert written['network_g']['type'] == 'DCLSNet' and written['datasets']['test_2']['type'] == 'SingleImageDataset'
    assert convert.main([str(src), str(tmp_path / 'out.yml')]) == 1  # refuses to overwrite
    train = write_options(tmp_path / 'train_stage3.yml', MANET_TRAIN)
    assert convert.main([str(train), str(tmp_path / 'train.yml')]) == 0
    assert yaml.safe_load((tmp_path / 'train.yml').read_text())['train']['optim_g']['type'] == 'Adam'
    plain = write_options(tmp_path / 'plain.yml', {'name': 'x', 'network_g': {'type': 'NBSR'}})
    assert convert.main([str(plain), str(tmp_path / 'p.yml')]) == 2 and not (tmp_path / 'p.yml').exists()


def _ikc_files(root='HR', lq='LR') -> dict:
    """The layout of IKC's options/test/test_{SFTMD,Predictor,Corrector}.yml, tiny widths."""
    common = {'suffix': None, 'distortion': 'sr', 'scale': 4, 'crop_border': None, 'gpu_ids': None}
    sets = {'test_1': {'name': 'tiny', 'mode': 'LQGTker', 'dataroot_GT': root, 'dataroot_LQ': lq}}
    net = {'in_nc': 3, 'out_nc': 3, 'nf': 8, 'nb': 1, 'upscale': 4, 'code_length': 4}
    return {
        'SFTMD': {'name': 'SFTMDx4_test', 'model': 'sftmd', **common, 'kernel_size': 21, 'code_length': 4,
                  'sig_min': 0.2, 'sig_max': 4.0, 'sig': 2.6,
                  'datasets': {'test_1': {**sets['test_1'], 'dataroot_LQ': None}},
                  'network_G': {'which_model_G': 'SFTMD', **net}, 'path': {'pretrain_model_G': 'sftmd.pth'}},
        'Predictor': {'name': 'Predictorx4_test', 'model': 'predictor', **common, 'step': 2, 'datasets': sets,
                      'network_G': {'which_model_G': 'Predictor', **net}, 'path': {'pretrain_model_G': 'p.pth'}},
        'Corrector': {'name': 'Correctorx4_test', 'model': 'corrector', **common, 'step': 2, 'datasets': sets,
                      'network_G': {'which_model_G': 'Corrector', **net}, 'path': {'pretrain_model_G': 'c.pth'}},
    }


def test_ikc_three_files_become_one_ikcnet_file():
    from ssr.utils.mmsr_options import translate_ikc

    opts = _ikc_files()
    opt, notes = translate_ikc(opts, {part: f'{part}.yml' for part in opts})
    assert opt['model_type'] == 'BlindSRModel' and opt['name'] == 'Predictorx4_test'
    assert opt['network_g'] == {'type': 'IKCNet', 'in_nc': 3, 'code_len': 4, 'scale': 4, 'nb': 1, 'nf': 8,
                                'steps': 2, 'predictor_path': 'p.pth', 'sftmd_path': 'sftmd.pth',
                                'corrector_path': 'c.pth'}
    assert opt['datasets']['test_1']['type'] == 'PairedImageDataset'  # the Predictor file's sets, as test_IKC.py
    assert "SFTMD: datasets not used (test_IKC.py tests on the Predictor file's sets)" in notes


@pytest.mark.parametrize('edit, part, key, message', [
    (lambda o: o['Corrector']['network_G'].update(code_length=5), 'Predictor', 'network_G.code_length', 'disagree'),
    (lambda o: o['SFTMD']['network_G'].update(which_model_G='Predictor'), 'SFTMD', 'network_G.which_model_G',
     'expected the SFTMD file'),
    (lambda o: o['Corrector'].update(step=None, made_up=1), 'Corrector', 'made_up', 'has no meaning'),
])
def test_ikc_files_that_do_not_fit_are_errors(edit, part, key, message):
    from ssr.utils.mmsr_options import translate_ikc

    opts = _ikc_files()
    edit(opts)
    with pytest.raises(OptionError, match=message) as info:
        translate_ikc(opts, {p: f'{p}.yml' for p in opts})
    assert info.value.key == key and f'{part}.yml' in str(info.value)


def test_an_ikc_test_set_without_lr_images_is_synthesised_with_fixed_seeds():
    from ssr.utils.mmsr_options import translate_ikc

    opts = _ikc_files()
    opts['Predictor']['datasets']['test_1']['dataroot_LQ'] = None
    opts['Predictor'].update(kernel_size=11, sig_max=3.0)
    opt, notes = translate_ikc(opts, {p: f'{p}.yml' for p in opts})
    assert opt['datasets']['test_1'] == {'name': 'tiny', 'type': 'IKCGTDataset', 'dataroot_gt': 'HR',
                                         'kernel_size': 11, 'sig_min': 0.2, 'sig_max': 3.0,
                                         'io_backend': {'type': 'disk'}}
    assert 'kernel_size -> the IKCGTDataset sets (random isotropic kernels)' in notes


def _ikc_train_files(hr='HR', sftmd_weights='experiments/sftmd/models/net_g_latest.pth') -> dict:
    """The layout of IKC's options/train/train_{SFTMD,Predictor,Corrector}.yml, tiny widths."""
    common = {'use_tb_logger': False, 'distortion': 'sr', 'scale': 4, 'gpu_ids': None, 'kernel_size': 11,
              'code_length': 4, 'sig_min': 0.2, 'sig_max': 4.0, 'sig': 2.6}
    sets = {'train': {'name': 'tiny', 'mode': 'LQGTker', 'dataroot_GT': hr, 'dataroot_LQ': None, 'use_shuffle': True,
                      'n_workers': 0, 'batch_size': 2, 'GT_size': 48, 'LR_size': 12, 'use_flip': True,
                      'use_rot': True, 'color': 'RGB'},
            'val': {'name': 'tiny_val', 'mode': 'LQGTker', 'dataroot_GT': hr, 'dataroot_LQ': None}}
    net = {'in_nc': 3, 'out_nc': 3, 'nf': 64, 'nb': 1, 'upscale': 4, 'code_length': 4}
    train = {'lr_G': 1e-4, 'beta1': 0.9, 'beta2': 0.99, 'niter': 2, 'warmup_iter': -1, 'eta_min': 1e-7,
             'pixel_weight': 1.0, 'manual_seed': 0, 'val_freq': 2}
    no_scheme = {'lr_scheme': None, 'T_period': None, 'restarts': None, 'restart_weights': None}
    path = {'pretrain_model_G': None, 'strict_load': True, 'resume_state': None}

    def part(which, name, lr):
        return {'name': name, 'model': which.lower(), **common, 'step': 2, 'datasets': copy.deepcopy(sets),
                'network_G': {'which_model_G': which, **net, 'nf': 8}, 'path': dict(path),
                'train': {**train, **no_scheme, 'lr_G': lr, 'pixel_criterion': 'l2'},
                'logger': {'print_freq': 1, 'save_checkpoint_freq': 2}}
    return {
        'SFTMD': {'name': 'sftmd', 'model': 'sftmd', **common, 'datasets': copy.deepcopy(sets),
                  'network_G': {'which_model_G': 'SFTMD', **net}, 'path': dict(path),
                  'train': {**train, 'lr_scheme': 'CosineAnnealingLR_Restart', 'T_period': [1, 1], 'restarts': [1],
                            'restart_weights': [1], 'pixel_criterion': 'l1'},
                  'logger': {'print_freq': 1, 'save_checkpoint_freq': 2},
                  'sftmd': {'gpu_ids': None, 'is_train': False, 'scale': 4, 'model': 'sftmd',
                            'datasets': {'test': {'name': 'x', 'mode': 'LQGTker', 'dataroot_GT': hr,
                                                  'dataroot_LQ': hr}},
                            'network_G': {'which_model_G': 'SFTMD', **net},
                            'path': {'results_root': 'r', 'pretrain_model_G': sftmd_weights, 'strict_load': True}}},
        'Predictor': part('Predictor', 'ikc_pc', 1e-4),
        'Corrector': part('Corrector', 'corrector', 5e-5),
    }


def test_ikc_sftmd_training_translation():
    opt, notes = translate_mmsr(_ikc_train_files()['SFTMD'], 'train_SFTMD.yml', is_train=True)
    assert opt['model_type'] == 'IKCModel'
    assert opt['network_g'] == {'type': 'SFTMD', 'in_nc': 3, 'code_len': 4, 'scale': 4, 'nb': 1}
    assert opt['datasets']['train'] == {
        'name': 'tiny', 'type': 'IKCGTDataset', 'dataroot_gt': 'HR', 'use_shuffle': True, 'num_worker_per_gpu': 0,
        'batch_size_per_gpu': 2, 'gt_size': 48, 'use_hflip': True, 'use_rot': True, 'kernel_size': 11,
        'sig_min': 0.2, 'sig_max': 4.0, 'io_backend': {'type': 'disk'}}
    assert opt['datasets']['val']['type'] == 'IKCGTDataset' and 'gt_size' not in opt['datasets']['val']
    train = opt['train']
    assert train['pca_fit'] == {'num_kernels': 30000, 'kernel_size': 11, 'sig_min': 0.2, 'sig_max': 4.0}
    assert train['pixel_opt']['type'] == 'L1Loss' and train['scheduler']['type'] == 'CosineAnnealingRestartLR'
    # train_SFTMD.py validates on RGB PSNR with `scale` pixels cropped
    assert opt['val']['metrics'] == {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False}}
    assert any(n.startswith('sftmd: not used here') for n in notes)


def test_ikc_training_files_become_one_ikcmodel_file(tmp_path):
    from ssr.utils.mmsr_options import translate_ikc

    weights = tmp_path / 'experiments/sftmd/models/net_g_latest.pth'
    opts = _ikc_train_files(sftmd_weights=str(weights))
    with pytest.raises(OptionError, match='found no pca_matrix.pth of this SFTMD') as info:
        translate_ikc(opts, {p: f'{p}.yml' for p in opts})
    assert info.value.key == 'sftmd.path.pretrain_model_G'
    weights.parent.mkdir(parents=True)
    (tmp_path / 'experiments/sftmd/pca_matrix.pth').write_bytes(b'')  # where ssr's SFTMD run writes it
    opt, notes = translate_ikc(opts, {p: f'{p}.yml' for p in opts})
    assert opt['model_type'] == 'IKCModel' and opt['name'] == 'ikc_pc'
    assert opt['network_g'] == {'type': 'IKCNet', 'in_nc': 3, 'code_len': 4, 'scale': 4, 'nb': 1, 'nf': 8,
                                'steps': 2, 'sftmd_path': str(weights)}
    train = opt['train']
    assert train['optim_g']['lr'] == 1e-4 and train['optim_c']['lr'] == 5e-5  # each part from its own file
    assert train['code_opt']['type'] == train['corrector_code_opt']['type'] == 'MSELoss'
    assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': [], 'gamma': 0.5}  # lr_scheme: ~
    assert opt['pca_matrix_path'] == str(tmp_path / 'experiments/sftmd/pca_matrix.pth')
    assert opt['datasets']['train']['type'] == 'IKCGTDataset' and train['total_iter'] == 2


@pytest.mark.parametrize('edit, part, key, message', [
    (lambda o: o['SFTMD'].pop('sftmd'), 'SFTMD', 'sftmd', 'loads the trained SFTMD'),
    (lambda o: o['Corrector']['train'].update(lr_scheme='MultiStepLR', lr_steps=[1]), 'Corrector',
     'train.lr_scheme', 'schedule their learning rates differently'),
    (lambda o: o['Corrector']['network_G'].update(in_nc=1), 'Predictor', 'network_G.in_nc', 'disagree'),
    (lambda o: o['Corrector']['network_G'].update(code_length=5), 'Corrector', 'code_length',
     '4 != network_G.code_length 5'),
    (lambda o: o['Predictor']['datasets']['val'].update(mode='LQGT'), 'Predictor', 'datasets.val.mode',
     'LQGTker'),
    (lambda o: o['Predictor']['train'].update(kernel_weight=1), 'Predictor', 'train.kernel_weight',
     'no meaning in ssr for an IKC training file'),
    (lambda o: o['Corrector']['train'].update(kernel_criterion='l1'), 'Corrector', 'train.kernel_criterion',
     'IKC training file'),
])
def test_ikc_training_files_that_do_not_fit_are_errors(tmp_path, edit, part, key, message):
    from ssr.utils.mmsr_options import translate_ikc

    weights = tmp_path / 'models/net_g_latest.pth'
    weights.parent.mkdir()
    (tmp_path / 'pca_matrix.pth').write_bytes(b'')
    opts = _ikc_train_files(sftmd_weights=str(weights))
    edit(opts)
    with pytest.raises(OptionError, match=message) as info:
        translate_ikc(opts, {p: f'{p}.yml' for p in opts})
    assert info.value.key == key and f'{part}.yml' in str(info.value)


def test_one_ikc_training_file_of_the_second_stage_says_how_to_merge():
    with pytest.raises(OptionError, match='convert_options.py --ikc train_SFTMD.yml train_Predictor.yml'):
        translate_mmsr(_ikc_train_files()['Predictor'], 'train_Predictor.yml', is_train=True)


@pytest.mark.slow
def test_train_py_runs_ikcs_two_training_stages_and_test_py_the_result(tmp_path, paired_folder):
    hr = str(paired_folder / 'hr')
    weights = tmp_path / 'experiments/sftmd/models/net_g_latest.pth'
    opts = _ikc_train_files(hr, str(weights))
    files = {p: write_options(tmp_path / f'train_{p}.yml', opts[p]) for p in opts}
    proc = run_entry('train.py', ['-opt', str(files['SFTMD'])], root=tmp_path)  # train_SFTMD.py
    log = proc.stdout + proc.stderr
    assert 'IKC PCA basis (121, 4) fitted' in log and 'l_pix' in log and '# psnr:' in log, log[-3000:]
    assert weights.is_file() and (tmp_path / 'experiments/sftmd/pca_matrix.pth').is_file()
    merged = tmp_path / 'ikc_train.yml'
    assert load_script('convert_options').main(['--ikc', *(str(files[p]) for p in ('SFTMD', 'Predictor',
                                                                                   'Corrector')), str(merged)]) == 0
    proc = run_entry('train.py', ['-opt', str(merged)], root=tmp_path)  # train_IKC.py
    log = proc.stdout + proc.stderr
    assert 'l_code:' in log and 'l_code_c:' in log and '# psnr:' in log, log[-3000:]
    trained = tmp_path / 'experiments/ikc_pc/models/net_g_latest.pth'
    test = {'name': 'ikc_test', 'model_type': 'BlindSRModel', 'scale': 4, 'num_gpu': 0,
            'network_g': {'type': 'IKCNet', 'code_len': 4, 'nb': 1, 'nf': 8, 'steps': 2},
            'path': {'pretrain_network_g': str(trained)},
            'datasets': {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': hr,
                                    'dataroot_lq': str(paired_folder / 'lr'), 'io_backend': {'type': 'disk'}}},
            'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}}}
    proc = run_entry('test.py', ['-opt', str(write_options(tmp_path / 'test.yml', test))], root=tmp_path)
    assert '# psnr:' in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]


def test_one_ikc_file_says_how_to_run_the_three():
    with pytest.raises(OptionError, match='convert_options.py --ikc'):
        translate_mmsr(_ikc_files()['Corrector'], 'test_Corrector.yml', is_train=False)


@pytest.mark.slow
def test_test_py_runs_ikc_files_merged_by_convert_options(tmp_path, paired_folder):
    from ssr.archs.ikc_arch import SFTMD, IKCCorrector, IKCPredictor

    torch.manual_seed(0)
    for name, net in (('sftmd', SFTMD(code_len=4, nb=1)), ('p', IKCPredictor(code_len=4, nf=8)),
                      ('c', IKCCorrector(code_len=4, nf=8))):
        torch.save(net.state_dict(), tmp_path / f'{name}.pth')  # raw state_dicts, as IKC saves them
    opts = _ikc_files(str(paired_folder / 'hr'), str(paired_folder / 'lr'))
    for part, opt in opts.items():
        opt['path']['pretrain_model_G'] = str(tmp_path / Path(opt['path']['pretrain_model_G']).name)
    files = [str(write_options(tmp_path / f'test_{part}.yml', opts[part])) for part in ('SFTMD', 'Predictor',
                                                                                          'Corrector')]
    assert load_script('convert_options').main(['--ikc', *files, str(tmp_path / 'ikc.yml')]) == 0
    proc = run_entry('test.py', ['-opt', str(tmp_path / 'ikc.yml')], root=tmp_path)
    log = proc.stdout + proc.stderr
    assert '# psnr:' in log, log[-3000:]
    assert len(list((tmp_path / 'results' / 'Predictorx4_test' / 'visualization' / 'tiny').glob('*.png'))) == 4


def test_an_ikcnet_test_file_needs_every_part(tmp_path):
    from ssr.utils.mmsr_options import translate_ikc

    opts = _ikc_files(str(tmp_path), str(tmp_path))
    for opt in opts.values():
        (tmp_path / opt['path']['pretrain_model_G']).write_bytes(b'')
        opt['path']['pretrain_model_G'] = str(tmp_path / opt['path']['pretrain_model_G'])
    opts['Corrector']['path']['pretrain_model_G'] = None
    opt, _ = translate_ikc(opts, {p: f'{p}.yml' for p in opts})
    opt = yaml.safe_load(yaml.dump(json.loads(json.dumps(opt))))  # plain dicts
    with pytest.raises(OptionError, match='needs the weights of every part: corrector_path missing') as info:
        load_options(write_options(tmp_path / 'ikc.yml', opt), is_train=False, root=tmp_path)
    assert info.value.key == 'network_g.corrector_path'


@pytest.mark.slow
def test_a_translated_dcls_run_resumes_exactly(tmp_path, paired_folder):
    import re

    def run(name, niter, *extra):
        opt = copy.deepcopy(DCLS_TRAIN)
        opt['name'] = name
        opt['datasets']['train']['dataroot_GT'] = str(paired_folder / 'hr')
        opt['datasets']['val'].update(dataroot_GT=str(paired_folder / 'hr'), dataroot_LQ=str(paired_folder / 'lr'))
        opt['train'].update(niter=niter, val_freq=100)
        opt['logger'] = {'print_freq': 1, 'save_checkpoint_freq': 2}
        proc = run_entry('train.py', ['-opt', str(write_options(tmp_path / f'{name}.yml', opt)), *extra],
                         root=tmp_path)
        lines = re.finditer(r'iter: +(\d+), (lr:\([^)]*\))\].*?(l_kernel: \S+ l_pix: \S+)', proc.stdout + proc.stderr)
        return {int(m[1]): f'{m[2]} {m[3]}' for m in lines}  # iteration -> learning rates and losses

    full = run('dcls_full', 4)
    run('dcls_part', 2)  # checkpoint at iteration 2: the end of an epoch (4 images, batch 2)
    resumed = run('dcls_part', 4, '--auto_resume')
    assert set(full) == {1, 2, 3, 4} and set(resumed) == {3, 4}
    assert {i: full[i] for i in (3, 4)} == resumed  # both learning-rate groups and every loss as uninterrupted


@pytest.mark.slow
def test_a_translated_ikc_correction_run_resumes_exactly(tmp_path, paired_folder):
    import re

    hr = str(paired_folder / 'hr')
    opts = _ikc_train_files(hr, str(tmp_path / 'experiments/sftmd/models/net_g_latest.pth'))
    opts['SFTMD']['train']['niter'] = 1
    run_entry('train.py', ['-opt', str(write_options(tmp_path / 'train_SFTMD.yml', opts['SFTMD']))], root=tmp_path)
    files = [str(write_options(tmp_path / f'train_{p}.yml', opts[p])) for p in ('SFTMD', 'Predictor', 'Corrector')]

    def run(name, niter, *extra):
        for p in ('Predictor', 'Corrector'):
            opts[p]['name'], opts[p]['train']['niter'] = name, niter
            opts[p]['train']['val_freq'] = 100
        for p, f in zip(('SFTMD', 'Predictor', 'Corrector'), files):
            write_options(Path(f), opts[p])
        merged = tmp_path / f'{name}_{niter}.yml'
        assert load_script('convert_options').main(['--ikc', *files, str(merged), '--overwrite']) == 0
        proc = run_entry('train.py', ['-opt', str(merged), *extra], root=tmp_path)
        lines = re.finditer(r'iter: +(\d+), lr:\([^)]*\)\].*?(l_code: \S+ l_code_c: \S+)', proc.stdout + proc.stderr)
        return {int(m[1]): m[2] for m in lines}  # iteration -> both parts' losses

    full = run('ikc_full', 4)
    run('ikc_part', 2)  # checkpoint at iteration 2: the end of an epoch (4 images, batch 2)
    resumed = run('ikc_part', 4, '--auto_resume')
    assert set(full) == {1, 2, 3, 4} and set(resumed) == {3, 4}
    assert {i: full[i] for i in (3, 4)} == resumed  # the Predictor's and the Corrector's losses as uninterrupted
