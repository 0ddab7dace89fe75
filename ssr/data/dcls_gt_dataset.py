"""HR images degraded on the fly as DCLS degrades them: the ``mode: GT`` sets of DCLS option files.

DCLS (``codes/config/DCLS/train.py`` with ``SRMDPreprocessing``) blurs each HR crop with one random kernel centred at
k // 2 (reflect padding), downsamples with MATLAB bicubic, optionally adds Gaussian noise, and trains its kernel
estimator towards the reformulated LR-space kernel (:func:`ssr.ops.dcls_degradation.reformulated_kernel`). This
dataset makes the same samples per image in a data worker and returns that target as ``kernel_lr``, which
``BlindSRModel`` uses with ``train.kernel_opt`` for a one-network blind SR that returns a kernel (``DCLSNet``).
"""
from __future__ import annotations

from typing import Any

import torch
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY

from ssr.data.seeded_hr_dataset import SeededHRDataset
from ssr.ops.dcls_degradation import dcls_random_kernels, dcls_stable_kernels, reformulated_kernel
from ssr.ops.sv_blur import uniform_blur_downsample

DEGRADATION_KEYS = ('random_kernel', 'sig', 'sig_min', 'sig_max', 'rate_iso', 'random_disturb', 'noise',
                    'noise_high')


@DATASET_REGISTRY.register()
class DCLSGTDataset(SeededHRDataset):
    """HR images -> DCLS kernel (random or fixed) -> reflect-padded blur -> MATLAB bicubic x1/s -> Gaussian noise.

    Option keys:
        dataroot_gt (str): HR folder or BasicSR LMDB; images are mod-cropped to the scale.
        io_backend (dict, optional): ``{type: disk | lmdb}``; guessed from ``dataroot_gt``.
        meta_info_file (str, optional): list of HR files relative to ``dataroot_gt`` (disk only).
        scale (int): s.
        kernel_size (int): k, odd (DCLS's ``ksize``; default 21).
        degradation (dict): DCLS's keys: ``random_kernel`` (default true; false = the fixed isotropic ``sig``),
            ``sig`` (default 2.6), ``sig_min`` / ``sig_max`` (default 0.2 / 4.0), ``rate_iso`` (default 1),
            ``random_disturb`` (default false), ``noise`` (default false) with ``noise_high`` (Gaussian std in [0, 1]
            image units, added to every LR image as DCLS does).
        gt_size (int, optional): random HR crop side (training), a multiple of the scale; ``use_hflip``,
            ``use_rot`` (bool): flips / rotations of the crop. Without it the whole image is used (test sets).
        seed (int): seeds the per-sample draws (default 0); samples follow ``(seed, epoch, index)`` (``set_epoch``),
            so a resumed run sees the same data and a test set is the same in every run.

    Returns (per sample):
        ``{'lq': (3, h, w), 'gt': (3, s*h, s*w), 'kernel_lr': (1, k, k) the reformulated kernel (summing to 1),
        'lq_path', 'gt_path'}``; float32 RGB in [0, 1] (the LR is not quantised, as in DCLS's training).
    """

    OPTION_KEYS = ('dataroot_gt', 'io_backend', 'meta_info_file', 'scale', 'kernel_size', 'degradation', 'seed',
                   'gt_size', 'use_hflip', 'use_rot')

    def __init__(self, opt: dict[str, Any]):
        super().__init__(opt)
        label = self.label
        self.kernel_size = int(opt.get('kernel_size', 21))
        deg = dict(opt.get('degradation') or {})
        unknown = sorted(set(deg) - set(DEGRADATION_KEYS))
        if unknown:
            raise ValueError(f'{label}.degradation: unknown key(s) {unknown}; allowed: {list(DEGRADATION_KEYS)}')
        self.random_kernel = bool(deg.get('random_kernel', True))
        self.sig = float(deg.get('sig', 2.6))
        self.kernel_args = {'kernel_size': self.kernel_size, 'sig_min': float(deg.get('sig_min', 0.2)),
                            'sig_max': float(deg.get('sig_max', 4.0)), 'rate_iso': float(deg.get('rate_iso', 1.0)),
                            'random_disturb': bool(deg.get('random_disturb', False))}
        self.noise_high = float(deg.get('noise_high') or 0.0) if deg.get('noise') else 0.0
        try:  # check the settings now, not at the first sample
            dcls_random_kernels(1, **self.kernel_args) if self.random_kernel else dcls_stable_kernels(
                1, self.kernel_size, self.sig)
        except ValueError as e:
            raise ValueError(f'{label}.degradation: {e}') from None
        if self.noise_high < 0:
            raise ValueError(f'{label}.degradation.noise_high must be >= 0, got {self.noise_high}')
        if self.gt_size is not None and self.gt_size // self.scale < self.kernel_size:
            raise ValueError(f'{label}: gt_size {self.gt_size} gives LR crops smaller than the kernel '
                             f'({self.kernel_size}); the reformulated kernel needs LR sides >= k')

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, k = self.scale, self.kernel_size
        gt, generator, path = self.hr_sample(index, min_lr_side=k)
        kernel = (dcls_random_kernels(1, generator=generator, **self.kernel_args) if self.random_kernel
                  else dcls_stable_kernels(1, k, self.sig))
        blurred = uniform_blur_downsample(gt[None], kernel, 1)[0]  # reflect padding, full resolution
        lq_blurred, lq_clean = imresize(blurred, 1 / s), imresize(gt, 1 / s)
        lq = lq_blurred
        if self.noise_high:
            noise = torch.randn(lq.shape, generator=generator, dtype=lq.dtype) * self.noise_high
            lq = (lq + noise).clamp(0, 1)
        target = reformulated_kernel(lq_blurred[None], lq_clean[None], k)[0]
        return {'lq': lq.float(), 'gt': gt, 'kernel_lr': target, 'lq_path': path, 'gt_path': path}
