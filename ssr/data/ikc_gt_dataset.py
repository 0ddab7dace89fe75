"""HR images degraded on the fly as IKC's training degrades them: the ``mode: LQGTker`` sets without LR images.

IKC (yuanjunchai/IKC, ``codes/train_SFTMD.py`` / ``train_IKC.py`` with ``utils.util.SRMDPreprocessing``) blurs each
HR crop with one random isotropic Gaussian kernel (std ~ U[sig_min, sig_max], centred at k // 2, reflect padding),
then downsamples each channel with PIL's bicubic resize after quantising it to 8 bits the way its ``to_pil_image``
does (``x.mul(255).byte()``: truncation, not rounding); the training scripts add no noise. Its models take the
kernel's PCA code (:mod:`ssr.ops.ikc_pca`), which ``IKCModel`` computes from the kernel this dataset returns.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from PIL import Image
from torch import Tensor

from ssr.data.seeded_hr_dataset import SeededHRDataset
from ssr.ops.dcls_degradation import dcls_random_kernels
from ssr.ops.sv_blur import uniform_blur_downsample

__all__ = ['IKCGTDataset', 'ikc_bicubic_downsample']


def ikc_bicubic_downsample(image: Tensor, scale: int) -> Tensor:
    """IKC's ``b_CPUVar_Bicubic`` for one image: 8-bit truncation, PIL bicubic to (H // s, W // s), back to [0, 1].

    Args:
        image: (C, H, W) float in [0, 1], C = 1 or 3.
        scale: s >= 1.

    Returns:
        (C, H // s, W // s) float32 in [0, 1], multiples of 1/255.
    """
    c, hh, ww = image.shape
    quantised = image.mul(255).to(torch.uint8).permute(1, 2, 0).numpy()  # .byte(): truncation, as IKC's
    size = (ww // scale, hh // scale)  # PIL takes (width, height)
    # PIL resizes the channels of an RGB image independently, as IKC's per-channel 'L' images
    pil = Image.fromarray(quantised if c == 3 else quantised[..., 0])
    out = np.asarray(pil.resize(size, Image.BICUBIC))
    out = out[..., None] if out.ndim == 2 else out
    return torch.from_numpy(out.copy()).permute(2, 0, 1).float().div(255)


@DATASET_REGISTRY.register()
class IKCGTDataset(SeededHRDataset):
    """HR images -> IKC's random isotropic kernel -> reflect-padded blur -> 8-bit PIL bicubic x1/s.

    Option keys:
        dataroot_gt (str): HR folder or BasicSR LMDB; images are mod-cropped to the scale.
        io_backend (dict, optional): ``{type: disk | lmdb}``; guessed from ``dataroot_gt``.
        meta_info_file (str, optional): list of HR files relative to ``dataroot_gt`` (disk only).
        scale (int): s.
        kernel_size (int): k, odd (IKC's ``kernel_size``; default 21).
        sig_min, sig_max (float): range of the kernel std in HR pixels (IKC's defaults 0.2, 4.0).
        gt_size (int, optional): random HR crop side (training), a multiple of the scale; ``use_hflip``,
            ``use_rot`` (bool): flips / rotations of the crop. Without it the whole image is used (val sets).
        seed (int): seeds the per-sample draws (default 0); samples follow ``(seed, epoch, index)``, so a resumed run
            sees the same data and a validation set is the same at every validation (IKC draws new kernels each
            time).

    Returns (per sample):
        ``{'lq': (3, h, w) multiples of 1/255, 'gt': (3, s*h, s*w), 'kernel_hr': (1, k, k) the blur kernel (sums to
        1), 'lq_path', 'gt_path'}``; float32 RGB in [0, 1].
    """

    OPTION_KEYS = ('dataroot_gt', 'io_backend', 'meta_info_file', 'scale', 'kernel_size', 'sig_min', 'sig_max',
                   'seed', 'gt_size', 'use_hflip', 'use_rot')

    def __init__(self, opt: dict[str, Any]):
        super().__init__(opt)
        self.kernel_size = int(opt.get('kernel_size', 21))
        self.sig_range = (float(opt.get('sig_min', 0.2)), float(opt.get('sig_max', 4.0)))
        try:  # check the settings now, not at the first sample
            dcls_random_kernels(1, self.kernel_size, *self.sig_range)
        except ValueError as e:
            raise ValueError(f'{self.label}: {e}') from None

    def __getitem__(self, index: int) -> dict[str, Any]:
        gt, generator, path = self.hr_sample(index)
        # IKC's random_batch_kernel with rate_iso 1.0 (as its training scripts call it) is DCLS's isotropic kernel:
        # the same formula, centred at k // 2
        kernel = dcls_random_kernels(1, self.kernel_size, *self.sig_range, rate_iso=1.0, generator=generator)
        blurred = uniform_blur_downsample(gt[None], kernel, 1)[0].clamp(0, 1)  # reflect padding, full resolution
        lq = ikc_bicubic_downsample(blurred, self.scale)
        return {'lq': lq, 'gt': gt, 'kernel_hr': kernel, 'lq_path': path, 'gt_path': path}
