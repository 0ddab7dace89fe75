"""Inference time and peak memory of SSR (SVKR + AMF-UNet sampling) next to an LDM-SR-size diffusers UNet.

Prints one markdown table: for each configuration (model x ``--batch`` x ``--steps``, fp32 or bf16 autocast) the
median time and peak memory of each part and of the whole, for an LR of ``--lr-size``^2 upscaled x4:

- SSR: ``svkr`` (T = 3 rounds of DKENet + NBSR, constant depth), ``conditions`` (latent of the bicubic LR and
  ``AMFUNet.encode_conditions``), ``sampling`` (N DDIM steps of the AMF-UNet), ``decode`` (pixel-unshuffle first
  stage), ``end-to-end`` (all of them);
- LDM-SR: a diffusers ``UNet2DModel`` of the LDM-SR x4 size (in_channels 6, block_out_channels (160, 320, 320, 640),
  2 layers per block, attention below the first level, ~118 M parameters) run for the same N steps on the same latent grid; its VQ-f4 decoder is not
  included, so its ``end-to-end`` equals ``sampling``.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` minus the allocation before the part; on the CPU the growth
of the peak resident set (VmHWM, reset through /proc/self/clear_refs) over the resident set before the part, each
configuration in a fresh subprocess so earlier ones do not hide it. Networks have random weights (speed does not
depend on the values). ``--unet-size default`` is the ~117 M AMFUNet default configuration with the default DKENet /
NBSR; on a CPU use ``--unet-size tiny`` and a small ``--lr-size`` (the default LR 32 px x 15 steps takes minutes
with the default size and the LDM-SR baseline alone takes tens of seconds).

Example::

    python scripts/benchmark_ssr.py --unet-size tiny --lr-size 32 --steps 15 20
    python scripts/benchmark_ssr.py --device cuda --lr-size 128 --batch 1 8 --bf16
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from ssr.utils.process_memory import measure

REPO = Path(__file__).resolve().parents[1]
SCALE = 4
MODELS = ('SSR', 'LDM-SR UNet')
SSR_PARTS = ('svkr', 'conditions', 'sampling', 'decode', 'end-to-end')
BASELINE_PARTS = ('sampling', 'end-to-end')
LDM_SR_UNET = dict(in_channels=6, out_channels=3, block_out_channels=(160, 320, 320, 640), layers_per_block=2,
                   down_block_types=('DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'),
                   up_block_types=('AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'),
                   attention_head_dim=32)
SIZES = {
    # unet-size: (AMFUNet kwargs, DKENet kwargs, NBSR kwargs)
    'tiny': ({'block_out_channels': [16, 32], 'layers_per_block': 1, 'norm_num_groups': 4, 'attention_head_dim': 8,
              'amf_hidden': 16, 'kernel_in_ch': 25},
             {'num_feat': 8, 'kernel_size': 5},
             {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'kernel_size': 5, 'pca_components': 6,
              'sft_hidden_ch': 8}),
    'default': ({'kernel_in_ch': 441}, {'kernel_size': 21}, {'kernel_size': 21}),
}

logger = logging.getLogger('benchmark_ssr')


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
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)  # JSON configuration, run in a subprocess
    return p


def build_ssr(size: str, device: str):
    """(net_e, net_sr, AMFUNet, first stage, kernel size) with random weights, frozen, in eval mode."""
    from basicsr.archs import build_network

    from ssr.archs.first_stage import PixelUnshuffleStage

    unet_kw, e_kw, sr_kw = SIZES[size]
    stage = PixelUnshuffleStage(SCALE)
    nets = [build_network({'type': t, **kw}) for t, kw in
            (('DKENet', e_kw), ('NBSR', sr_kw), ('AMFUNet', {'latent_channels': stage.latent_channels, **unet_kw}))]
    nets = [n.to(device).eval().requires_grad_(False) for n in nets]
    return (*nets, stage, e_kw['kernel_size'])


def ssr_parts(cfg: dict) -> dict[str, Callable[[], object]]:
    """One closure per SSR part on fixed inputs; the later parts reuse the earlier parts' outputs."""
    from torch.nn import functional as F

    from ssr.models.diffusion_sampling import build_scheduler, sample_latents
    from ssr.models.network_calls import estimate_kernel, super_resolve
    from ssr.models.svkr import SVKR

    device, n, b = cfg['device'], cfg['lr_size'], cfg['batch']
    net_e, net_sr, unet, stage, _ = build_ssr(cfg['unet_size'], device)
    lq = torch.rand(b, 3, n, n, generator=torch.Generator().manual_seed(cfg['seed'])).to(device)
    svkr = SVKR(lambda img: torch.full_like(img[:, :1], 0.5), lambda x, d: estimate_kernel(net_e, x, d),
                lambda x, k: super_resolve(net_sr, x, k, None), 3, 0.9)
    state = {}

    def conditions():
        out = state.get('svkr') or svkr(lq)
        z_lr = stage.encode(F.interpolate(lq, scale_factor=SCALE, mode='bicubic').clamp(0, 1))
        state['cond'] = z_lr, unet.encode_conditions(out.kernel, out.depth, lq, tuple(z_lr.shape[-2:]))

    def sampling():
        z_lr, feats = state['cond']
        scheduler = build_scheduler('ddim', {}, cfg['steps'])
        state['z0'] = sample_latents(unet, z_lr, feats, tuple(z_lr.shape), scheduler,
                                     torch.Generator().manual_seed(cfg['seed']))

    def decode():
        return stage.decode(state['z0'].float()).clamp(0, 1)

    def svkr_part():
        state['svkr'] = svkr(lq)

    def end_to_end():
        state.clear()
        svkr_part(), conditions(), sampling()
        return decode()

    return {'svkr': svkr_part, 'conditions': conditions, 'sampling': sampling, 'decode': decode,
            'end-to-end': end_to_end}


def baseline_parts(cfg: dict) -> dict[str, Callable[[], object]]:
    """The LDM-SR-size UNet on ``concat(z_t, z_lr)`` (3 + 3 channels) at the LR grid, N DDIM steps."""
    from diffusers import UNet2DModel

    from ssr.models.diffusion_sampling import build_scheduler

    device, n, b = cfg['device'], cfg['lr_size'], cfg['batch']
    unet = UNet2DModel(**LDM_SR_UNET).to(device).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(cfg['seed'])
    z_lr, noise = torch.randn(b, 3, n, n, generator=g).to(device), torch.randn(b, 3, n, n, generator=g).to(device)

    def sampling():
        scheduler = build_scheduler('ddim', {}, cfg['steps'])
        z = noise
        for t in scheduler.timesteps:
            eps = unet(torch.cat([z, z_lr], 1), t.to(device)).sample
            z = scheduler.step(eps.float(), t, z).prev_sample
        return z

    return {'sampling': sampling, 'end-to-end': sampling}


def run_worker(cfg: dict) -> list[dict]:
    """Measures every part of one configuration in this process (call it in a fresh one for CPU memory)."""
    import ssr  # noqa: F401  (registers the archs)

    torch.manual_seed(cfg['seed'])
    if cfg.get('threads'):
        torch.set_num_threads(cfg['threads'])
    parts = ssr_parts(cfg) if cfg['model'] == 'SSR' else baseline_parts(cfg)
    autocast = torch.autocast(cfg['device'], dtype=torch.bfloat16, enabled=cfg['bf16'])
    rows = []
    with torch.no_grad(), autocast:
        for name, fn in parts.items():
            if cfg.get('parts') and name not in cfg['parts']:
                continue
            seconds, peak = measure(fn, cfg['device'], cfg['repeats'])
            rows.append({**cfg, 'part': name, 'ms': 1000 * seconds, 'peak_mib': peak})
    return rows


def measure_in_subprocess(cfg: dict) -> list[dict]:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    cmd = [sys.executable, str(Path(__file__).resolve()), '--worker', json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f'worker for {cfg} failed:\n{proc.stderr[-2000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def count_parameters(size: str) -> dict[str, float]:
    """Millions of parameters of the AMFUNet (with encoders and AMF) and of the LDM-SR baseline."""
    import ssr  # noqa: F401
    from diffusers import UNet2DModel

    unet = build_ssr(size, 'cpu')[2]
    return {'SSR': sum(p.numel() for p in unet.parameters()) / 1e6,
            'LDM-SR UNet': sum(p.numel() for p in UNet2DModel(**LDM_SR_UNET).parameters()) / 1e6}


def format_table(rows: list[dict], params: dict[str, float], args: argparse.Namespace) -> str:
    n = args.lr_size
    lines = [f'LR {n}² -> SR {SCALE * n}², device {args.device}, unet-size {args.unet_size}, '
             f'median of {args.repeats}; peak = memory of a cold call above the state before it', '',
             '| model | params (M) | batch | steps | precision | part | time (ms) | peak (MiB) |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        peak = 'n/a' if r['peak_mib'] is None else f"{r['peak_mib']:.1f}"
        lines.append(f"| {r['model']} | {params[r['model']]:.2f} | {r['batch']} | {r['steps']} | "
                     f"{'bf16' if r['bf16'] else 'fp32'} | {r['part']} | {r['ms']:.1f} | {peak} |")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    if args.worker is not None:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0
    if args.device == 'cuda' and not torch.cuda.is_available():
        logger.error('--device cuda: no CUDA device available; run with --device cpu')
        return 1
    if args.lr_size < 8 or args.lr_size % 8:
        logger.error(f'--lr-size {args.lr_size} must be a positive multiple of 8 (the UNets downsample 8x)')
        return 1
    rows = []
    try:
        for bf16 in (False, True) if args.bf16 else (False, ):
            for batch in args.batch:
                for steps in args.steps:
                    for model in MODELS:
                        cfg = {'model': model, 'device': args.device, 'lr_size': args.lr_size, 'batch': batch,
                               'steps': steps, 'bf16': bf16, 'unet_size': args.unet_size, 'repeats': args.repeats,
                               'seed': args.seed, 'threads': args.threads}
                        logger.info(f'measuring {model}, batch {batch}, {steps} steps, {"bf16" if bf16 else "fp32"}')
                        names = SSR_PARTS if model == 'SSR' else BASELINE_PARTS
                        # the whole pipeline in a process of its own: after its parts ran, its cold peak is hidden
                        rows += measure_in_subprocess({**cfg, 'parts': [n for n in names if n != 'end-to-end']})
                        rows += measure_in_subprocess({**cfg, 'parts': ['end-to-end']})
        params = count_parameters(args.unet_size)
    except RuntimeError as e:
        logger.error(f'{e}\nCheck the sizes (try --unet-size tiny or a smaller --lr-size).')
        return 1
    print(format_table(rows, params, args))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
