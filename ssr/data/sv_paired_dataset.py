"""Test dataset: fixed LR / HR pairs with their stored kernel fields and depth maps."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from ssr.data.image_io import hwc_to_chw_tensor
from ssr.data.image_source import ImageSource, backend_of

TESTSET_FOLDERS = {'dataroot_gt': 'HR', 'dataroot_lq': 'LR', 'dataroot_kernel': 'kernel', 'dataroot_depth': 'depth'}
BASE_FOLDER = 'base'  # optional: an SR estimate per image (e.g. the blind path's I^T), written by ssr/test.py runs


def load_kernel_field(path: str) -> np.ndarray:
    """Read a stored kernel field (``.npz`` with ``kernel`` ``(k*k, h, w)``, float16) as float32 summing to 1.

    Raises:
        ValueError: the file lacks ``kernel`` or its first axis is not an odd square.
    """
    with np.load(path, allow_pickle=False) as f:
        if 'kernel' not in f:
            raise ValueError(f'{path}: no array named "kernel" (found {list(f.keys())})')
        field = f['kernel'].astype(np.float32)
    taps = int(round(field.shape[0] ** 0.5)) if field.ndim == 3 else 0
    if field.ndim != 3 or taps * taps != field.shape[0] or taps % 2 == 0:
        raise ValueError(f'{path}: kernel must be (k*k, h, w) with k odd, got {field.shape}')
    return field / np.clip(field.sum(0, keepdims=True), 1e-12, None)  # undo float16 rounding of the sum


def _template(label: str, key: str, tmpl) -> tuple[str, str]:
    """``(prefix, suffix)`` of a ``'{}'`` file-name template."""
    if not isinstance(tmpl, str) or tmpl.count('{}') != 1:
        raise ValueError(f"{label}: {key} must hold '{{}}' exactly once (e.g. '{{}}_x4'), got {tmpl!r}")
    prefix, suffix = tmpl.split('{}')
    return prefix, suffix


def _key_of(stem: str, tmpl: tuple[str, str]) -> str | None:
    """The key a stem encodes under a ``(prefix, suffix)`` template, or ``None`` when it does not match."""
    prefix, suffix = tmpl
    if not (stem.startswith(prefix) and stem.endswith(suffix)) or len(stem) < len(prefix) + len(suffix):
        return None
    return stem[len(prefix):len(stem) - len(suffix)]


@DATASET_REGISTRY.register()
class SVPairedDataset(data.Dataset):
    """Fixed test pairs, e.g. a set written by ``scripts/generate_sv_testset.py`` or an MMSR LMDB test set.

    Option keys:
        dataroot (str, optional): a test-set folder holding ``HR/``, ``LR/`` and optionally ``kernel/`` and
            ``depth/``; each ``dataroot_*`` below defaults to the matching sub-folder when it exists.
        dataroot_lq (str): LR images (folder, BasicSR LMDB or MMSR LMDB with ``meta_info.pkl``).
        dataroot_gt (str, optional): HR images; mod-cropped to ``scale`` x the LR size.
        dataroot_kernel (str, optional): ``<name>.npz`` kernel fields (``kernel``: ``(k*k, h, w)``).
        dataroot_depth (str, optional): ``<name>.png`` 16-bit depth maps at HR size.
        dataroot_base (str, optional): ``<name>.png`` SR estimates at HR size (e.g. the blind path's I^T, the base
            of SSR's residual formulation, ``diffusion.formulation: residual``); defaults to ``<dataroot>/base``.
        io_backend (dict, optional): ``{type: disk | lmdb | mmsr_lmdb}`` for LR / HR; guessed when absent.
        filename_tmpl (str, optional): LR file stem as a template of the pair's key, BasicSR's option
            (default ``'{}'``); e.g. DRealSR's ``'{}_x4'``.
        gt_filename_tmpl (str, optional): the same for the HR stems (default ``'{}'``; DRealSR: ``'{}_x1'``). Kernel
            and depth files are named by the key.
        scale (int): s.

    Returns (per sample):
        ``{'lq': (3, h, w), 'lq_path': str}`` plus, when available, ``'gt': (3, s*h, s*w)``, ``'gt_path'``,
        ``'kernel': (k*k, h, w)`` summing to 1, ``'depth': (1, s*h, s*w)`` in [0, 1] and ``'base': (3, s*h, s*w)`` in
        [0, 1]. Files are paired by name
        (stem or LMDB key); a missing partner raises ``ValueError`` naming it.
    """

    # the keys documented above, checked by ssr's option validator (besides the loader keys BasicSR reads)
    OPTION_KEYS = ('dataroot', *TESTSET_FOLDERS, 'dataroot_base', 'io_backend', 'filename_tmpl', 'gt_filename_tmpl',
                   'scale')

    def __init__(self, opt: dict[str, Any]):
        super().__init__()
        self.opt, self.scale = opt, int(opt.get('scale', 4))
        label = f"datasets.{opt.get('phase', 'test')} ({opt.get('name', '?')})"
        roots = {key: opt.get(key) for key in (*TESTSET_FOLDERS, 'dataroot_base')}
        if opt.get('dataroot'):
            if not os.path.isdir(opt['dataroot']):
                raise FileNotFoundError(f'{label}: dataroot {opt["dataroot"]!r} does not exist')
            for key, folder in {**TESTSET_FOLDERS, 'dataroot_base': BASE_FOLDER}.items():
                candidate = os.path.join(opt['dataroot'], folder)
                if roots[key] is None and os.path.isdir(candidate):
                    roots[key] = candidate
        if not roots['dataroot_lq']:
            raise ValueError(f'{label}: dataroot_lq (or dataroot with an LR/ folder) is required')
        self.lq = ImageSource(roots['dataroot_lq'], backend_of(roots['dataroot_lq'], opt.get('io_backend')),
                              option='dataroot_lq')
        self.gt = None
        self._tmpl = {key: _template(label, key, opt.get(key, '{}')) for key in ('filename_tmpl', 'gt_filename_tmpl')}
        lq_names = [self.lq.name(i) for i in range(len(self.lq))]
        names = [_key_of(n, self._tmpl['filename_tmpl']) for n in lq_names]
        skipped = [n for n, k in zip(lq_names, names) if k is None]
        if skipped:
            raise ValueError(f'{label}: LR stems {skipped[:5]} do not match filename_tmpl '
                             f'{opt.get("filename_tmpl")!r}; fix the template or the file names')
        if roots['dataroot_gt']:
            self.gt = ImageSource(roots['dataroot_gt'], backend_of(roots['dataroot_gt'], opt.get('io_backend')),
                                  option='dataroot_gt')
            self._gt_index = self._pair(label, 'dataroot_gt', names, self.gt)
        self.base = None
        if roots['dataroot_base']:
            self.base = ImageSource(roots['dataroot_base'], backend_of(roots['dataroot_base'], opt.get('io_backend')),
                                    option='dataroot_base')
            self._base_index = self._pair(label, 'dataroot_base', names, self.base)
        self.kernel_root, self.depth_root = roots['dataroot_kernel'], roots['dataroot_depth']
        for key, root, ext in (('dataroot_kernel', self.kernel_root, '.npz'), ('dataroot_depth', self.depth_root,
                                                                             '.png')):
            if root:
                missing = [n for n in names if not os.path.isfile(os.path.join(root, n + ext))]
                if missing:
                    raise ValueError(f'{label}: {key} {root!r} lacks {missing[:5]} ({len(missing)} of {len(names)})')
        self.names = names

    def _pair(self, label: str, key: str, names: list[str], source: ImageSource) -> list[int]:
        tmpl = self._tmpl['gt_filename_tmpl'] if key == 'dataroot_gt' else ('', '')
        index = {k: i for i in range(len(source)) if (k := _key_of(source.name(i), tmpl)) is not None}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f'{label}: {key} {source.root!r} has no image for LR {missing[:5]}')
        return [index[n] for n in names]

    def __len__(self) -> int:
        return len(self.names)

    def _read_hr_sized(self, source: ImageSource, i: int, what: str, lr_size: tuple[int, int], index: int):
        """Image ``i`` of ``source`` as (3, s*h, s*w), mod-cropped; an image smaller than that is an error."""
        img = hwc_to_chw_tensor(source.read_image(i))
        hh, ww = lr_size[0] * self.scale, lr_size[1] * self.scale
        if img.shape[1] < hh or img.shape[2] < ww:
            raise ValueError(f'{source.source(i)}: {what} {tuple(img.shape[1:])} is smaller than scale '
                             f'{self.scale} x LR {lr_size} of {self.lq.source(index)}')
        return img[:, :hh, :ww]

    def __getitem__(self, index: int) -> dict[str, Any]:
        from ssr.data.image_io import decode_depth

        lq = hwc_to_chw_tensor(self.lq.read_image(index))
        _, h, w = lq.shape
        sample: dict[str, Any] = {'lq': lq, 'lq_path': self.lq.source(index)}
        hh, ww = h * self.scale, w * self.scale
        if self.gt is not None:
            gi = self._gt_index[index]
            sample.update(gt=self._read_hr_sized(self.gt, gi, 'HR', (h, w), index), gt_path=self.gt.source(gi))
        if self.base is not None:
            sample['base'] = self._read_hr_sized(self.base, self._base_index[index], 'base', (h, w), index)
        if self.kernel_root:
            path = os.path.join(self.kernel_root, self.names[index] + '.npz')
            field = load_kernel_field(path)
            if field.shape[1:] != (h, w):
                raise ValueError(f'{path}: kernel field {field.shape[1:]} does not match LR {(h, w)}')
            sample['kernel'] = torch.from_numpy(field)
        if self.depth_root:
            path = os.path.join(self.depth_root, self.names[index] + '.png')
            with open(path, 'rb') as f:
                depth = decode_depth(f.read(), path)
            if depth.shape[0] < hh or depth.shape[1] < ww:
                raise ValueError(f'{path}: depth {depth.shape} is smaller than the HR size {(hh, ww)}')
            sample['depth'] = torch.from_numpy(np.ascontiguousarray(depth[:hh, :ww]))[None]
        return sample
