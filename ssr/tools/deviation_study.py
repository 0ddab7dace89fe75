"""Deviation studies (paper Fig. 8 / 9): SR quality when the kernel field or the depth map given to the SR stage
deviates from the one the method would use.

For every test image (a test set with ground-truth depth, ``dataroot_depth``) the reference conditions are the
data's depth D and the kernel field K = KE(LR, D) of the option file's estimator (``network_e``; the data's
ground-truth field when the file has no estimator, e.g. ``test_nbsr_gt_kernel_x4.yml``). Each study then replaces
one of them by a deviated copy, for every δ:

============  =======================================================================================================
study         conditions given to the SR stage
============  =======================================================================================================
kernel        K_δ = K with every kernel's sigmas times (1 + δ) (:func:`ssr.ops.kernel_field.spread_kernel_field`), D
depth_shift   D_δ = clip(D + δ, 0, 1) and K = KE(LR, D_δ) (DKENet reads depth, so the kernel follows it)
depth_scale   D_δ = clip(D · (1 + δ), 0, 1) and K = KE(LR, D_δ)
============  =======================================================================================================

The SR stage is the one of the option file: NBSR (``network_g`` of a blind / non-blind file) on the kernel, or for an
``SSRModel`` file with ``conditions.source: svkr`` the SSR sampler on (K, D) with NBSR(LR, K) as its base. δ = 0 is
the reference itself; ``kernel_reference='true'`` deviates the data's ground-truth field instead, so that the
kernel study is centred on the right answer. Reported per (test set, study, δ): Y-PSNR / SSIM of the SR image (BasicSR's metrics,
``crop_border`` = scale) and, where the data stores kernels, the kernel PSNR of the field used. CLI:
``scripts/deviation_study.py``.
"""
from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ['STUDIES', 'DeviationRunner', 'deviate', 'load_runner', 'run_study', 'write_results', 'study_figure',
           'deviation_study']

STUDIES: tuple[str, ...] = ('kernel', 'depth_shift', 'depth_scale')
STUDY_LABELS = {'kernel': 'kernel sigma x (1 + δ)', 'depth_shift': 'depth + δ', 'depth_scale': 'depth x (1 + δ)'}
logger = logging.getLogger(__name__)


def deviate(study: str, delta: float, kernel: Tensor | None, depth: Tensor) -> tuple[Tensor | None, Tensor]:
    """The deviated (kernel, depth) of ``study`` at ``delta``; ``None`` for the kernel means "re-estimate it from the
    deviated depth". ``kernel`` (B, k*k, h, w), ``depth`` (B, 1, H, W) in [0, 1].

    Raises:
        ValueError: unknown ``study``, or a kernel factor 1 + δ that is not > 0.
    """
    from ssr.ops.kernel_field import spread_kernel_field

    if study == 'kernel':
        if not 1 + delta > 0:
            raise ValueError(f'kernel study: delta {delta} gives the factor 1 + delta <= 0; use delta > -1')
        return spread_kernel_field(kernel, 1 + delta), depth
    if study == 'depth_shift':
        return None, (depth + delta).clamp(0, 1)
    if study == 'depth_scale':
        return None, (depth * (1 + delta)).clamp(0, 1)
    raise ValueError(f'study {study!r} not in {STUDIES}')


@dataclass
class DeviationRunner:
    """The two stages of an option file's inference path, with the conditions exposed.

    Attributes:
        estimate: ``(lq (B, 3, h, w), depth (B, 1, H, W)) -> kernel (B, k*k, h, w)``; ``None``: use the data's field.
        render: ``(lq, kernel, depth) -> sr (B, 3, sh, sw)`` in [0, 1].
        scale: the SR factor.
        device: where the networks are.
    """

    estimate: Callable[[Tensor, Tensor], Tensor] | None
    render: Callable[[Tensor, Tensor, Tensor], Tensor]
    scale: int
    device: torch.device


def load_runner(opt: dict, where: str, device: str = 'cpu') -> DeviationRunner:
    """:class:`DeviationRunner` of an inference option tree (``ssr.utils.options.inference_options``).

    Raises:
        ValueError: an ``SSRModel`` file without ``conditions.source: svkr`` (it has no estimator or NBSR), or an SR
            network that takes no kernel field (nothing to deviate).
    """
    from ssr.pipelines.loading import network_from_options
    from ssr.pipelines.ssr_pipeline import SSRPipeline
    from ssr.pipelines.svkr import accepts, estimate_kernel, super_resolve

    dev = torch.device(device)
    scale = int(opt.get('scale', 4))
    if opt['model_type'] == 'SSRModel':
        if (opt.get('conditions') or {}).get('source', 'data') != 'svkr':
            raise ValueError(f'{where}: conditions.source: data has no estimator or NBSR to deviate; use an SSRModel '
                             'file with conditions.source: svkr')
        pipe = SSRPipeline.from_options(opt, dev, where=where)

        def render(lq: Tensor, kernel: Tensor, depth: Tensor) -> Tensor:
            base = super_resolve(pipe.sr_net, lq, kernel)
            return pipe.sample(lq, kernel, depth, sr_estimate=base.clamp(0, 1))

        return DeviationRunner(lambda lq, d: estimate_kernel(pipe.estimator, lq, d), render, scale, dev)
    sr_net = network_from_options(opt, 'network_g', dev)
    if not accepts(sr_net, 'kernel'):
        raise ValueError(f'{where}: network_g ({opt["network_g"]["type"]}) takes no kernel field, so there is nothing '
                         'to deviate; use a file with a non-blind SR network (NBSR) and an estimator')
    estimator = network_from_options(opt, 'network_e', dev) if 'network_e' in opt else None
    estimate = None if estimator is None else (lambda lq, d: estimate_kernel(estimator, lq, d))
    return DeviationRunner(estimate, lambda lq, k, d: super_resolve(sr_net, lq, k).clamp(0, 1), scale, dev)


def _scores(sr: Tensor, gt: Tensor, scale: int) -> tuple[float, float]:
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import tensor2img

    a, b = tensor2img(sr.cpu()), tensor2img(gt.cpu())
    return (calculate_psnr(a, b, crop_border=scale, test_y_channel=True),
            calculate_ssim(a, b, crop_border=scale, test_y_channel=True))


@torch.no_grad()
def run_study(runner: DeviationRunner, dataset, deltas: Sequence[float], studies: Sequence[str] = STUDIES,
              max_images: int = 0, progress: Callable[[str], None] | None = None,
              kernel_reference: str = 'estimated') -> list[dict]:
    """Rows ``{study, delta, psnr, ssim, kernel_psnr, images}`` averaged over the images of ``dataset``.

    ``dataset`` yields ``SVPairedDataset`` samples with ``lq``, ``gt`` and ``depth`` (and ``kernel`` for the kernel
    PSNR, for ``kernel_reference='true'`` and when the runner has no estimator). The kernel study deviates the
    estimated field KE(LR, D) (``kernel_reference='estimated'``, the paper's Fig. 8) or the data's ground-truth one
    (``'true'``); each distinct set of conditions is rendered once (δ = 0 of the depth studies and of the estimated
    kernel study is one SR image).

    Raises:
        ValueError: a sample lacks ``gt`` or ``depth`` (or ``kernel`` where needed), or a δ / study / reference is
            invalid (:func:`deviate`).
    """
    from ssr.metrics.kernel_error import kernel_psnr

    for study in studies:
        if study not in STUDIES:
            raise ValueError(f'study {study!r} not in {STUDIES}')
    if kernel_reference not in ('estimated', 'true'):
        raise ValueError(f"kernel reference {kernel_reference!r} not in ('estimated', 'true')")
    if 'kernel' in studies:
        for delta in deltas:
            if not 1 + delta > 0:
                raise ValueError(f'kernel study: delta {delta} gives the factor 1 + delta <= 0; use delta > -1')
    if runner.estimate is None and any(s != 'kernel' for s in studies):
        raise ValueError('the depth studies need an estimator (network_e) that reads depth; this file has none')
    true_reference = kernel_reference == 'true' or runner.estimate is None
    grid = sorted({float(d) for d in deltas} | {0.0})
    sums = {(s, d): np.zeros(3) for s in studies for d in grid}
    n = len(dataset) if not max_images else min(max_images, len(dataset))
    need = ('gt', 'depth') + (('kernel',) if true_reference and 'kernel' in studies else ())
    for i in range(n):
        sample = dataset[i]
        name = Path(sample.get('lq_path', str(i))).stem
        for key in need:
            if key not in sample:
                raise ValueError(f'test image {name}: the data has no {key} (dataroot_{key}); the deviation study '
                                 f'needs {", ".join(need)}')
        lq = sample['lq'][None].to(runner.device)
        depth = sample['depth'][None].to(runner.device)
        true_kernel = sample.get('kernel')
        true_kernel = None if true_kernel is None else true_kernel[None].to(runner.device)
        estimated = None if runner.estimate is None else runner.estimate(lq, depth)
        done: dict[tuple[str, float], np.ndarray] = {}
        for study in studies:
            reference = true_kernel if study == 'kernel' and true_reference else estimated
            for delta in grid:
                # the same conditions are rendered once: every delta 0 that starts from the estimate is one image
                key = ('estimated', 0.0) if delta == 0 and reference is estimated else (study, delta)
                if key not in done:
                    kernel, dev_depth = (reference, depth) if delta == 0 else deviate(study, delta, reference, depth)
                    if kernel is None:
                        kernel = runner.estimate(lq, dev_depth)
                    psnr, ssim = _scores(runner.render(lq, kernel, dev_depth)[0], sample['gt'], runner.scale)
                    kpsnr = math.nan if true_kernel is None else float(kernel_psnr(kernel, true_kernel)[0])
                    done[key] = np.array([psnr, ssim, kpsnr])
                sums[(study, delta)] += done[key]
        if progress is not None:
            progress(f'{i + 1}/{n} {name}')
    rows = []
    for (study, delta), total in sums.items():
        psnr, ssim, kpsnr = total / max(n, 1)
        rows.append({'study': study, 'delta': delta, 'psnr': float(psnr), 'ssim': float(ssim),
                     'kernel_psnr': float(kpsnr), 'images': n})
    return rows


def write_results(rows_by_set: dict[str, list[dict]], output: Path, title: str) -> str:
    """Markdown table at ``output`` and a CSV beside it (same stem); returns the markdown. Files are written to a
    temporary name and renamed."""
    lines = [f'# {title}', '', '| test set | study | δ | PSNR (Y) | SSIM (Y) | kernel PSNR | images |',
             '|---|---|---:|---:|---:|---:|---:|']
    flat = []
    for testset, rows in rows_by_set.items():
        for r in rows:
            kp = 'n/a' if math.isnan(r['kernel_psnr']) else f'{r["kernel_psnr"]:.2f}'
            lines.append(f'| {testset} | {STUDY_LABELS[r["study"]]} | {r["delta"]:+.2f} | {r["psnr"]:.2f} | '
                         f'{r["ssim"]:.4f} | {kp} | {r["images"]} |')
            flat.append({'testset': testset, **r})
    text = '\n'.join(lines) + '\n'
    _atomic_write(output, text)
    buf = [','.join(['testset', 'study', 'delta', 'psnr', 'ssim', 'kernel_psnr', 'images'])]
    for r in flat:
        buf.append(','.join(str(r[k]) for k in ('testset', 'study', 'delta', 'psnr', 'ssim', 'kernel_psnr',
                                                 'images')))
    _atomic_write(output.with_suffix('.csv'), '\n'.join(buf) + '\n')
    return text


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(text)
    os.replace(tmp, path)


def study_figure(rows_by_set: dict[str, list[dict]], title: str = '') -> np.ndarray:
    """One panel per study: Y-PSNR against δ, a line per test set, δ = 0 (the method's own conditions) marked.
    Returns a uint8 BGR image (matplotlib's Agg canvas; no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    studies = list(dict.fromkeys(r['study'] for rows in rows_by_set.values() for r in rows))
    fig = Figure(figsize=(4.2 * len(studies), 3.6), dpi=100, layout='constrained')
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(studies), squeeze=False, sharey=True)[0]
    for ax, study in zip(axes, studies):
        for testset, rows in rows_by_set.items():
            pts = [(r['delta'], r['psnr']) for r in rows if r['study'] == study]
            xs, ys = zip(*pts)
            line, = ax.plot(xs, ys, marker='o', label=testset)
            ref = [y for x, y in pts if x == 0]
            if ref:
                ax.plot([0], ref, marker='*', markersize=13, color=line.get_color(), linestyle='none')
        ax.axvline(0, color='0.7', linewidth=0.8, zorder=0)
        ax.set_xlabel(f'δ ({STUDY_LABELS[study]})')
        ax.ticklabel_format(axis='y', useOffset=False)
        ax.set_title(study.replace('_', ' '))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel('SR PSNR, Y channel (dB)')
    if title:
        fig.suptitle(title)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., [2, 1, 0]])


def deviation_study(option_file: str | os.PathLike, output: str | os.PathLike, deltas: Sequence[float],
                    studies: Sequence[str] = STUDIES, testsets: Sequence[str] | None = None, max_images: int = 0,
                    device: str = 'cpu', progress: Callable[[str], None] | None = None,
                    kernel_reference: str = 'estimated') -> str:
    """Run the studies of an option file on its test sets; write ``output`` (markdown), a CSV and a PNG figure
    beside it. Returns the markdown. Nothing is written unless every run succeeds.

    Raises:
        FileNotFoundError: the option file or a weight file is missing.
        ValueError: bad studies / deltas, no test set left after ``testsets``, data without depth, or a file whose
            SR stage takes no kernel.
    """
    from basicsr.data import build_dataset

    from ssr.pipelines.loading import option_file as load_option_file
    from ssr.utils.visualize import write_png

    output = Path(output)
    if output.suffix != '.md':
        raise ValueError(f'-o {output}: give a .md path (the .csv and .png are written beside it)')
    opt = load_option_file(option_file, device)
    sets = [ds for _, ds in sorted((opt.get('datasets') or {}).items())
            if not testsets or ds.get('name') in testsets]
    if not sets:
        known = [ds.get('name') for ds in (opt.get('datasets') or {}).values()]
        raise ValueError(f'{option_file}: no test set left (datasets: {known}; --testsets {list(testsets or [])})')
    runner = load_runner(opt, str(option_file), device)
    rows_by_set = {}
    for ds in sets:
        dataset = build_dataset(dict(ds, phase='test', scale=opt.get('scale', 4)))
        report = None if progress is None else (lambda m, n=ds['name']: progress(f'{n} {m}'))
        rows_by_set[ds['name']] = run_study(runner, dataset, deltas, studies, max_images, report, kernel_reference)
    title = f'Deviation study: {opt.get("name", Path(option_file).stem)}'
    if 'kernel' in studies:
        title += f' (kernel study around the {kernel_reference} field)'
    output.parent.mkdir(parents=True, exist_ok=True)
    write_png(output.with_suffix('.png'), study_figure(rows_by_set, title))
    return write_results(rows_by_set, output, title)
