"""The README's main command: an end-to-end SSR-toolkit run on scikit-image's photos, on the CPU, in minutes.

Steps (outputs under the repository root, or ``$SSR_ROOT``):
    1. ``demo/photos/``: training photos and ``demo/hr_test/``: held-out test photos, from scikit-image's wheel;
    2. ``demo/testset_sv_depth/``: a depth-driven spatially variant x4 test set (``generate_sv_testset.py``);
    3. ``experiments/train_SVSR_demo_x4_RRDB16x2/``: a small RRDB trained on on-the-fly SV degradations
       (``ssr/train.py -opt options/train_svsr_demo_x4.yml``; skipped when its weights exist, unless --retrain);
    4. ``results/test_SVSR_demo_x4/``: SR images and the PSNR / SSIM log (``ssr/test.py -opt
       options/test_svsr_demo_x4.yml``), next to the bicubic baseline computed here.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

TRAIN_PHOTOS = ('astronaut', 'coffee', 'rocket', 'immunohistochemistry', 'hubble_deep_field', 'retina', 'brick',
                'grass', 'gravel', 'camera')
TEST_PHOTOS = ('chelsea', 'coins', 'clock')
TRAIN_OPT, TEST_OPT = 'options/train_svsr_demo_x4.yml', 'options/test_svsr_demo_x4.yml'
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


def run(cmd: list[str], root: Path) -> str:
    logger.info('$ %s', ' '.join(cmd))
    proc = subprocess.run(cmd, cwd=root, text=True, capture_output=True, env=dict(os.environ, SSR_ROOT=str(root)))
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise RuntimeError(f'{cmd[1]} failed with exit code {proc.returncode}')
    return proc.stdout + proc.stderr


def bicubic_psnr(testset: Path) -> float:
    """Mean Y-channel PSNR (crop 4) of bicubic x4 upsampling on the test set, the floor any SR model must beat."""
    import cv2
    import numpy as np
    from basicsr.metrics import calculate_psnr

    values = []
    for lr_path in sorted((testset / 'LR').glob('*.png')):
        lr, hr = cv2.imread(str(lr_path)), cv2.imread(str(testset / 'HR' / lr_path.name))
        up = cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC)
        values.append(calculate_psnr(up, hr, crop_border=4, test_y_channel=True))
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='End-to-end demo on scikit-image photos (CPU, a few minutes).')
    parser.add_argument('--retrain', action='store_true', help='train again even if the demo weights exist')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[demo] %(message)s')
    import ssr  # noqa: F401
    from ssr.utils.options import load_options
    from ssr.utils.paths import repo_root

    root = repo_root()
    py = sys.executable
    write_photos(TRAIN_PHOTOS, root / 'demo' / 'photos', max_side=512)
    write_photos(TEST_PHOTOS, root / 'demo' / 'hr_test', max_side=512)
    testset = root / 'demo' / 'testset_sv_depth'
    run([py, 'scripts/generate_sv_testset.py', '-i', str(root / 'demo' / 'hr_test'), '-o', str(testset),
         '--mode', 'sv_depth', '--seed', '0', '--overwrite', '--quiet'], root)

    test_opt = load_options(root / TEST_OPT, is_train=False, root=root)
    weights = Path(test_opt['path']['pretrain_network_g'])
    if args.retrain or not weights.is_file():
        logger.info('training the demo model (300 iterations on the CPU) ...')
        run([py, 'ssr/train.py', '-opt', TRAIN_OPT], root)
    else:
        logger.info('using the demo weights in %s (--retrain to train again)', weights)
    log = run([py, 'ssr/test.py', '-opt', TEST_OPT], root)

    results = Path(test_opt['path'].get('results_root', root / 'results' / test_opt['name']))
    found = re.findall(r'# (psnr|ssim): ([\d.]+)', log)
    logger.info('bicubic x4 on the same LR: Y-PSNR %.2f dB', bicubic_psnr(testset))
    for metric, value in found:
        logger.info('demo model: %s %s', metric, value)
    print(f'\nDemo finished.\n  test set (HR, LR, kernel fields, depth): {testset}\n'
          f'  trained model: {weights.parent.parent}\n'
          f'  SR images and metric log: {root / "results" / test_opt["name"]}')
    return 0 if found else 1


if __name__ == '__main__':
    raise SystemExit(main())
