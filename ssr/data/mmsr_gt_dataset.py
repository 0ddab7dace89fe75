"""HR test images degraded on the fly with fixed MMSR kernel settings: the ``mode: GT`` test sets of MANet's files.

The dataset an MMSR test file's ``mode: GT`` set becomes (:mod:`ssr.utils.mmsr_options`); usable on its own too.
"""
from __future__ import annotations

from typing import Any

import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from ssr.data.image_io import hwc_to_chw_tensor
from ssr.data.image_source import ImageSource, backend_of
from ssr.ops.jpeg import jpeg_compress
from ssr.ops.kernel_field import kernel_field_from_params
from ssr.ops.mmsr_kernels import MMSRKernelSpec, mmsr_kernel_params, ssr_field_to_manet
from ssr.ops.noise import add_gaussian_noise
from ssr.ops.sv_blur import sv_blur_downsample, uniform_blur_downsample

KERNEL_KEYS = ('sig', 'sig1', 'sig2', 'theta', 'rate_iso', 'sv_mode')


@DATASET_REGISTRY.register()
class MMSRGTDataset(data.Dataset):
    """HR images -> fixed (seeded) blur of an MMSR kernel setting -> s-fold subsampling -> noise -> JPEG -> 8 bit.

    With ``convention: mmsr`` (the default) the LR is made as MANet's ``SRMDPreprocessing`` makes it: the kernels in
    MANet's top-left layout, replicate padding, ``[::s]`` subsampling, so MANet / DCLS networks see the LR grid they
    were trained on (their SR output aligns with the HR image). ``convention: ssr`` uses ssr's layout and reflect
    padding (ssr's own networks' grid). The returned ``kernel`` is in ssr's layout either way, the layout
    ``MANetBlindSR(kernel_layout='ssr')`` and ssr's estimators return, so kernel metrics compare like with like.

    Option keys:
        dataroot_gt (str): HR folder or BasicSR LMDB; images are mod-cropped to the scale.
        io_backend (dict, optional): ``{type: disk | lmdb}``; guessed from ``dataroot_gt``.
        meta_info_file (str, optional): list of HR files relative to ``dataroot_gt`` (disk only).
        scale (int): s.
        kernel_size (int): k, odd (default 21).
        kernel (dict): MANet's keys ``sig``, ``sig1``, ``sig2``, ``theta``, ``rate_iso``, ``sv_mode``
            (:class:`ssr.ops.mmsr_kernels.MMSRKernelSpec`: ``sig`` a standard deviation, ``sig1`` / ``sig2``
            covariance eigenvalues in px²).
        noise_level (float): Gaussian noise std in 0-255 units added to every LR image (0 = none, the default).
        jpeg_quality (int or null): JPEG quality of every LR image (null = none, the default).
        seed (int): seeds the per-image draws (``rate_iso`` in (0, 1), ``sv_mode: 5``, the noise); default 0.
        convention (str): ``mmsr`` (default) or ``ssr``, see above.

    Returns (per sample):
        ``{'lq': (3, h, w), 'gt': (3, s*h, s*w), 'kernel': (k*k, h, w) summing to 1, 'lq_path', 'gt_path'}``;
        float32 RGB in [0, 1], ``lq`` quantised to multiples of 1/255 as MANet's synthesis does. Sample i is the same
        in every run (its generator is seeded from ``seed`` and i).
    """

    OPTION_KEYS = ('dataroot_gt', 'io_backend', 'meta_info_file', 'scale', 'kernel_size', 'kernel', 'noise_level',
                   'jpeg_quality', 'seed', 'convention')

    def __init__(self, opt: dict[str, Any]):
        super().__init__()
        self.opt = opt
        label = f"datasets.{opt.get('phase', 'test')} ({opt.get('name', '?')})"
        if not opt.get('dataroot_gt'):
            raise ValueError(f'{label}: dataroot_gt is required (the HR images to degrade)')
        self.scale, self.kernel_size = int(opt.get('scale', 4)), int(opt.get('kernel_size', 21))
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f'{label}: kernel_size must be odd and >= 3, got {self.kernel_size}')
        kernel = dict(opt.get('kernel') or {})
        unknown = sorted(set(kernel) - set(KERNEL_KEYS))
        if unknown:
            raise ValueError(f'{label}.kernel: unknown key(s) {unknown}; allowed: {list(KERNEL_KEYS)}')
        try:
            self.spec = MMSRKernelSpec(**{k: (int(v) if k == 'sv_mode' else float(v)) for k, v in kernel.items()})
        except ValueError as e:
            raise ValueError(f'{label}.kernel: {e}') from None
        self.noise_level = float(opt.get('noise_level') or 0.0)
        self.jpeg_quality = opt.get('jpeg_quality')
        if self.noise_level < 0 or (self.jpeg_quality is not None and not 1 <= int(self.jpeg_quality) <= 100):
            raise ValueError(f'{label}: noise_level must be >= 0 and jpeg_quality in [1, 100] or null, got '
                             f'{self.noise_level}, {self.jpeg_quality}')
        self.seed = int(opt.get('seed', 0))
        self.convention = opt.get('convention', 'mmsr')
        if self.convention not in ('mmsr', 'ssr'):
            raise ValueError(f"{label}: convention must be mmsr or ssr, got {self.convention!r}")
        self.gt = ImageSource(opt['dataroot_gt'], backend_of(opt['dataroot_gt'], opt.get('io_backend')),
                              opt.get('meta_info_file'), option='dataroot_gt')

    def __len__(self) -> int:
        return len(self.gt)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, k = self.scale, self.kernel_size
        gt = hwc_to_chw_tensor(self.gt.read_image(index))
        hh, ww = gt.shape[1] // s * s, gt.shape[2] // s * s
        if hh == 0 or ww == 0:
            raise ValueError(f'{self.gt.source(index)}: smaller than the scale {s}')
        gt = gt[:, :hh, :ww].contiguous()
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        params = mmsr_kernel_params(self.spec, (hh, ww), s, generator)
        field = kernel_field_from_params(params['sigma1'], params['sigma2'], params['theta'], k, s)
        blur, padding = field, 'reflect'
        if self.convention == 'mmsr':
            blur, padding = ssr_field_to_manet(field, s), 'replicate'
        if self.spec.sv_mode == 0:  # one kernel: a strided convolution
            lq = uniform_blur_downsample(gt[None], blur[:, :, 0, 0].reshape(1, k, k), s, padding=padding)
        else:
            lq = sv_blur_downsample(gt[None], blur, s, padding=padding)
        if self.noise_level:
            lq = add_gaussian_noise(lq.clamp(0, 1), self.noise_level / 255.0, generator=generator)
        if self.jpeg_quality is not None:
            lq = jpeg_compress(lq, int(self.jpeg_quality))
        lq = (lq.clamp(0, 1) * 255.0).round() / 255.0
        path = self.gt.source(index)
        return {'lq': lq[0], 'gt': gt, 'kernel': field[0], 'lq_path': path, 'gt_path': path}
