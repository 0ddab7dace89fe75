"""Run several methods on several test sets and write a results table (markdown + CSV).

Each method is a test option file (``NAME=options/test_X.yml``) run through BasicSR's test machinery in this process;
``bicubic`` is built in. Test sets come from the option files (``datasets.test_*``); ``--testsets`` restricts them
by name. Reported per (method, test set): Y-channel PSNR / SSIM (``val.metrics`` of the option file), kernel error
where the method estimates kernel fields and the set stores ground truth, and seconds per image.

Example:
    python scripts/evaluate.py bicubic realsr=options/test_realsr_x4.yml blind=options/test_blind_x4.yml \
        -o results/table_x4.md
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger('evaluate')
COLUMNS = ('method', 'testset', 'psnr', 'ssim', 'kernel_mse', 'kernel_psnr', 'sec_per_img', 'images')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('methods', nargs='+', help='"bicubic" or NAME=OPTION_FILE, in table order')
    p.add_argument('-o', '--output', required=True, help='markdown table path; a .csv is written beside it')
    p.add_argument('--testsets', nargs='*', default=None, help='test-set names to keep (default: all)')
    p.add_argument('--reference', default=None,
                   help='option file whose test sets bicubic uses (default: the first method option file)')
    p.add_argument('--save-images', action='store_true', help='also write the SR images under results/')
    p.add_argument('--overwrite', action='store_true', help='replace an existing table')
    return p


def bicubic_metrics(dataset_opt: dict, scale: int) -> dict:
    """Y PSNR / SSIM of bicubic upsampling (MATLAB-style, basicsr's imresize) on one test set."""
    import numpy as np
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import tensor2img
    from basicsr.utils.matlab_functions import imresize

    dataset = build_dataset(dataset_opt)
    psnr, ssim, start = [], [], time.perf_counter()
    for i in range(len(dataset)):
        sample = dataset[i]
        up = imresize(sample['lq'].clamp(0, 1), scale)
        sr, gt = tensor2img(up), tensor2img(sample['gt'])
        psnr.append(calculate_psnr(sr, gt, crop_border=scale, test_y_channel=True))
        ssim.append(calculate_ssim(sr, gt, crop_border=scale, test_y_channel=True))
    n = len(dataset)
    return {'psnr': float(np.mean(psnr)), 'ssim': float(np.mean(ssim)),
            'sec_per_img': (time.perf_counter() - start) / n, 'images': n}


def run_method(option_file: str, keep: set[str] | None, save_images: bool) -> dict[str, dict]:
    """Metrics per test set for one option file."""
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.models import build_model
    from basicsr.utils import make_exp_dirs

    from ssr.utils.options import parse_options
    from ssr.utils.paths import repo_root

    opt, _ = parse_options(str(repo_root()), is_train=False, argv=['-opt', option_file])
    make_exp_dirs(opt)
    model = build_model(opt)
    results = {}
    for _, dataset_opt in sorted(opt['datasets'].items()):
        if keep and dataset_opt['name'] not in keep:
            continue
        dataset = build_dataset(dataset_opt)
        loader = build_dataloader(dataset, dataset_opt, num_gpu=opt['num_gpu'], dist=False, sampler=None,
                                  seed=opt['manual_seed'])
        start = time.perf_counter()
        model.validation(loader, current_iter=opt['name'], tb_logger=None, save_img=save_images)
        row = dict(getattr(model, 'metric_results', {}))
        row.update(getattr(model, 'kernel_metric_results', None) or {})
        row.update(sec_per_img=(time.perf_counter() - start) / len(dataset), images=len(dataset))
        model.kernel_metric_results = None
        results[dataset_opt['name']] = row
        logger.info('%s on %s: %s', opt['name'], dataset_opt['name'], row)
    return results


def format_markdown(rows: list[dict]) -> str:
    def cell(value, digits):
        return '' if value is None else f'{value:.{digits}f}'

    lines = ['| method | test set | Y-PSNR | Y-SSIM | kernel MSE | kernel PSNR | s / img |', '|---|---|---:|---:|---:|---:|---:|']
    for r in rows:
        mse = None if r.get('kernel_mse') is None else r['kernel_mse'] * 1e6
        lines.append(f"| {r['method']} | {r['testset']} | {cell(r.get('psnr'), 2)} | {cell(r.get('ssim'), 4)} | "
                     f"{cell(mse, 2)} | {cell(r.get('kernel_psnr'), 2)} | {cell(r.get('sec_per_img'), 2)} |")
    lines.append('')
    lines.append('kernel MSE in units of 1e-6 (per tap); kernel PSNR with the largest true tap as peak.')
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[evaluate] %(message)s')
    import ssr  # noqa: F401
    from ssr.utils.options import load_options

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it', output)
        return 1
    methods = []
    for item in args.methods:
        name, _, path = item.partition('=')
        if name != 'bicubic' and not path:
            logger.error('method %r: give NAME=OPTION_FILE or bicubic', item)
            return 2
        methods.append((name, path))
    keep = set(args.testsets) if args.testsets else None
    reference = args.reference or next((p for _, p in methods if p), None)
    rows = []
    for name, path in methods:
        try:
            if name == 'bicubic':
                if reference is None:
                    logger.error('bicubic needs --reference or another method to take its test sets from')
                    return 2
                ref = load_options(reference, is_train=False)
                for _, ds in sorted(ref['datasets'].items()):
                    if not keep or ds['name'] in keep:
                        ds = dict(ds, phase='test', scale=ref.get('scale', 4))
                        rows.append({'method': 'bicubic', 'testset': ds['name'], **bicubic_metrics(ds, ds['scale'])})
                continue
            for testset, row in run_method(path, keep, args.save_images).items():
                rows.append({'method': name, 'testset': testset, **row})
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            logger.error('method %s failed: %s', name, e)
            return 1
    rows.sort(key=lambda r: (r['testset'], [m for m, _ in methods].index(r['method'])))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f'.{output.name}.tmp')
    tmp.write_text(format_markdown(rows), encoding='utf-8')
    tmp.replace(output)
    with open(output.with_suffix('.csv'), 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    sys.stdout.write(format_markdown(rows))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
