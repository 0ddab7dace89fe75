"""The ssr benchmark: each figure as a ratio against its peer, measured interleaved in the same process.

Prints one markdown table (``ssr.tools.benchmark``): degradation synthesis vs BasicSR's uniform pipeline, DKENet vs
MANet's estimator, NBSR / the blind path vs RRDBNet, SSR sampling and SSR end to end vs an LDM-SR / ResShift-size
UNet with the same step count, and the start-up of ``import ssr`` vs ``import basicsr``. Medians over ``--rounds``
rounds; > 1 means ssr is slower. Detail benchmarks: ``benchmark_degradation.py`` (per SV method, peak memory),
``benchmark_archs.py`` (every network), ``benchmark_components.py`` (every part of one option file),
``benchmark_ssr_vs_ldm.py`` (per batch size and precision, with peak memory).

Example::

    python scripts/benchmark.py --threads 1                    # CPU, about 3 minutes
    python scripts/benchmark.py --device cuda --steps 15 --lr-size 128
"""
from __future__ import annotations

import argparse
import os
import sys

# as ssr/train.py: transparent huge pages for torch's large CPU allocations (read once, before torch is imported)
os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')

import torch  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    from ssr.tools.benchmark import SECTIONS

    p = argparse.ArgumentParser(description='ssr against its peers, one ratio per row.')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu', help='Default: cpu.')
    p.add_argument('--sections', nargs='+', choices=SECTIONS, default=[], metavar='SECTION',
                   help=f'Sections to run, from: {", ".join(SECTIONS)}. Default: all.')
    p.add_argument('--rounds', type=int, default=5, help='Timed rounds per row (medians reported). Default: 5.')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads. Default: torch default.')
    p.add_argument('--batch', type=int, default=16, help='Degradation batch. Default: 16.')
    p.add_argument('--size', type=int, default=256, help='Degradation HR patch side. Default: 256.')
    p.add_argument('--crop', type=int, default=96, help="A data worker's HR crop side. Default: 96.")
    p.add_argument('--lr-size', type=int, default=32, help='LR side of the network and SSR rows. Default: 32.')
    p.add_argument('--steps', type=int, default=4, help='Sampler steps of the SSR rows. Default: 4.')
    p.add_argument('--seed', type=int, default=0, help='Seed of every random input. Default: 0.')
    p.add_argument('--denormals', choices=('flush', 'keep'), default='flush',
                   help="CPU denormal floats: 'flush' (to zero, both sides) or 'keep'. BasicSR's random kernels "
                        'hold denormal taps whose cost depends on the CPU model (its uniform pipeline ran 5-7x '
                        "slower with them on this project's VM), which would make the degradation rows measure the "
                        "peer's denormals. Default: flush.")
    return p


def main(argv: list[str] | None = None) -> int:
    import ssr  # noqa: F401  (registries)
    from ssr.tools.benchmark import BenchmarkSettings, build_pairs, format_table, measure_pairs, tiled_peak_memory

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f'--rounds must be >= 1, got {args.rounds}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.denormals == 'flush')
    settings = BenchmarkSettings(device=args.device, sections=args.sections, batch=args.batch, size=args.size,
                                 crop=args.crop, lr_size=args.lr_size, steps=args.steps, seed=args.seed)
    rows = measure_pairs(build_pairs(settings), args.device, args.rounds,
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    name = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {torch.get_num_threads()} thread(s)'
    print(format_table(rows, f'torch {torch.__version__}, {name}, THP_MEM_ALLOC_ENABLE='
                       f'{os.environ["THP_MEM_ALLOC_ENABLE"]}, denormals {args.denormals}, median of {args.rounds} '
                       'interleaved rounds'))
    if args.device == 'cuda' and (not args.sections or 'SSR' in args.sections):
        peak = tiled_peak_memory(settings)
        print(f"\nSSR end to end, {peak['hr_size']}² output, latent tiles {peak['tile']} / overlap "
              f"{peak['overlap']}, {args.steps} steps, bf16: {peak['seconds']:.2f} s, peak {peak['peak_mib']:.0f} MiB")
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
