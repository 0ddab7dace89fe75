"""Run several methods on several test sets and write a results table (markdown + CSV).

Each method is a test option file (``NAME=options/test_X.yml``) run through BasicSR's test machinery in this process;
``bicubic`` is built in. Test sets come from the option files (``datasets.test_*``); ``--testsets`` restricts them
by name. Every method is scored with the same metrics, which replace the option files' ``val.metrics``: Y-channel
PSNR / SSIM and NIQE (basicsr), ST-LPIPS (weights shipped in stlpips-pytorch), and LPIPS / MUSIQ / CLIP-IQA when
their local weight files are given (``--lpips-backbone``, ``--musiq-weights``, ``--clipiqa-backbone``; a metric
without weights is marked n/a, nothing downloads). Also reported: kernel error where a method estimates kernel fields
and the set stores ground truth, and seconds per image of the model alone (metrics excluded). SSR models with SVKR
conditions add a row for their blind path (``NAME / I^T``).

Example:
    python scripts/evaluate.py bicubic realsr=options/test_realsr_x4.yml blind=options/test_blind_x4.yml \
        ssr=options/test_ssr_lite_x4.yml -o results/table_x4.md
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger('evaluate')
METRICS = ('psnr', 'ssim', 'niqe', 'stlpips', 'lpips', 'musiq', 'clipiqa')
# metric -> (table header, better, flag that supplies its weights or None)
METRIC_INFO = {'psnr': ('Y-PSNR', 'higher', None), 'ssim': ('Y-SSIM', 'higher', None),
               'niqe': ('NIQE', 'lower', None), 'stlpips': ('ST-LPIPS', 'lower', None),
               'lpips': ('LPIPS', 'lower', '--lpips-backbone'), 'musiq': ('MUSIQ', 'higher', '--musiq-weights'),
               'clipiqa': ('CLIP-IQA', 'higher', '--clipiqa-backbone')}
COLUMNS = ('method', 'testset', *METRICS, 'kernel_mse', 'kernel_psnr', 'sec_per_img', 'images')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('methods', nargs='+', help='"bicubic" or NAME=OPTION_FILE, in table order')
    p.add_argument('-o', '--output', required=True, help='markdown table path; a .csv is written beside it')
    p.add_argument('--testsets', nargs='*', default=None, help='test-set names to keep (default: all)')
    p.add_argument('--reference', default=None,
                   help='option file whose test sets bicubic uses (default: the first method option file)')
    p.add_argument('--metrics', nargs='+', default=list(METRICS), choices=METRICS,
                   help='metrics to report (default: all; those without weight files are marked n/a)')
    p.add_argument('--lpips-backbone', default=None, help="torchvision's ImageNet AlexNet file for LPIPS")
    p.add_argument('--musiq-weights', default=None, help="pyiqa's MUSIQ KonIQ checkpoint")
    p.add_argument('--clipiqa-backbone', default=None, help="OpenAI's CLIP RN50.pt for CLIP-IQA")
    p.add_argument('--save-images', action='store_true',
                   help='also write the SR images, to <table folder>/<option name>/visualization/')
    p.add_argument('--overwrite', action='store_true', help='replace an existing table')
    return p


def metric_options(args: argparse.Namespace, scale: int) -> tuple[dict, dict]:
    """(BasicSR ``val.metrics`` for the requested metrics that can run, {metric: why not} for the others)."""
    table = {
        'psnr': {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': True},
        'ssim': {'type': 'calculate_ssim', 'crop_border': scale, 'test_y_channel': True},
        'niqe': {'type': 'calculate_niqe_or_nan', 'crop_border': scale},
        'stlpips': {'type': 'calculate_stlpips'},
        'lpips': {'type': 'calculate_lpips', 'backbone_path': args.lpips_backbone},
        'musiq': {'type': 'calculate_musiq', 'weights_path': args.musiq_weights},
        'clipiqa': {'type': 'calculate_clipiqa', 'backbone_path': args.clipiqa_backbone},
    }
    chosen, absent = {}, {}
    for name in args.metrics:
        opt = table[name]
        missing = [k for k, v in opt.items() if v is None]
        if missing:
            absent[name] = f'no weights ({METRIC_INFO[name][2]})'
            continue
        for key in ('backbone_path', 'weights_path'):
            if key in opt and not Path(opt[key]).is_file():
                raise FileNotFoundError(f'{METRIC_INFO[name][2]}: {opt[key]} does not exist')
        chosen[name] = opt
    return chosen, absent


def bicubic_metrics(dataset_opt: dict, scale: int, metrics: dict) -> dict:
    """``metrics`` of bicubic upsampling (MATLAB-style, basicsr's imresize) on one test set, averaged."""
    import numpy as np
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_metric
    from basicsr.utils import tensor2img
    from basicsr.utils.matlab_functions import imresize

    dataset = build_dataset(dataset_opt)
    values, seconds = {name: [] for name in metrics}, 0.0
    for i in range(len(dataset)):
        sample = dataset[i]
        start = time.perf_counter()
        up = imresize(sample['lq'].clamp(0, 1), scale)
        seconds += time.perf_counter() - start
        data = {'img': tensor2img(up), 'img2': tensor2img(sample['gt'])}
        for name, opt in metrics.items():
            values[name].append(calculate_metric(data, opt))
    n = len(dataset)
    return {**{name: float(np.mean(v)) for name, v in values.items()}, 'sec_per_img': seconds / n, 'images': n}


def run_method(option_file: str, keep: set[str] | None, save_images: bool, metrics: dict,
               results_root: Path) -> dict[str, dict]:
    """Rows per test set for one option file: ``{testset: row}``, plus ``{testset + ' / I^T': row}`` for an SSR
    model's blind path. Images (``save_images``) go to ``results_root/<name>/visualization/``, so an evaluation
    never archives the ``results/<name>/`` of a ``ssr/test.py`` run."""
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.models import build_model
    from basicsr.utils import make_exp_dirs

    from ssr.utils.options import parse_options
    from ssr.utils.paths import repo_root

    opt, _ = parse_options(str(repo_root()), is_train=False, argv=['-opt', option_file])
    opt.setdefault('val', {})['metrics'] = dict(metrics)
    opt['path']['results_root'] = str(results_root / opt['name'])
    opt['path']['log'] = opt['path']['results_root']
    opt['path']['visualization'] = str(results_root / opt['name'] / 'visualization')
    make_exp_dirs(opt)
    model = build_model(opt)
    seconds = [0.0]
    test = model.test

    def timed_test() -> None:  # the model's time per image, without the metrics
        start = time.perf_counter()
        test()
        seconds[0] += time.perf_counter() - start

    model.test = timed_test
    results = {}
    for _, dataset_opt in sorted(opt['datasets'].items()):
        if keep and dataset_opt['name'] not in keep:
            continue
        dataset = build_dataset(dataset_opt)
        loader = build_dataloader(dataset, dataset_opt, num_gpu=opt['num_gpu'], dist=False, sampler=None,
                                  seed=opt['manual_seed'])
        seconds[0] = 0.0
        model.kernel_metric_results = model.blind_metric_results = None
        model.validation(loader, current_iter=opt['name'], tb_logger=None, save_img=save_images)
        row = dict(getattr(model, 'metric_results', {}))
        row.update(model.kernel_metric_results or {})
        row.update(sec_per_img=seconds[0] / len(dataset), images=len(dataset))
        results[dataset_opt['name']] = row
        if model.blind_metric_results:  # the SSR model's SVKR output; K^T is shared by both rows
            results[dataset_opt['name'] + ' / I^T'] = dict(model.blind_metric_results, images=len(dataset),
                                                           **(model.kernel_metric_results or {}))
        logger.info('%s on %s: %s', opt['name'], dataset_opt['name'], row)
    return results


def format_markdown(rows: list[dict], metrics: list[str], absent: dict[str, str]) -> str:
    def cell(row, key, digits):
        if key in absent:
            return 'n/a'
        value = row.get(key)
        return '' if value is None else f'{value:.{digits}f}'

    digits = {'psnr': 2, 'ssim': 4, 'niqe': 2, 'stlpips': 4, 'lpips': 4, 'musiq': 2, 'clipiqa': 4}
    heads = [f"{METRIC_INFO[m][0]} {'↑' if METRIC_INFO[m][1] == 'higher' else '↓'}" for m in metrics]
    lines = ['| method | test set | ' + ' | '.join(heads) + ' | kernel PSNR ↑ | s / img |',
             '|---|---|' + '---:|' * (len(metrics) + 2)]
    for r in rows:
        values = [cell(r, m, digits[m]) for m in metrics]
        lines.append(f"| {r['method']} | {r['testset']} | " + ' | '.join(values) +
                     f" | {cell(r, 'kernel_psnr', 2)} | {cell(r, 'sec_per_img', 2)} |")
    lines.append('')
    lines.append('Y-PSNR / Y-SSIM / NIQE with a border of `scale` pixels cropped; kernel PSNR with the largest true '
                 'tap as peak; s / img: the model alone on this machine (metrics excluded).')
    for name, why in absent.items():
        lines.append(f'{METRIC_INFO[name][0]}: n/a, {why}.')
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
    try:
        scale = load_options(reference, is_train=False).get('scale', 4) if reference else 4
        metrics, absent = metric_options(args, scale)
    except (OSError, ValueError) as e:
        logger.error('%s', e)
        return 2
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
                        rows.append({'method': 'bicubic', 'testset': ds['name'],
                                     **bicubic_metrics(ds, ds['scale'], metrics)})
                continue
            for testset, row in run_method(path, keep, args.save_images, metrics, output.parent).items():
                label, _, blind = testset.partition(' / ')
                rows.append({'method': f'{name} / {blind}' if blind else name, 'testset': label, **row})
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            logger.error('method %s failed: %s', name, e)
            return 1
    order = [m for m, _ in methods]
    rows.sort(key=lambda r: (r['testset'], order.index(r['method'].split(' / ')[0]), r['method']))
    output.parent.mkdir(parents=True, exist_ok=True)
    text = format_markdown(rows, args.metrics, absent)
    tmp = output.with_name(f'.{output.name}.tmp')
    tmp.write_text(text, encoding='utf-8')
    csv_tmp = output.with_name(f'.{output.stem}.csv.tmp')
    with open(csv_tmp, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(output)
    csv_tmp.replace(output.with_suffix('.csv'))
    sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
