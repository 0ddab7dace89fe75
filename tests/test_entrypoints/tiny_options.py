"""Tiny option trees for the entry-point tests (a 1-block RRDBNet with 8 features on 32-pixel crops).

Training uses ssr's ``SVSRModel`` (BasicSR's ``SRModel`` recipe on ssr's base model: AdamW, exact resumption, DDP
on CPU); testing uses basicsr's own, unmodified ``SRModel``, so both kinds of model are run through the entry points.
"""
from __future__ import annotations

from pathlib import Path


def tiny_train_options(data: Path, name: str, total_iter: int = 20, save_freq: int = 10) -> dict:
    return {
        'name': name, 'model_type': 'SVSRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 123,
        'datasets': {
            'train': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(data / 'hr'),
                      'dataroot_lq': str(data / 'lr'), 'io_backend': {'type': 'disk'}, 'gt_size': 32,
                      'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                      'dataset_enlarge_ratio': 1},
        },
        'network_g': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                      'num_grow_ch': 4, 'scale': 4},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0.9, 'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 0.0,
                                                'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }


def tiny_test_options(data: Path, name: str, weights: Path) -> dict:
    return {
        'name': name, 'model_type': 'SRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(data / 'hr'),
                                'dataroot_lq': str(data / 'lr'), 'io_backend': {'type': 'disk'}}},
        'network_g': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                      'num_grow_ch': 4, 'scale': 4},
        'path': {'pretrain_network_g': str(weights), 'strict_load_g': True, 'param_key_g': 'params_ema'},
        'val': {'save_img': True, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}},
    }
