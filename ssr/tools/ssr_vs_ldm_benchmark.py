"""Inference time and peak memory of SSR (SVKR + AMF-UNet sampling, :class:`~ssr.pipelines.SSRPipeline`) next to an
LDM-SR-size diffusers UNet, per batch size, number of steps and precision.

For an LR of ``lr_size``^2 upscaled x4, each configuration gives the median time and peak memory of each part and of
the whole:

- SSR: ``svkr`` (T = 3 rounds of DKENet + NBSR, constant depth), ``conditions`` (latent of the bicubic LR and
  ``AMFUNet.encode_conditions``), ``sampling`` (N DDIM steps of the AMF-UNet), ``decode`` (pixel-unshuffle first
  stage), ``end-to-end`` (the pipeline's call: all of them);
- LDM-SR: a diffusers ``UNet2DModel`` of the LDM-SR x4 size (in_channels 6, block_out_channels (160, 320, 320, 640),
  2 layers per block, attention below the first level, ~118 M parameters) run for the same N steps on the same
  latent grid; its VQ-f4 decoder is not included, so its ``end-to-end`` equals ``sampling``.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` minus the allocation before the part; on the CPU the growth
of the peak resident set (VmHWM, reset through /proc/self/clear_refs) over the resident set before the part, each
configuration in a fresh subprocess (``python -m ssr.tools.ssr_vs_ldm_benchmark CONFIG_JSON``) so earlier ones do
not hide it. Networks have random weights (speed does not depend on the values). Size ``default`` is the ~117 M
AMFUNet default configuration with the default DKENet / NBSR; ``tiny`` is for CPUs and tests.
CLI: ``scripts/benchmark_ssr_vs_ldm.py``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ['BASELINE_PARTS', 'MODELS', 'SIZES', 'SSR_PARTS', 'count_parameters', 'format_table',
           'measure_in_subprocess', 'run_worker']

SCALE = 4
MODELS = ('SSR', 'LDM-SR UNet')
SSR_PARTS = ('svkr', 'conditions', 'sampling', 'decode', 'end-to-end')
BASELINE_PARTS = ('sampling', 'end-to-end')
LDM_SR_UNET = dict(in_channels=6, out_channels=3, block_out_channels=(160, 320, 320, 640), layers_per_block=2,
                   down_block_types=('DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'),
                   up_block_types=('AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'),
                   attention_head_dim=32)
SIZES = {
    # size: (AMFUNet kwargs, DKENet kwargs, NBSR kwargs)
    'tiny': ({'block_out_channels': [16, 32], 'layers_per_block': 1, 'norm_num_groups': 4, 'attention_head_dim': 8,
              'amf_hidden': 16, 'kernel_in_ch': 25},
             {'num_feat': 8, 'kernel_size': 5},
             {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'kernel_size': 5, 'pca_components': 6,
              'sft_hidden_ch': 8}),
    'default': ({'kernel_in_ch': 441}, {'kernel_size': 21}, {'kernel_size': 21}),
}


def build_ssr(size: str, device: str, steps: int, seed: int):
    """An :class:`~ssr.pipelines.SSRPipeline` of random networks (frozen, eval mode): SVKR T = 3 with constant
    depth, ``steps`` DDIM steps from pure noise seeded by ``seed``, pixel-unshuffle first stage."""
    from basicsr.archs import build_network

    from ssr.pipelines import SamplerConfig, SSRPipeline, SSRPipelineConfig, SVKRConfig, diffusion_config

    unet_kw, e_kw, sr_kw = SIZES[size]
    config = SSRPipelineConfig(scale=SCALE, diffusion=diffusion_config(None),
                               sampler=SamplerConfig(kind='ddim', steps=steps, seed=seed), source='svkr',
                               svkr=SVKRConfig(iterations=3, gamma=0.9, depth='none'), bf16=False,
                               first_stage={'kind': 'pixel_unshuffle', 'factor': SCALE})
    stage = config.build_first_stage()
    nets = [build_network({'type': t, **kw}) for t, kw in
            (('DKENet', e_kw), ('NBSR', sr_kw), ('AMFUNet', {'latent_channels': stage.latent_channels, **unet_kw}))]
    net_e, net_sr, unet = (n.to(device).eval().requires_grad_(False) for n in nets)
    return SSRPipeline(unet, stage.to(device), config, estimator=net_e, sr_net=net_sr)


def ssr_parts(cfg: dict) -> dict[str, Callable[[], object]]:
    """One closure per SSR part on fixed inputs; the later parts reuse the earlier parts' outputs."""
    from ssr.pipelines.sampling import sample_latents

    device, n, b = cfg['device'], cfg['lr_size'], cfg['batch']
    pipe = build_ssr(cfg['unet_size'], device, cfg['steps'], cfg['seed'])
    lq = torch.rand(b, 3, n, n, generator=torch.Generator().manual_seed(cfg['seed'])).to(device)
    state = {}

    def svkr():
        state['svkr'] = pipe.conditions(lq)

    def conditions():
        kernel, depth, _ = state.get('svkr') or pipe.conditions(lq)
        z_lr = pipe.lr_latent(lq)
        state['cond'] = z_lr, pipe.unet.encode_conditions(kernel, depth, lq, tuple(z_lr.shape[-2:]))

    def sampling():
        z_lr, feats = state['cond']
        scheduler = pipe.config.sampler.scheduler(pipe.config.diffusion)
        state['z0'] = sample_latents(pipe.unet, z_lr, feats, tuple(z_lr.shape), scheduler,
                                     torch.Generator().manual_seed(cfg['seed']))

    def decode():
        return pipe.first_stage.decode(state['z0'].float()).clamp(0, 1)

    return {'svkr': svkr, 'conditions': conditions, 'sampling': sampling, 'decode': decode,
            'end-to-end': lambda: pipe(lq).sr}


def baseline_parts(cfg: dict) -> dict[str, Callable[[], object]]:
    """The LDM-SR-size UNet on ``concat(z_t, z_lr)`` (3 + 3 channels) at the LR grid, N DDIM steps."""
    from diffusers import UNet2DModel

    from ssr.pipelines.sampling import build_scheduler

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
    from ssr.utils.process_memory import measure

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
    """:func:`run_worker` of ``cfg`` in a fresh Python process.

    Raises:
        RuntimeError: the worker failed (with the end of its stderr).
    """
    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [repo, env.get('PYTHONPATH')]))
    cmd = [sys.executable, '-m', __name__, json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f'worker for {cfg} failed:\n{proc.stderr[-2000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_all(lr_size: int, device: str, batches: list[int], steps: list[int], bf16: bool, unet_size: str,
                repeats: int, seed: int, threads: int | None, log: Callable[[str], object] = print) -> list[dict]:
    """Rows of every configuration (model x batch x steps, fp32 then bf16 when asked), each part measured in a
    subprocess and the end-to-end run in one of its own (after the parts ran, its cold peak would be hidden)."""
    rows = []
    for precision in (False, True) if bf16 else (False, ):
        for batch in batches:
            for n_steps in steps:
                for model in MODELS:
                    cfg = {'model': model, 'device': device, 'lr_size': lr_size, 'batch': batch, 'steps': n_steps,
                           'bf16': precision, 'unet_size': unet_size, 'repeats': repeats, 'seed': seed,
                           'threads': threads}
                    log(f'measuring {model}, batch {batch}, {n_steps} steps, {"bf16" if precision else "fp32"}')
                    names = SSR_PARTS if model == 'SSR' else BASELINE_PARTS
                    rows += measure_in_subprocess({**cfg, 'parts': [n for n in names if n != 'end-to-end']})
                    rows += measure_in_subprocess({**cfg, 'parts': ['end-to-end']})
    return rows


def count_parameters(size: str) -> dict[str, float]:
    """Millions of parameters of the AMFUNet (with encoders and AMF) and of the LDM-SR baseline."""
    import ssr  # noqa: F401
    from diffusers import UNet2DModel

    unet = build_ssr(size, 'cpu', 1, 0).unet
    return {'SSR': sum(p.numel() for p in unet.parameters()) / 1e6,
            'LDM-SR UNet': sum(p.numel() for p in UNet2DModel(**LDM_SR_UNET).parameters()) / 1e6}


def format_table(rows: list[dict], params: dict[str, float], lr_size: int, device: str, unet_size: str,
                 repeats: int) -> str:
    """One markdown table of ``rows`` (model, parameters, batch, steps, precision, part, time, peak)."""
    n = lr_size
    lines = [f'LR {n}² -> SR {SCALE * n}², device {device}, unet-size {unet_size}, '
             f'median of {repeats}; peak = memory of a cold call above the state before it', '',
             '| model | params (M) | batch | steps | precision | part | time (ms) | peak (MiB) |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        peak = 'n/a' if r['peak_mib'] is None else f"{r['peak_mib']:.1f}"
        lines.append(f"| {r['model']} | {params[r['model']]:.2f} | {r['batch']} | {r['steps']} | "
                     f"{'bf16' if r['bf16'] else 'fp32'} | {r['part']} | {r['ms']:.1f} | {peak} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    print(json.dumps(run_worker(json.loads(sys.argv[1]))))
