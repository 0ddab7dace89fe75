"""HR images degraded on the fly with MMSR kernel settings: the ``mode: GT`` sets of MANet's option files.

Fixed kernels for test / validation sets, MANet's random training kernels with random crops for training sets. The
dataset an MMSR file's ``mode: GT`` set becomes (:mod:`ssr.utils.mmsr_options`); usable on its own too.
"""
from __future__ import annotations

from typing import Any

import torch
from basicsr.utils.registry import DATASET_REGISTRY

from ssr.data.seeded_hr_dataset import SeededHRDataset
from ssr.ops.jpeg import jpeg_compress
from ssr.ops.kernel_field import kernel_field_from_params
from ssr.ops.mmsr_kernels import MMSRKernelSpec, mmsr_kernel_params, random_mmsr_kernel_spec, ssr_field_to_manet
from ssr.ops.noise import add_gaussian_noise
from ssr.ops.sv_blur import sv_blur_downsample, uniform_blur_downsample

KERNEL_KEYS = ('sig', 'sig1', 'sig2', 'theta', 'rate_iso', 'sv_mode')


@DATASET_REGISTRY.register()
class MMSRGTDataset(SeededHRDataset):
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

    Training (MANet's ``train`` set), instead of the fixed settings above:
        gt_size (int): random HR crop side, a multiple of the scale; use_hflip, use_rot (bool): flips / rotations.
        random_kernel (dict): ``{sig_min, sig_max, rate_iso}``, one kernel per sample drawn as MANet draws them
            (:func:`ssr.ops.mmsr_kernels.random_mmsr_kernel_spec`).
        noise_high (float): per-sample noise std ~ U[0, noise_high] (0-255 units; 0 = none).
        jpeg_low (int or null): per-sample JPEG quality ~ randint[jpeg_low, 100] (null = none).
        Samples are drawn from ``(seed, epoch, index)`` (``set_epoch``), so a resumed run sees the same data.

    Returns (per sample):
        ``{'lq': (3, h, w), 'gt': (3, s*h, s*w), 'kernel': (k*k, h, w) summing to 1, 'lq_path', 'gt_path'}``;
        float32 RGB in [0, 1], ``lq`` quantised to multiples of 1/255 as MANet's synthesis does. Sample i is the same
        in every run (its generator is seeded from ``seed`` and i).
    """

    OPTION_KEYS = ('dataroot_gt', 'io_backend', 'meta_info_file', 'scale', 'kernel_size', 'kernel', 'noise_level',
                   'jpeg_quality', 'seed', 'convention', 'gt_size', 'use_hflip', 'use_rot', 'random_kernel',
                   'noise_high', 'jpeg_low')

    def __init__(self, opt: dict[str, Any]):
        super().__init__(opt)
        label = self.label
        self.kernel_size = int(opt.get('kernel_size', 21))
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
        self.convention = opt.get('convention', 'mmsr')
        if self.convention not in ('mmsr', 'ssr'):
            raise ValueError(f"{label}: convention must be mmsr or ssr, got {self.convention!r}")
        self.random_kernel = None
        if opt.get('random_kernel') is not None:
            rk = dict(opt['random_kernel'])
            unknown = sorted(set(rk) - {'sig_min', 'sig_max', 'rate_iso'})
            if unknown:
                raise ValueError(f'{label}.random_kernel: unknown key(s) {unknown}; allowed: [sig_min, sig_max, '
                                 'rate_iso]')
            self.random_kernel = (float(rk.get('sig_min', 0.2)), float(rk.get('sig_max', 4.0)),
                                  float(rk.get('rate_iso', 1.0)))
            random_mmsr_kernel_spec(*self.random_kernel)  # checks the range now, not at the first sample
        self.noise_high = float(opt.get('noise_high') or 0.0)
        self.jpeg_low = None if opt.get('jpeg_low') is None else int(opt['jpeg_low'])
        if self.noise_high < 0 or (self.jpeg_low is not None and not 1 <= self.jpeg_low <= 100):
            raise ValueError(f'{label}: noise_high must be >= 0 and jpeg_low in [1, 100] or null, got '
                             f'{self.noise_high}, {self.jpeg_low}')

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, k = self.scale, self.kernel_size
        gt, generator, path = self.hr_sample(index)
        hh, ww = gt.shape[1:]
        spec = self.spec if self.random_kernel is None else random_mmsr_kernel_spec(*self.random_kernel, generator)
        params = mmsr_kernel_params(spec, (hh, ww), s, generator)
        field = kernel_field_from_params(params['sigma1'], params['sigma2'], params['theta'], k, s)
        blur, padding = field, 'reflect'
        if self.convention == 'mmsr':
            blur, padding = ssr_field_to_manet(field, s), 'replicate'
        if spec.sv_mode == 0:  # one kernel: a strided convolution
            lq = uniform_blur_downsample(gt[None], blur[:, :, 0, 0].reshape(1, k, k), s, padding=padding)
        else:
            lq = sv_blur_downsample(gt[None], blur, s, padding=padding)
        noise, quality = self.noise_level, self.jpeg_quality
        if self.noise_high:
            noise = self.noise_high * float(torch.rand((), generator=generator, dtype=torch.float64))
        if self.jpeg_low is not None:
            quality = int(torch.randint(self.jpeg_low, 101, (), generator=generator))
        if noise:
            lq = add_gaussian_noise(lq.clamp(0, 1), noise / 255.0, generator=generator)
        if quality is not None:
            lq = jpeg_compress(lq, int(quality))
        lq = (lq.clamp(0, 1) * 255.0).round() / 255.0
        return {'lq': lq[0], 'gt': gt, 'kernel': field[0], 'lq_path': path, 'gt_path': path}
