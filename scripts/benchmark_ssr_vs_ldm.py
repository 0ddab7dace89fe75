"""Inference time and peak memory of SSR (SVKR + AMF-UNet sampling) next to an LDM-SR-size diffusers UNet.

Prints one markdown table (see :mod:`ssr.tools.ssr_vs_ldm_benchmark`): for each configuration (model x ``--batch``
x ``--steps``, fp32 or bf16 autocast) the median time and peak memory of each part (SSR: ``svkr``, ``conditions``,
``sampling``, ``decode``; LDM-SR: ``sampling``) and of the whole, for an LR of ``--lr-size``^2 upscaled x4, with
random weights, each configuration in a fresh subprocess. On a CPU use ``--unet-size tiny`` and a small
``--lr-size`` (the default LR 32 px x 15 steps takes minutes with the default size and the LDM-SR baseline alone
takes tens of seconds).

Example::

    python scripts/benchmark_ssr_vs_ldm.py --unet-size tiny --lr-size 32 --steps 15 20
    python scripts/benchmark_ssr_vs_ldm.py --device cuda --lr-size 128 --batch 1 8 --bf16
"""
from __future__ import annotations

import argparse
import logging

import torch

from ssr.tools.ssr_vs_ldm_benchmark import (BASELINE_PARTS, SIZES, SSR_PARTS, count_parameters, format_table,
                                            measure_all)

__all__ = ['BASELINE_PARTS', 'SSR_PARTS', 'main']
logger = logging.getLogger('benchmark_ssr_vs_ldm')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu', help='device (default: cpu)')
    p.add_argument('--lr-size', type=int, default=32, help='LR side, px; the SR is 4x (default: 32)')
    p.add_argument('--steps', type=int, nargs='+', default=[15, 20], help='sampling steps N (default: 15 20)')
    p.add_argument('--batch', type=int, nargs='+', default=[1], help='batch sizes (default: 1)')
    p.add_argument('--bf16', action='store_true', help='also run every configuration under bf16 autocast '
                   '(default: fp32 only)')
    p.add_argument('--unet-size', choices=tuple(SIZES), default='default',
                   help='AMFUNet / SVKR networks: ~117 M default config or tiny (default: default)')
    p.add_argument('--repeats', type=int, default=3, help='timed runs per configuration, median (default: 3)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--seed', type=int, default=0, help='seed of the inputs and the sampler noise (default: 0)')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    if args.device == 'cuda' and not torch.cuda.is_available():
        logger.error('--device cuda: no CUDA device available; run with --device cpu')
        return 1
    if args.lr_size < 8 or args.lr_size % 8:
        logger.error(f'--lr-size {args.lr_size} must be a positive multiple of 8 (the UNets downsample 8x)')
        return 1
    try:
        rows = measure_all(args.lr_size, args.device, args.batch, args.steps, args.bf16, args.unet_size,
                           args.repeats, args.seed, args.threads, log=logger.info)
        params = count_parameters(args.unet_size)
    except RuntimeError as e:
        logger.error(f'{e}\nCheck the sizes (try --unet-size tiny or a smaller --lr-size).')
        return 1
    print(format_table(rows, params, args.lr_size, args.device, args.unet_size, args.repeats))
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
