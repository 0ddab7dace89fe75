"""The ssr benchmark: every figure as a ratio against its peer, both measured interleaved in the same process.

Each row pairs an ssr operation with the operation a BasicSR / diffusers user would run in its place, on the same
inputs and device:

========================  ===========================================  =============================================
section                   ssr                                          peer
========================  ===========================================  =============================================
degradation               ``SVDegradation`` (kernel field, SV blur,    BasicSR's uniform pipeline: ``random_mixed_
                          noise, JPEG) on a training batch, a data-    kernels`` per image, ``filter2D``, s-fold
                          worker crop and ``modes: [uniform]``         subsampling, ``random_add_gaussian_noise_pt``,
                                                                       ``DiffJPEG``
networks                  DKENet; NBSR                                 MANet's estimator; BasicSR's RRDBNet (23 blocks)
blind path                SVKR (DKENet + NBSR, T rounds, no depth)     RRDBNet
SSR                       sampling (N AMF-UNet steps with its          the same N steps of an LDM-SR / ResShift-size
                          condition encoders); end to end (SVKR +      diffusers ``UNet2DModel`` (118 M); end to end
                          conditions + sampling + decode)              with a VQ-f4 decoder; RRDBNet
start-up                  ``import ssr``; the blind path's lookups     ``import basicsr`` (with the torchvision alias)
                          (DKENet, NBSR, ``BlindSRModel``)             and its RRDBNet / ``SRModel`` lookups
========================  ===========================================  =============================================

Every round times each row's ssr call and its peer back to back, alternating which goes first; the table reports
the medians over rounds and the median of the per-round ratios (> 1: ssr is slower). Networks have random weights
(speed does not depend on the values). On CUDA the SSR rows also run in bf16 autocast, and in bf16 with the sampler's
UNet captured by ``torch.compile(mode='reduce-overhead')`` (CUDA graphs). CLI: ``scripts/benchmark.py``.
"""
from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ssr.utils.timing import synchronize

__all__ = ['BenchmarkSettings', 'Pair', 'build_pairs', 'format_table', 'measure_pairs', 'tiled_peak_memory']

# diffusers VQModel of LDM's VQ-f4 (the first stage of LDM-SR and ResShift): 3 -> 3 latent channels, f = 4
VQ_F4 = dict(in_channels=3, out_channels=3, latent_channels=3, num_vq_embeddings=8192, vq_embed_dim=3,
             block_out_channels=(128, 256, 512), layers_per_block=2,
             down_block_types=('DownEncoderBlock2D',) * 3, up_block_types=('UpDecoderBlock2D',) * 3)


@dataclass
class Pair:
    """One row: an ssr call and its peer's, each a no-argument callable, plus the ratio's target (None: none)."""

    section: str
    ours_name: str
    ours: Callable[[], object]
    peer_name: str
    peer: Callable[[], object]
    target: float | None = None


@dataclass
class BenchmarkSettings:
    """What :func:`build_pairs` builds.

    Attributes:
        device: ``'cpu'`` or ``'cuda'``.
        sections: which sections to build (see the module docstring); empty = all.
        batch, size: the degradation's training batch, HR patches of ``size``^2.
        crop: the data worker's HR crop side.
        kernel_size, scale: k and s.
        lr_size: LR side of the network, blind-path and SSR rows.
        steps: sampler steps of the SSR rows (the peer UNet runs as many).
        svkr_iterations: T of the blind path and of SSR.
        seed: of every random input.
    """

    device: str = 'cpu'
    sections: list[str] = field(default_factory=list)
    batch: int = 16
    size: int = 256
    crop: int = 96
    kernel_size: int = 21
    scale: int = 4
    lr_size: int = 32
    steps: int = 4
    svkr_iterations: int = 3
    seed: int = 0


SECTIONS = ('degradation', 'networks', 'blind path', 'SSR', 'start-up')
DEGRADATION = {'noise': {'gaussian_prob': 1.0, 'gaussian_sigma_range': [1, 30], 'poisson_prob': 0.0,
                         'gray_prob': 0.4},
               'jpeg': {'prob': 1.0, 'quality_range': [30, 95]}}


def _basicsr_uniform(hr: torch.Tensor, k: int, s: int, jpeger) -> Callable[[], torch.Tensor]:
    """BasicSR's uniform degradation of a batch, with the noise and JPEG settings of :data:`DEGRADATION`."""
    import numpy as np
    from basicsr.data.degradations import random_add_gaussian_noise_pt, random_mixed_kernels
    from basicsr.utils.img_process_util import filter2D

    b = hr.shape[0]

    def run():
        kernels = [random_mixed_kernels(['iso', 'aniso'], [0.5, 0.5], k, (0.2, 4.0), (0.2, 4.0), (-math.pi, math.pi),
                                        noise_range=None) for _ in range(b)]
        x = filter2D(hr, torch.from_numpy(np.stack(kernels)).float().to(hr.device))[:, :, ::s, ::s]
        x = random_add_gaussian_noise_pt(x, sigma_range=(1, 30), gray_prob=0.4, clip=True)
        return jpeger(x.clamp(0, 1), quality=x.new_empty(b).uniform_(30, 95))
    return run


def _degradation_pairs(st: BenchmarkSettings) -> list[Pair]:
    from basicsr.utils.diffjpeg import DiffJPEG

    from ssr.data.degradation import SVDegradation

    dev, k, s = st.device, st.kernel_size, st.scale
    jpeger = DiffJPEG(differentiable=False).to(dev)
    g = torch.Generator(dev).manual_seed(st.seed)
    pairs = []
    for label, batch, size, modes, target in (
            (f'training batch {st.batch} x {st.size}²', st.batch, st.size, None, 1.5),
            (f'data-worker crop 1 x {st.crop}²', 1, st.crop, None, 1.2),
            (f'modes: [uniform], {st.batch} x {st.size}²', st.batch, st.size, ['uniform'], 1.5)):
        hr = torch.rand(batch, 3, size, size, generator=g, device=dev)
        depth = torch.rand(batch, 1, size, size, generator=g, device=dev)
        opt = {'kernel_size': k, **DEGRADATION, **({'kernel': {'modes': modes}} if modes else {})}
        deg = SVDegradation(opt, s)
        pairs.append(Pair('degradation', f'SVDegradation, {label}, k={k}, x{s}',
                          lambda d=deg, x=hr, z=depth: d(x, z, g),
                          'BasicSR uniform + noise + JPEG', _basicsr_uniform(hr, k, s, jpeger), target))
    return pairs


def _rrdbnet(dev: str):
    from basicsr.archs.rrdbnet_arch import RRDBNet

    return RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32).to(dev).eval()


def _network_pairs(st: BenchmarkSettings) -> list[Pair]:
    from basicsr.archs import build_network

    from ssr.ops.depth_utils import CONSTANT_DEPTH

    dev, n = st.device, st.lr_size
    g = torch.Generator().manual_seed(st.seed)
    lq = torch.rand(1, 3, n, n, generator=g).to(dev)
    depth = torch.full((1, 1, n, n), CONSTANT_DEPTH, device=dev)
    kernel = torch.softmax(torch.randn(1, st.kernel_size ** 2, n, n, generator=g), 1).to(dev)
    dkenet = build_network({'type': 'DKENet', 'kernel_size': st.kernel_size}).to(dev).eval()
    manet = build_network({'type': 'MANetEstimator'}).to(dev).eval()
    nbsr = build_network({'type': 'NBSR', 'kernel_size': st.kernel_size}).to(dev).eval()
    rrdb = _rrdbnet(dev)
    return [Pair('networks', f'DKENet, LR {n}²', lambda: dkenet(lq, depth=depth), 'MANet estimator',
                 lambda: manet(lq)),
            Pair('networks', f'NBSR (RRDB-23 + SFT), LR {n}²', lambda: nbsr(lq, kernel=kernel),
                 'RRDBNet (23 blocks)', lambda: rrdb(lq))]


def _blind_pairs(st: BenchmarkSettings) -> list[Pair]:
    from basicsr.archs import build_network

    from ssr.pipelines.svkr import SVKRConfig, blind_sr

    dev, n = st.device, st.lr_size
    lq = torch.rand(1, 3, n, n, generator=torch.Generator().manual_seed(st.seed)).to(dev)
    dkenet = build_network({'type': 'DKENet', 'kernel_size': st.kernel_size}).to(dev).eval()
    nbsr = build_network({'type': 'NBSR', 'kernel_size': st.kernel_size}).to(dev).eval()
    cfg = SVKRConfig(iterations=st.svkr_iterations, gamma=0.9, depth='none')
    path = blind_sr(cfg, nbsr, dkenet)
    rrdb = _rrdbnet(dev)
    return [Pair('blind path', f'SVKR T={st.svkr_iterations}, depth none (DKENet + NBSR), LR {n}²',
                 lambda: path(lq), 'RRDBNet (23 blocks)', lambda: rrdb(lq))]


def _ssr_pairs(st: BenchmarkSettings) -> list[Pair]:
    from diffusers import UNet2DModel, VQModel

    from ssr.pipelines.sampling import build_scheduler, sample_latents
    from ssr.tools.ssr_vs_ldm_benchmark import LDM_SR_UNET, build_ssr

    dev, n, steps = st.device, st.lr_size, st.steps
    pipe = build_ssr('default', dev, steps, st.seed)
    peer_unet = UNet2DModel(**LDM_SR_UNET).to(dev).eval()
    vq = VQModel(**VQ_F4).to(dev).eval()
    g = torch.Generator().manual_seed(st.seed)
    lq = torch.rand(1, 3, n, n, generator=g).to(dev)
    z_lr, noise = torch.randn(1, 3, n, n, generator=g).to(dev), torch.randn(1, 3, n, n, generator=g).to(dev)
    with torch.no_grad():
        kernel, depth, _ = pipe.conditions(lq)
        z_ssr = pipe.lr_latent(lq)
        feats = pipe.unet.encode_conditions(kernel, depth, lq, tuple(z_ssr.shape[-2:]))

    def peer_sampling(unet=peer_unet):
        scheduler = build_scheduler('ddim', {}, steps)
        z = noise
        for t in scheduler.timesteps:
            z = scheduler.step(unet(torch.cat([z, z_lr], 1), t.to(dev)).sample.float(), t, z).prev_sample
        return z

    def ours_sampling(unet=pipe.unet):
        scheduler = pipe.config.sampler.scheduler(pipe.config.diffusion)
        return sample_latents(unet, z_ssr, feats, tuple(z_ssr.shape), scheduler, torch.Generator().manual_seed(0))

    variants = [('fp32', False, False)]
    if dev == 'cuda':
        variants += [('bf16', True, False), ('bf16 + CUDA graph', True, True)]
    pairs = []
    for label, bf16, graph in variants:
        ours_unet, peer = pipe.unet, peer_unet
        if graph:
            ours_unet = torch.compile(pipe.unet, mode='reduce-overhead')
            peer = torch.compile(peer_unet, mode='reduce-overhead')
        autocast = (lambda b=bf16: torch.autocast('cuda', dtype=torch.bfloat16, enabled=b))

        def wrap(fn, ac=autocast):
            def run():
                with ac():
                    return fn()
            return run
        size = f'LR {n}² -> {4 * n}², {steps} steps, {label}'
        pairs.append(Pair('SSR', f'SSR sampling (AMF-UNet), {size}', wrap(lambda u=ours_unet: ours_sampling(u)),
                          'LDM-SR / ResShift-size UNet (118 M)', wrap(lambda u=peer: peer_sampling(u))))
        pairs.append(Pair('SSR', f'SSR end to end, {size}', wrap(lambda: pipe(lq).sr),
                          'same UNet + VQ-f4 decode', wrap(lambda u=peer: vq.decode(peer_sampling(u)).sample),
                          1.0 if dev == 'cuda' else None))
    rrdb = _rrdbnet(dev)
    pairs.append(Pair('SSR', f'SSR end to end, LR {n}² -> {4 * n}², {steps} steps, fp32', lambda: pipe(lq).sr,
                      'RRDBNet (23 blocks)', lambda: rrdb(lq)))
    return pairs


ALIAS = 'import ssr.compat.torchvision_alias as a; a.install(); '


def _python(code: str) -> Callable[[], None]:
    def run():
        subprocess.run([sys.executable, '-W', 'ignore', '-c', code], check=True, capture_output=True)
    return run


def _startup_pairs(st: BenchmarkSettings) -> list[Pair]:
    blind = ("import ssr; from basicsr.utils.registry import ARCH_REGISTRY as A, MODEL_REGISTRY as M; "
             "A.get('DKENet'); A.get('NBSR'); M.get('BlindSRModel')")
    peer = (ALIAS + "import basicsr; from basicsr.utils.registry import ARCH_REGISTRY as A, MODEL_REGISTRY as M; "
            "A.get('RRDBNet'); M.get('SRModel')")
    return [Pair('start-up', 'python -c "import ssr"', _python('import ssr'), 'import basicsr',
                 _python(ALIAS + 'import basicsr'), 1.1),
            Pair('start-up', 'import ssr + blind-path lookups (DKENet, NBSR, BlindSRModel)', _python(blind),
                 'import basicsr + RRDBNet, SRModel lookups', _python(peer), 1.1)]


BUILDERS = {'degradation': _degradation_pairs, 'networks': _network_pairs, 'blind path': _blind_pairs,
            'SSR': _ssr_pairs, 'start-up': _startup_pairs}


def build_pairs(settings: BenchmarkSettings) -> list[Pair]:
    """The rows of the requested sections, built (networks on the device, inputs drawn) but not yet timed.

    Raises:
        ValueError: an unknown section name.
    """
    unknown = sorted(set(settings.sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f'unknown benchmark section(s) {unknown}; choose from {list(SECTIONS)}')
    return [pair for name in SECTIONS if not settings.sections or name in settings.sections
            for pair in BUILDERS[name](settings)]


def _timed(fn: Callable[[], object], device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def measure_pairs(pairs: list[Pair], device: str, rounds: int = 5, warmup: int = 1,
                  log: Callable[[str], object] | None = None) -> list[dict]:
    """Times every pair ``rounds`` times, ssr and peer back to back (the order alternating by round), after
    ``warmup`` untimed calls of each.

    Returns:
        one dict per pair: its names, section and target, ``ours_s`` / ``peer_s`` (medians, seconds) and ``ratio``
        (the median of the per-round ratios ours / peer).
    """
    rows = []
    with torch.no_grad():
        for pair in pairs:
            if log:
                log(f'{pair.section}: {pair.ours_name} vs {pair.peer_name}')
            for _ in range(warmup):
                pair.ours()
                pair.peer()
            ours, peer = [], []
            for r in range(rounds):
                first, second = ((pair.ours, ours), (pair.peer, peer)) if r % 2 == 0 else \
                    ((pair.peer, peer), (pair.ours, ours))
                first[1].append(_timed(first[0], device))
                second[1].append(_timed(second[0], device))
            rows.append({'section': pair.section, 'ours': pair.ours_name, 'peer': pair.peer_name,
                         'target': pair.target, 'ours_s': statistics.median(ours),
                         'peer_s': statistics.median(peer),
                         'ratio': statistics.median(a / b for a, b in zip(ours, peer))})
    return rows


def format_table(rows: list[dict], header: str) -> str:
    """Markdown table of :func:`measure_pairs` rows under a one-line ``header``."""
    lines = [header, '', '| section | ssr | ms | peer | ms | ratio ssr / peer | target |',
             '|---|---|---:|---|---:|---:|---|']
    for r in rows:
        target = '' if r['target'] is None else \
            f"<= {r['target']:g}: {'met' if r['ratio'] <= r['target'] else 'not met'}"
        lines.append(f"| {r['section']} | {r['ours']} | {1000 * r['ours_s']:.1f} | {r['peer']} | "
                     f"{1000 * r['peer_s']:.1f} | {r['ratio']:.2f} | {target} |")
    return '\n'.join(lines)


def tiled_peak_memory(settings: BenchmarkSettings, hr_size: int = 2048, tile: int = 64, overlap: int = 16) -> dict:
    """Peak CUDA memory of SSR end to end (paper-size networks, ``settings.steps`` steps, bf16) for one
    ``hr_size``^2 output with latent tiles of ``tile`` (overlap ``overlap``), and its time.

    Returns:
        ``{'hr_size', 'tile', 'overlap', 'seconds', 'peak_mib'}``.

    Raises:
        RuntimeError: not on CUDA (CPU peak memory of this size is not measured here: it takes hours).
    """
    from dataclasses import replace

    from ssr.tools.ssr_vs_ldm_benchmark import build_ssr

    if settings.device != 'cuda':
        raise RuntimeError('the tiled peak-memory figure needs --device cuda')
    pipe = build_ssr('default', 'cuda', settings.steps, settings.seed)
    sampler = replace(pipe.config.sampler, tile_size=tile, tile_overlap=overlap)
    pipe.config = replace(pipe.config, sampler=sampler)
    lq = torch.rand(1, 3, hr_size // 4, hr_size // 4, device='cuda')
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
        seconds = _timed(lambda: pipe(lq), 'cuda')
    return {'hr_size': hr_size, 'tile': tile, 'overlap': overlap, 'seconds': seconds,
            'peak_mib': torch.cuda.max_memory_allocated() / 2**20}
