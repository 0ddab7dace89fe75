"""Figures made from files: a stored kernel field's variance heatmap (paper Fig. 8), a depth map, crops of several
images, and the SVKR strip (paper Fig. 4) of a blind model run on one test image.

Each function returns a uint8 BGR array (:func:`ssr.utils.visualize.write_png` writes it). The heatmap, depth map
and SVKR strip are drawn with matplotlib's Agg canvas (no pyplot, no display), with titles and colour bars in units
(HR px^2 for kernel variance, relative inverse depth); the crops use OpenCV's primitives. CLI: ``scripts/make_figures.py``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ssr.utils.visualize import crops_side_by_side, kernel_variance_map

__all__ = ['DEPTH_UNIT', 'VARIANCE_UNIT', 'kernel_heatmap_figure', 'depth_figure', 'crops_figure', 'map_figure',
           'svkr_strip', 'svkr_strip_figure']


def kernel_heatmap_figure(path: str | Path, height: int, vmin: float | None = None,
                          vmax: float | None = None) -> np.ndarray:
    """Per-pixel kernel variance of a stored field (``.npz`` with ``kernel`` (k*k, h, w)) with a colour bar in HR
    px^2; ``vmin`` / ``vmax`` fix the scale (give the same to figures that are compared), default the map's range,
    which the title states. ``height``: the map's height in pixels (at least 96)."""
    from ssr.data.sv_paired_dataset import load_kernel_field

    var = kernel_variance_map(torch.from_numpy(load_kernel_field(str(path)))).numpy()
    lo = float(var.min()) if vmin is None else float(vmin)
    hi = float(var.max()) if vmax is None else float(vmax)
    title = f'{Path(path).stem}: kernel variance {float(var.min()):.2f}-{float(var.max()):.2f} px$^2$'
    return map_figure(var, 'viridis', lo, hi, VARIANCE_UNIT, title, height)


def depth_figure(path: str | Path, height: int) -> np.ndarray:
    """A depth map (16- / 8-bit PNG or ``.npy`` in [0, 1]; near = bright) on a fixed [0, 1] colour bar; the title
    says when the map is constant (e.g. ``depth: none``). ``height``: the map's height in pixels (at least 96)."""
    from ssr.data.image_io import decode_depth

    depth = decode_depth(Path(path).read_bytes(), str(path))
    title = f'{Path(path).stem}: depth (near = bright)'
    if float(depth.max()) - float(depth.min()) < 1e-6:
        title += f', constant {float(depth.mean()):.3f}'
    return map_figure(depth, 'magma', 0.0, 1.0, DEPTH_UNIT, title, height)


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


DEPTH_UNIT = 'relative inverse depth'
VARIANCE_UNIT = 'kernel variance (HR px$^2$)'
DPI = 100


def map_figure(values: np.ndarray, cmap: str, lo: float, hi: float, unit: str, title: str,
                height: int) -> np.ndarray:
    """One map with a titled colour bar, drawn on matplotlib's Agg canvas; (H, W, 3) uint8 BGR."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hi = hi if hi > lo else lo + 1e-3  # a constant map still gets a valid scale
    side = max(int(height), 96) / DPI
    aspect = values.shape[1] / max(values.shape[0], 1)
    fig = Figure(figsize=(side * aspect + 1.5, side + 0.5), dpi=DPI, layout='constrained')
    ax = fig.subplots()
    image = ax.imshow(values, cmap=cmap, vmin=lo, vmax=hi, interpolation='nearest')
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02)
    bar.set_label(unit, fontsize=7)
    bar.ax.tick_params(labelsize=7)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., 2::-1])  # RGBA -> BGR


def _map_2d(x: Tensor) -> np.ndarray:
    """The first image of a (1, H, W) / (B, 1, H, W) map as an (H, W) float array."""
    return x.detach().float().cpu().reshape(-1, *x.shape[-2:])[0].numpy()


def _variance_2d(kernel: Tensor) -> np.ndarray:
    """Kernel variance (HR px^2) of the first field of a (k*k, h, w) / (B, k*k, h, w) kernel field."""
    return kernel_variance_map(kernel.detach().reshape(-1, *kernel.shape[-3:])[0].cpu()).numpy()


def svkr_strip(iterates: Sequence[Mapping[str, Tensor]], true_depth: Tensor | None = None,
               true_kernel: Tensor | None = None, title: str = '', panel_px: int = 128) -> np.ndarray:
    """Paper Fig. 4: D^t (top row) and the kernel-variance map of K^t (bottom row) for t = 0..T, the true ones last.

    Each row has one colour bar shared by its panels: depth on [0, 1] (relative inverse depth), kernel variance on
    the range of all its panels, the true field included, so columns compare by colour.

    Args:
        iterates: ``SVKROutput.iterates`` of one image: dicts with ``depth`` (1, 1, H', W') and ``kernel``
            (1, k*k, h, w) (batch dims optional; the first image is drawn).
        true_depth: (1, H, W) or (1, 1, H, W) in [0, 1], or ``None`` (no true depth panel).
        true_kernel: (k*k, h, w) or (1, k*k, h, w), or ``None`` (no true kernel panel).
        title: the figure's title.
        panel_px: side of each panel, pixels (at least 96, so the labels stay readable).

    Returns:
        (H, W, 3) uint8 BGR image.

    Raises:
        ValueError: ``iterates`` is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not iterates:
        raise ValueError('no SVKR iterates: run the model with svkr.save_iterates: true')
    depths = [(f'$D^{{{t}}}$', _map_2d(it['depth'])) for t, it in enumerate(iterates)]
    variances = [(f'$K^{{{t}}}$', _variance_2d(it['kernel'])) for t, it in enumerate(iterates)]
    if true_depth is not None or true_kernel is not None:
        depths.append(('true depth', None if true_depth is None else _map_2d(true_depth)))
        variances.append(('true kernel', None if true_kernel is None else _variance_2d(true_kernel)))
    shown = [v for _, v in variances if v is not None]
    var_lo, var_hi = min(float(v.min()) for v in shown), max(float(v.max()) for v in shown)
    var_hi = var_hi if var_hi > var_lo else var_lo + 1e-3  # a constant field still gets a valid scale

    panel = max(int(panel_px), 96) / DPI
    cols = len(depths)
    fig = Figure(figsize=(cols * panel + 1.6, 2 * panel + (1.1 if title else 0.8)), dpi=DPI, layout='constrained')
    fig.get_layout_engine().set(hspace=0.08)  # room for the bottom row's titles
    axes = fig.subplots(2, cols, squeeze=False)
    rows = ((depths, 'magma', 0.0, 1.0, DEPTH_UNIT, 'depth'),
            (variances, 'viridis', var_lo, var_hi, VARIANCE_UNIT, 'kernel variance'))
    for r, (panels, cmap, lo, hi, unit, row_name) in enumerate(rows):
        axes[r, 0].set_ylabel(row_name, fontsize=9)
        image = None
        for ax, (name, values) in zip(axes[r], panels):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=9)
            if values is None:
                ax.text(0.5, 0.5, 'not in the test set', ha='center', va='center', fontsize=7, transform=ax.transAxes)
                continue
            image = ax.imshow(values, cmap=cmap, vmin=lo, vmax=hi, interpolation='nearest')
        bar = fig.colorbar(image, ax=list(axes[r]), shrink=0.9, pad=0.02)
        bar.set_label(unit, fontsize=7)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., 2::-1])  # RGBA -> BGR


def svkr_strip_figure(opt_path: str | Path, testset: str | Path, name: str, height: int,
                      device: str = 'cpu') -> np.ndarray:
    """:func:`svkr_strip` of a ``BlindSRModel`` on image ``name`` of an SV test set, beside its true depth and
    kernel field.

    Args:
        opt_path: a ``BlindSRModel`` test option file with a kernel estimator (``network_e``).
        testset: an SV test-set folder (``LR/``, ``HR/``, ``depth/``, ``kernel/``).
        name: the image's file stem.
        height: panel side, pixels.
        device: torch device.

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
    cfg = model.svkr
    title = f'SVKR on {name}: T = {cfg.iterations}, $\\gamma$ = {cfg.gamma:g}, init: {cfg.init}, depth: {cfg.depth}'
    if cfg.depth != 'midas':
        title += '\nfixed depth: $K^t = K^0$ for every t (later rounds repeat the first and are not re-run)'
    return svkr_strip(model.svkr_output.iterates, sample.get('depth'), sample.get('kernel'), title, height)
