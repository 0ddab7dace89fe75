"""Speed and memory of every component of an SSR option file and of the whole pipeline, for one LR size and device.

The networks of the option file (``SSRModel`` with ``conditions.source: svkr``: DKENet, NBSR, AMFUNet, plus
``network_d`` when the file has one) are built with random weights (speed does not depend on the values, and no
weight file is needed). Each row is the median latency of ``repeats`` warm runs, the peak memory of the first run
above the state before it and the process's peak during the row (CUDA: allocated memory; CPU: resident set; CPU
allocators reuse freed memory, so the extra of a component whose buffers already exist reads near 0), for:

- the training degradation (``SVDegradation`` of one HR image of ``4 x lr_size``),
- each network's forward (MiDaS at its native size), the SVKR loop (T and depth of the options),
- one AMFUNet step, the whole sampling (the options' sampler) and decoding,
- the kernel-consistency step of ``sampler.consistency`` (its settings, or the defaults when the options leave it
  off), per corrected sampler step: decode, all ``iters`` conjugate-gradient iterations (no early stop: the worst
  case; each is one SV blur + one adjoint), encode,
- end to end: ``SSRModel.test()`` on one LR image (SVKR, conditions, sampling, decoding, colour fix).

CLI: ``scripts/benchmark_components.py``.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace

import torch

__all__ = ['component_rows', 'random_weight_options', 'total_peak']


def random_weight_options(opt: dict) -> dict:
    """The options with every pretrained path removed (random weights)."""
    opt = copy.deepcopy(opt)
    for key in list(opt['path']):
        if key.startswith('pretrain_network_'):
            opt['path'][key] = None
    for key in ('network_sr', 'network_e', 'network_d'):
        for field in ('trunk_path', 'weights_path'):
            if key in opt and field in opt[key]:
                opt[key][field] = None
    return opt


def total_peak(device: str) -> float | None:
    """The whole process's peak since :func:`~ssr.utils.process_memory.measure` reset it (CUDA allocated / CPU
    resident), MiB; ``None`` where the CPU figure cannot be read."""
    from ssr.utils.process_memory import status_kb

    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        return status_kb('VmHWM') / 1024
    except (OSError, RuntimeError):
        return None


def component_rows(opt_path: str, lr_size: int = 64, device: str = 'cpu',
                   repeats: int = 3) -> Iterator[tuple[str, float, float | None, float | None]]:
    """``(component, seconds, extra MiB of the first run, process peak MiB)`` for every row listed above.

    Raises:
        ValueError: the file is not an ``SSRModel`` file with ``conditions.source: svkr``.
    """
    from basicsr.models import build_model

    from ssr.data.degradation import SVDegradation
    from ssr.pipelines.sampling import ConsistencyConfig, sample_latents
    from ssr.pipelines.svkr import estimate_kernel, super_resolve
    from ssr.utils.options import load_options
    from ssr.utils.process_memory import measure

    opt = random_weight_options(load_options(opt_path, is_train=False))
    opt.update(num_gpu=1 if device.startswith('cuda') else 0, dist=False, rank=0, world_size=1, is_train=False)
    if opt.get('model_type') != 'SSRModel' or (opt.get('conditions') or {}).get('source') != 'svkr':
        raise ValueError(f'{opt_path}: the component benchmark needs an SSRModel option file with '
                         'conditions.source: svkr')
    torch.manual_seed(0)
    model = build_model(opt)
    pipe, dev, n, s = model.pipeline, model.device, lr_size, opt['scale']
    cfg, sampler = pipe.config, pipe.config.sampler
    g = torch.Generator().manual_seed(0)
    lq = torch.rand(1, 3, n, n, generator=g).to(dev)
    hr = torch.rand(1, 3, s * n, s * n, generator=g).to(dev)
    depth = torch.rand(1, 1, s * n, s * n, generator=g).to(dev)
    model.feed_data({'lq': lq, 'depth': depth})
    degrade = SVDegradation((opt.get('datasets', {}).get('train') or {}).get('degradation'), s)
    net = pipe.unet
    with torch.no_grad():
        kernel, cond_depth, sr = pipe.conditions(lq, depth=depth)
        z_lr = pipe.lr_latent(lq)
        feats = net.encode_conditions(kernel, cond_depth, lq, tuple(z_lr.shape[-2:]))
        z0 = pipe.first_stage.encode(sr.clamp(0, 1))
    t = torch.tensor([500], device=dev)
    start = {} if sampler.start_step is None else {'start_latent': z0, 'start_step': sampler.start_step}
    cons = replace(sampler.consistency or ConsistencyConfig(), sigma=None)
    consistency_pipe = copy.copy(pipe)
    consistency_pipe.config = replace(cfg, sampler=replace(sampler, consistency=cons))
    correct = consistency_pipe.consistency_step(lq, kernel, None)
    parts = {
        f'degradation (training, HR {s * n} px)': lambda: degrade(hr, depth, torch.Generator(dev).manual_seed(0)),
        'DKENet': lambda: estimate_kernel(pipe.estimator, lq, cond_depth),
        'NBSR': lambda: super_resolve(pipe.sr_net, lq, kernel, None),
    }
    if pipe.depth_net is not None:
        parts[f'MiDaS ({opt["network_d"].get("variant")})'] = lambda: pipe.depth_net(sr)
    parts.update({
        f'SVKR (T = {cfg.svkr.iterations}, depth {cfg.svkr.depth})': lambda: pipe.conditions(lq, depth=depth),
        'condition encoders': lambda: net.encode_conditions(kernel, cond_depth, lq, tuple(z_lr.shape[-2:])),
        'AMFUNet, one step': lambda: net(z0, t, z_lr, features=feats),
        f"sampling ({sampler.kind}, {sampler.steps} steps, "
        f"{'from noise' if sampler.start_step is None else f'start {sampler.start_step}'})":
            lambda: sample_latents(net, z_lr, feats, tuple(z_lr.shape), sampler.scheduler(cfg.diffusion),
                                   torch.Generator().manual_seed(0), **start),
        'first-stage decode': lambda: pipe.first_stage.decode(z0),
        f'consistency step ({cons.iters} CG iterations, weight {cons.weight:g}), per corrected sampler step':
            lambda: correct(z0),
        'end to end (SSRModel.test)': model.test,
    })
    for name, fn in parts.items():
        with torch.no_grad():
            seconds, extra = measure(fn, str(dev), repeats)
        yield name, seconds, extra, total_peak(str(dev))
