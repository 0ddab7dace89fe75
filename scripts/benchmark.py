"""One command for speed and memory: every component of an SSR option file and the whole pipeline, for one size
and device.

Builds the networks of ``--opt`` (default ``options/test_ssr_lite_x4.yml``: DKENet, NBSR, AMFUNet, plus
``network_d`` when the file has one) with random weights (speed does not depend on the values, and no weight file is
needed), and prints a markdown table of the median latency (``--repeats`` warm runs) and the peak memory of the first
run above the state before it and the process's peak during the row (CUDA: allocated memory; CPU: resident set;
CPU allocators reuse freed memory, so the extra of a component whose buffers already exist reads near 0) for:

- the training degradation (``SVDegradation`` of one HR image of ``4 x --lr-size``),
- each network's forward (MiDaS at its native size), the SVKR loop (T and depth of the options),
- one AMFUNet step, the whole sampling (the options' sampler) and decoding,
- end to end: ``SSRModel.test()`` on one LR image (SVKR, conditions, sampling, decoding, colour fix).

Example::

    python scripts/benchmark.py --lr-size 64 --threads 2
    python scripts/benchmark.py --device cuda --lr-size 128 --opt options/test_ssr_x4.yml
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--opt', default='options/test_ssr_lite_x4.yml', help='an SSRModel option file')
    p.add_argument('--lr-size', type=int, default=64, help='LR side, px; the SR is scale x larger (default: 64)')
    p.add_argument('--device', default='cpu', help='cpu or cuda (default: cpu)')
    p.add_argument('--repeats', type=int, default=3, help='timed warm runs per row, median (default: 3)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    return p


def random_weight_options(opt: dict) -> dict:
    """The options with every pretrained path removed (random weights) and SVKR conditions."""
    opt = copy.deepcopy(opt)
    for key in list(opt['path']):
        if key.startswith('pretrain_network_'):
            opt['path'][key] = None
    for key in ('network_sr', 'network_e', 'network_d'):
        for field in ('trunk_path', 'weights_path'):
            if key in opt and field in opt[key]:
                opt[key][field] = None
    return opt


def rows(args: argparse.Namespace):
    from basicsr.models import build_model
    from torch.nn import functional as F

    from ssr.data.degradation import SVDegradation
    from ssr.models.diffusion_sampling import build_scheduler, sample_latents
    from ssr.models.network_calls import estimate_kernel, super_resolve
    from ssr.utils.options import load_options
    from ssr.utils.process_memory import measure

    opt = random_weight_options(load_options(args.opt, is_train=False))
    opt.update(num_gpu=1 if args.device.startswith('cuda') else 0, dist=False, rank=0, world_size=1, is_train=False)
    if opt.get('model_type') != 'SSRModel' or (opt.get('conditions') or {}).get('source') != 'svkr':
        raise ValueError(f'{args.opt}: benchmark.py needs an SSRModel option file with conditions.source: svkr')
    torch.manual_seed(0)
    model = build_model(opt)
    device, n, s = model.device, args.lr_size, opt['scale']
    g = torch.Generator().manual_seed(0)
    lq = torch.rand(1, 3, n, n, generator=g).to(device)
    hr = torch.rand(1, 3, s * n, s * n, generator=g).to(device)
    depth = torch.rand(1, 1, s * n, s * n, generator=g).to(device)
    model.feed_data({'lq': lq, 'depth': depth})
    degrade = SVDegradation((opt.get('datasets', {}).get('train') or {}).get('degradation'), s)
    net = model.get_bare_model(model.net_g)
    with torch.no_grad():
        kernel, cond_depth, sr = model.conditions(lq)
        z_lr = model._lr_latent(lq)
        feats = net.encode_conditions(kernel, cond_depth, lq, tuple(z_lr.shape[-2:]))
        z0 = model.first_stage.encode(sr.clamp(0, 1))
    t = torch.tensor([500], device=device)
    parts = {
        'degradation (training, HR %d px)' % (s * n): lambda: degrade(hr, depth, torch.Generator(device).manual_seed(0)),
        'DKENet': lambda: estimate_kernel(model.net_e, lq, cond_depth),
        'NBSR': lambda: super_resolve(model.net_sr, lq, kernel, None),
    }
    if model.net_d is not None:
        parts['MiDaS (%s)' % opt['network_d'].get('variant')] = lambda: model.net_d(sr)
    parts.update({
        'SVKR (T = %d, depth %s)' % (model.svkr_iterations, model.svkr_depth): lambda: model.conditions(lq),
        'condition encoders': lambda: net.encode_conditions(kernel, cond_depth, lq, tuple(z_lr.shape[-2:])),
        'AMFUNet, one step': lambda: net(z0, t, z_lr, features=feats),
        'sampling (%s, %d steps, start %s)' % (model.sampler_kind, model.sampler_steps, model.start_step):
            lambda: sample_latents(net, z_lr, feats, tuple(z_lr.shape),
                                   build_scheduler(model.sampler_kind, model.diffusion, model.sampler_steps),
                                   torch.Generator().manual_seed(0),
                                   **({} if model.start_step is None else
                                      {'start_latent': z0, 'start_step': int(model.start_step)})),
        'first-stage decode': lambda: model.first_stage.decode(z0),
        'end to end (SSRModel.test)': model.test,
    })
    for name, fn in parts.items():
        with torch.no_grad():
            seconds, extra = measure(fn, str(device), args.repeats)
        yield name, seconds, extra, total_peak(str(device))


def total_peak(device: str) -> float | None:
    """The whole process's peak since :func:`measure` reset it (CUDA allocated / CPU resident), MiB."""
    from ssr.utils.process_memory import status_kb

    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        return status_kb('VmHWM') / 1024
    except (OSError, RuntimeError):
        return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import ssr  # noqa: F401

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        print('benchmark.py: --device cuda but no CUDA device is available', file=sys.stderr)
        return 2
    try:
        table = ['| component | ms | extra MiB (first run) | process peak MiB |', '|---|---:|---:|---:|']
        for name, seconds, extra, peak in rows(args):
            cells = ['n/a' if v is None else f'{v:.1f}' for v in (extra, peak)]
            table.append(f'| {name} | {seconds * 1e3:.1f} | {cells[0]} | {cells[1]} |')
    except (OSError, ValueError) as e:
        print(f'benchmark.py: {e}', file=sys.stderr)
        return 2
    print(f'{args.opt}, LR {args.lr_size} px, device {args.device}, threads {torch.get_num_threads()}, '
          f'random weights\n')
    print('\n'.join(table))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
