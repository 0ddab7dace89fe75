"""Speed and memory of every component of an SSR option file and of the whole pipeline, for one size and device.

Prints a markdown table (see :mod:`ssr.tools.component_benchmark`): the training degradation, each network, the
SVKR loop, the condition encoders, one AMFUNet step, the sampling, the decoding, the kernel-consistency step per
corrected sampler step (``sampler.consistency``) and ``SSRModel.test()`` end to end, with random weights.

Example::

    python scripts/benchmark_components.py --lr-size 64 --threads 2
    python scripts/benchmark_components.py --device cuda --lr-size 128 --opt options/test_ssr_x4.yml
"""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--opt', default='options/test_ssr_lite_x4.yml',
                   help='an SSRModel option file with conditions.source: svkr (default: options/test_ssr_lite_x4.yml)')
    p.add_argument('--lr-size', type=int, default=64, help='LR side, px; the SR is scale x larger (default: 64)')
    p.add_argument('--device', default='cpu', help='cpu or cuda (default: cpu)')
    p.add_argument('--repeats', type=int, default=3, help='timed warm runs per row, median (default: 3)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    import ssr  # noqa: F401
    from ssr.tools.component_benchmark import component_rows

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        print('benchmark_components.py: --device cuda but no CUDA device is available', file=sys.stderr)
        return 2
    try:
        table = ['| component | ms | extra MiB (first run) | process peak MiB |', '|---|---:|---:|---:|']
        for name, seconds, extra, peak in component_rows(args.opt, args.lr_size, args.device, args.repeats):
            cells = ['n/a' if v is None else f'{v:.1f}' for v in (extra, peak)]
            table.append(f'| {name} | {seconds * 1e3:.1f} | {cells[0]} | {cells[1]} |')
    except (OSError, ValueError) as e:
        print(f'benchmark_components.py: {e}', file=sys.stderr)
        return 2
    print(f'{args.opt}, LR {args.lr_size} px, device {args.device}, threads {torch.get_num_threads()}, '
          f'random weights\n')
    print('\n'.join(table))
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
