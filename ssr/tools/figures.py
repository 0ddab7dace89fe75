"""Figures made from files: a stored kernel field's variance heatmap (paper Fig. 8), a depth map, crops of several
images, and the SVKR strip (paper Fig. 4) of a blind model run on one test image.

Each function returns a uint8 BGR array (:func:`ssr.utils.visualize.write_png` writes it); the drawing primitives are
in :mod:`ssr.utils.visualize`. CLI: ``scripts/make_figures.py``.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ssr.utils.visualize import colorize, crops_side_by_side, kernel_variance_map, label, resize_nearest, svkr_strip

__all__ = ['kernel_heatmap_figure', 'depth_figure', 'crops_figure', 'svkr_strip_figure']


def kernel_heatmap_figure(path: str | Path, height: int) -> np.ndarray:
    """Per-pixel kernel variance of a stored field (``.npz`` with ``kernel`` (k*k, h, w)), ``height`` px + caption."""
    from ssr.data.sv_paired_dataset import load_kernel_field

    var = kernel_variance_map(torch.from_numpy(load_kernel_field(str(path))))
    width = max(1, round(height * var.shape[1] / var.shape[0]))
    return label(resize_nearest(colorize(var, 'viridis'), height, width),
                 f'kernel variance {float(var.min()):.2f}-{float(var.max()):.2f} px^2')


def depth_figure(path: str | Path, height: int) -> np.ndarray:
    """Colormap of a depth map (16- / 8-bit PNG or ``.npy`` in [0, 1]; near = bright), ``height`` px + caption."""
    from ssr.data.image_io import decode_depth

    depth = decode_depth(Path(path).read_bytes(), str(path))
    width = max(1, round(height * depth.shape[1] / depth.shape[0]))
    return label(resize_nearest(colorize(depth, 'magma', 0, 1), height, width), 'depth (near = bright)')


def crops_figure(images: Mapping[str, str | Path], box: tuple[int, int, int, int], zoom: int) -> np.ndarray:
    """The crop ``box = (x, y, w, h)`` of each image (``{label: path}``, in order) side by side, ``zoom`` times.

    Raises:
        ValueError: an image does not decode, or the box lies outside one of them.
    """
    import cv2

    decoded = {}
    for name, path in images.items():
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'--image {name}={path}: give NAME=PATH of a readable image')
        decoded[name] = img
    return crops_side_by_side(decoded, tuple(box), zoom)


def svkr_strip_figure(opt_path: str | Path, testset: str | Path, name: str, height: int,
                      device: str = 'cpu') -> np.ndarray:
    """Depth and kernel variance at every SVKR iteration of a ``BlindSRModel`` on image ``name`` of an SV test set.

    Raises:
        ValueError: the option file is not a blind model with a kernel estimator, or the set lacks ``name``.
    """
    from basicsr.models import build_model

    from ssr.data.sv_paired_dataset import SVPairedDataset
    from ssr.utils.options import inference_options

    opt = inference_options(str(opt_path), device)
    opt['svkr'] = {**(opt.get('svkr') or {}), 'save_iterates': True}
    if opt['model_type'] != 'BlindSRModel' or 'network_e' not in opt:
        raise ValueError(f'{opt_path}: svkr-strip needs a BlindSRModel with a kernel estimator (network_e)')
    dataset = SVPairedDataset({'name': 'figure', 'dataroot': str(testset), 'scale': opt.get('scale', 4)})
    if name not in dataset.names:
        raise ValueError(f'{testset} has no image {name!r}; it holds {dataset.names[:10]}')
    sample = dataset[dataset.names.index(name)]
    model = build_model(opt)
    batch = {k: (v[None] if isinstance(v, torch.Tensor) else [v]) for k, v in sample.items()}
    model.feed_data(batch)
    model.test()
    return svkr_strip(model.svkr_output.iterates, height)
