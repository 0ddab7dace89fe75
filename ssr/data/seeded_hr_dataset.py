"""The base of the datasets that degrade HR images on the fly with a per-sample seed (MANet's and DCLS's recipes)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils import data

from ssr.data.image_io import hwc_to_chw_tensor
from ssr.data.image_source import ImageSource, backend_of
from ssr.data.random_crop import random_crop_augment, sample_seed


class SeededHRDataset(data.Dataset):
    """HR images read from a folder or LMDB, mod-cropped, optionally randomly cropped / flipped / rotated, each with
    its own generator seeded from ``(seed, epoch, index)``, so any sample can be rebuilt and a resumed run sees the
    same data.

    Option keys read here: ``dataroot_gt``, ``io_backend``, ``meta_info_file``, ``scale``, ``seed`` (default 0),
    ``gt_size`` (random crop side, a multiple of the scale; none = the whole image), ``use_hflip``, ``use_rot``.

    Subclasses build the LR in ``__getitem__`` from :meth:`hr_sample`.
    """

    def __init__(self, opt: dict[str, Any]):
        super().__init__()
        self.opt = opt
        self.label = f"datasets.{opt.get('phase', 'test')} ({opt.get('name', '?')})"
        if not opt.get('dataroot_gt'):
            raise ValueError(f'{self.label}: dataroot_gt is required (the HR images to degrade)')
        self.scale = int(opt.get('scale', 4))
        self.seed = int(opt.get('seed', 0))
        self.gt_size = None if opt.get('gt_size') is None else int(opt['gt_size'])
        if self.gt_size is not None and (self.gt_size < self.scale or self.gt_size % self.scale):
            raise ValueError(f'{self.label}: gt_size {self.gt_size} must be a positive multiple of the scale '
                             f'{self.scale}')
        self.use_hflip, self.use_rot = bool(opt.get('use_hflip', False)), bool(opt.get('use_rot', False))
        self.gt = ImageSource(opt['dataroot_gt'], backend_of(opt['dataroot_gt'], opt.get('io_backend')),
                              opt.get('meta_info_file'), option='dataroot_gt')
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by ssr's sampler at each epoch so that training samples differ between epochs."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.gt)

    def hr_sample(self, index: int, min_lr_side: int = 1) -> tuple[Tensor, torch.Generator, str]:
        """``(gt (3, H, W) in [0, 1] mod-cropped and, with gt_size, randomly cropped and augmented, the sample's
        generator (after the crop draws), the image's source)``.

        Raises:
            ValueError: the image's LR size would be below ``min_lr_side`` (the message names the file).
        """
        s = self.scale
        gt = hwc_to_chw_tensor(self.gt.read_image(index))
        hh, ww = gt.shape[1] // s * s, gt.shape[2] // s * s
        if hh // s < min_lr_side or ww // s < min_lr_side:
            raise ValueError(f'{self.gt.source(index)}: LR size {hh // s}x{ww // s} is below {min_lr_side} '
                             f'(scale {s})')
        gt = gt[:, :hh, :ww].contiguous()
        generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))
        if self.gt_size is not None:
            gt = random_crop_augment([gt], self.gt_size, generator, self.use_hflip, self.use_rot,
                                     self.gt.source(index))[0]
        return gt, generator, self.gt.source(index)
