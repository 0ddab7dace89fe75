"""Training dataset: HR crops degraded on the fly by depth-driven spatially variant kernels."""
from __future__ import annotations

from typing import Any

import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from ssr.data.degradation import SVDegradation
from ssr.data.image_io import hwc_to_chw_tensor
from ssr.data.image_source import ImageSource, backend_of
from ssr.data.random_crop import random_crop_augment, sample_seed
from ssr.ops.depth_utils import CONSTANT_DEPTH

SYNTHESIS = ('worker', 'model')
DEPTH_SOURCES = ('file', 'synthetic', 'layered', 'none')


@DATASET_REGISTRY.register()
class SVDegradationDataset(data.Dataset):
    """HR images (folder, ``meta_info`` list or BasicSR LMDB) -> random crops -> SV degradation.

    Every sample is drawn from its own ``torch.Generator`` seeded from ``(seed, epoch, index)``, so any sample can
    be rebuilt (``dataset.set_epoch(e); dataset[i]``) and an interrupted run resumes with the same data.

    Option keys:
        dataroot_gt (str): HR folder, or a BasicSR LMDB (``*.lmdb`` or ``io_backend.type: lmdb``).
        meta_info_file (str, optional): list of HR files relative to ``dataroot_gt`` (disk only).
        io_backend (dict, optional): ``{type: disk | lmdb}``; default guessed from ``dataroot_gt``.
        dataroot_depth (str, optional): depth maps with the same names / keys as the HR images (16-bit PNG, 8-bit
            PNG or ``.npy`` in a folder, or a BasicSR LMDB of 16-bit PNGs); same size as the HR image.
        depth_source (str): ``file`` (needs ``dataroot_depth``), ``synthetic`` (planes / gradients / blobs drawn
            per sample) or ``none`` (a constant map of 0.5); default ``file`` when ``dataroot_depth`` is set, else
            ``synthetic``; ``layered``: a scene of ``num_layers`` photo crops (this image's crop behind, crops of
            other random images of the set in front, cut by random shapes), each layer a slanted depth plane, and
            thin-lens defocus per layer with occlusions (``SVDegradation.degrade_layered``; ``synthesis: worker``
            only). The returned ``gt`` is then the composite.
        num_layers (list[int]): ``[min, max]`` layers of a ``layered`` scene, default ``[2, 4]``.
        gt_size (int): HR crop size, a multiple of ``scale``. LMDB entries smaller than the crop (their sizes are in
            ``meta_info.txt``) are left out with a warning; a folder image smaller than the crop raises ``ValueError``
            when it is read.
        use_hflip (bool), use_rot (bool): flips and 90-degree rotations (applied to HR and depth alike).
        scale (int): s (set by BasicSR from the top-level ``scale``).
        synthesis (str): ``worker`` degrades here (CPU, data workers); ``model`` returns HR and depth only and the
            model degrades whole batches in ``feed_data`` (GPU) with the same ``degradation`` block.
        degradation (dict): the :class:`ssr.data.degradation.SVDegradation` options.
        seed (int): base seed (BasicSR's ``manual_seed`` when ssr's train entry point builds the dataset).

    Returns (per sample):
        ``{'gt': (3, gt_size, gt_size), 'depth': (1, gt_size, gt_size), 'seed': () int64, 'gt_path': str}`` and,
        with ``synthesis: worker``, ``'lq': (3, h, w)``, ``'kernel': (k*k, h, w)`` (sums to 1 over dim 0),
        ``'noise_level': ()`` std in [0, 1] units, ``'jpeg_quality': ()`` int (100 = none); h = gt_size / s.
        Images are float32 RGB in [0, 1]; depth is relative inverse depth in [0, 1].
    """

    # the keys documented above, checked by ssr's option validator (besides the loader keys BasicSR reads)
    OPTION_KEYS = ('dataroot_gt', 'meta_info_file', 'io_backend', 'dataroot_depth', 'depth_source', 'num_layers',
                   'gt_size', 'use_hflip', 'use_rot', 'scale', 'synthesis', 'degradation', 'seed')

    def __init__(self, opt: dict[str, Any]):
        super().__init__()
        self.opt = opt
        name = f"datasets.{opt.get('phase', 'train')} ({opt.get('name', '?')})"
        if 'dataroot_gt' not in opt:
            raise ValueError(f'{name}: dataroot_gt is required')
        self.scale = int(opt.get('scale', 4))
        self.gt_size = int(opt.get('gt_size', 256))
        if self.gt_size % self.scale:
            raise ValueError(f'{name}: gt_size {self.gt_size} is not a multiple of scale {self.scale}')
        self.synthesis = opt.get('synthesis', 'worker')
        if self.synthesis not in SYNTHESIS:
            raise ValueError(f'{name}: synthesis {self.synthesis!r} not in {SYNTHESIS}')
        self.depth_source = opt.get('depth_source', 'file' if opt.get('dataroot_depth') else 'synthetic')
        if self.depth_source not in DEPTH_SOURCES:
            raise ValueError(f'{name}: depth_source {self.depth_source!r} not in {DEPTH_SOURCES}')
        if self.depth_source == 'file' and not opt.get('dataroot_depth'):
            raise ValueError(f'{name}: depth_source file needs dataroot_depth')
        layers = opt.get('num_layers', [2, 4])
        if (not isinstance(layers, (list, tuple)) or len(layers) != 2 or not all(isinstance(v, int) for v in layers)
                or not 1 <= layers[0] <= layers[1]):
            raise ValueError(f'{name}: num_layers must be [min, max] integers with 1 <= min <= max, got {layers!r}')
        self.num_layers = (int(layers[0]), int(layers[1]))
        if self.depth_source == 'layered' and self.synthesis != 'worker':
            raise ValueError(f"{name}: depth_source layered needs synthesis: worker (the layers are composed and "
                             f"defocused in the data workers)")
        self.use_hflip, self.use_rot = bool(opt.get('use_hflip', True)), bool(opt.get('use_rot', True))
        self.seed, self.epoch = int(opt.get('seed', 0)), 0
        self.degradation = SVDegradation(opt.get('degradation'), self.scale, source=f'{name}.degradation')

        backend = backend_of(opt['dataroot_gt'], opt.get('io_backend'))
        self.gt = ImageSource(opt['dataroot_gt'], backend, opt.get('meta_info_file'), option='dataroot_gt')
        if self.gt.sizes is not None:
            big = [i for i, (h, w) in enumerate(self.gt.sizes) if min(h, w) >= self.gt_size]
            if len(big) < len(self.gt):
                from basicsr.utils import get_root_logger

                get_root_logger().warning(f'{name}: {len(self.gt) - len(big)} of {len(self.gt)} images in '
                                          f'{opt["dataroot_gt"]} are smaller than gt_size {self.gt_size}: left out')
                if not big:
                    raise ValueError(f'{name}: every image in {opt["dataroot_gt"]} is smaller than gt_size '
                                     f'{self.gt_size}')
                self.gt.keep(big)
        self.depth = None
        if self.depth_source == 'file':
            depth_backend = backend_of(opt['dataroot_depth'], None)
            self.depth = ImageSource(opt['dataroot_depth'], depth_backend, option='dataroot_depth')
            depth_names = {self.depth.name(i): i for i in range(len(self.depth))}
            missing = [self.gt.name(i) for i in range(len(self.gt)) if self.gt.name(i) not in depth_names]
            if missing:
                raise ValueError(f'{name}: dataroot_depth {opt["dataroot_depth"]!r} has no depth map for '
                                 f'{missing[:5]} ({len(missing)} of {len(self.gt)} images)')
            self._depth_index = [depth_names[self.gt.name(i)] for i in range(len(self.gt))]

    def set_epoch(self, epoch: int) -> None:
        """Called by ssr's sampler at each epoch so that samples differ between epochs."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.gt)

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        img = hwc_to_chw_tensor(self.gt.read_image(index))
        depth = None
        if self.depth is not None:
            d = self.depth.read_depth(self._depth_index[index])
            if d.shape != tuple(img.shape[1:]):
                raise ValueError(f'{self.depth.source(self._depth_index[index])}: depth {d.shape} does not match '
                                 f'image {self.gt.source(index)} {tuple(img.shape[1:])}')
            depth = torch.from_numpy(d)[None]
        return img, depth

    def _crop_and_augment(self, index: int, img, depth, g: torch.Generator):
        return random_crop_augment([img, depth], self.gt_size, g, self.use_hflip, self.use_rot,
                                   self.gt.source(index))

    def _layered_sample(self, index: int, seed: int, g: torch.Generator) -> dict[str, Any]:
        """A layered scene: this crop as the background, crops of other random images as nearer layers."""
        from ssr.ops.layered_scene import compose_layered_scene

        low, high = self.num_layers
        others = torch.randint(0, len(self.gt), (high - 1,), generator=g).tolist()
        crops = [self._crop_and_augment(i, self._load(i)[0], None, g)[0] for i in [index] + others]
        scene = compose_layered_scene(torch.stack(crops)[None], g, min_layers=low)
        out = self.degradation.degrade_layered(scene, g)
        return {'gt': scene.image[0], 'depth': scene.depth[0], 'seed': torch.tensor(seed, dtype=torch.int64),
                'gt_path': self.gt.source(index), 'lq': out['lq'][0], 'kernel': out['kernel'][0],
                'noise_level': out['noise_level'][0], 'jpeg_quality': out['jpeg_quality'][0]}

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = index % len(self.gt)
        seed = sample_seed(self.seed, self.epoch, index)
        g = torch.Generator().manual_seed(seed)
        if self.depth_source == 'layered':
            return self._layered_sample(index, seed, g)
        img, depth = self._crop_and_augment(index, *self._load(index), g)
        if depth is None:
            if self.depth_source == 'none':
                depth = torch.full((1, self.gt_size, self.gt_size), CONSTANT_DEPTH)
            else:
                from ssr.ops.synthetic_depth import synthetic_depth

                depth = synthetic_depth(1, self.gt_size, self.gt_size, g, self.degradation.depth_kinds)[0]
        sample = {'gt': img, 'depth': depth, 'seed': torch.tensor(seed, dtype=torch.int64),
                  'gt_path': self.gt.source(index)}
        if self.synthesis == 'worker':
            out = self.degradation(img[None], depth[None], g)
            sample.update(lq=out['lq'][0], kernel=out['kernel'][0], noise_level=out['noise_level'][0],
                          jpeg_quality=out['jpeg_quality'][0])
        return sample
