"""Run several methods on several test sets and write a results table (markdown + CSV).

Each method is a test option file (``NAME=options/test_X.yml``) run through BasicSR's test machinery in this process;
``bicubic`` is built in. Test sets come from the option files (``datasets.test_*``); ``--testsets`` restricts them
by name. Every method is scored with the same metrics, which replace the option files' ``val.metrics``: Y-channel
PSNR / SSIM and NIQE (basicsr), ST-LPIPS (weights shipped in stlpips-pytorch), and LPIPS / MUSIQ / CLIP-IQA when
their local weight files are given (``--lpips-backbone``, ``--musiq-weights``, ``--clipiqa-backbone``; a metric
without weights is marked n/a, nothing downloads). Also reported: kernel error where a method estimates kernel fields
and the set stores ground truth, and seconds per image of the model alone (metrics excluded). SSR models with SVKR
conditions add a row for their blind path (``NAME / I^T``). Logic: ``ssr.tools.evaluation``, ``ssr.metrics.tables``.

Example:
    python scripts/evaluate.py bicubic realsr=options/test_realsr_x4.yml blind=options/test_blind_x4.yml \
        ssr=options/test_ssr_lite_x4.yml -o results/table_x4.md
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ssr.metrics.tables import METRICS

logger = logging.getLogger('evaluate')


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[evaluate] %(message)s')
    from ssr.metrics.tables import metric_options, write_tables
    from ssr.tools.evaluation import MethodFailed, evaluate_methods
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
    reference = args.reference or next((p for _, p in methods if p), None)
    if reference is None:
        logger.error('bicubic needs --reference or another method to take its test sets from')
        return 2
    try:
        scale = load_options(reference, is_train=False).get('scale', 4)
        metrics, absent = metric_options(args.metrics, scale, lpips_backbone=args.lpips_backbone,
                                         musiq_weights=args.musiq_weights, clipiqa_backbone=args.clipiqa_backbone)
    except (OSError, ValueError) as e:
        logger.error('%s', e)
        return 2
    try:
        rows = evaluate_methods(methods, metrics, reference=reference, keep=set(args.testsets or ()) or None,
                                save_images=args.save_images, results_root=output.parent)
    except MethodFailed as e:
        logger.error('%s', e)
        return 1
    sys.stdout.write(write_tables(rows, args.metrics, absent, output))
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
