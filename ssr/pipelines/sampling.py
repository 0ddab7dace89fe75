"""Noise schedules and the seeded latent sampler of SSR's diffusion model (paper §3.3), on diffusers' schedulers.

Notation: B batch, C latent channels, C_lr LR-latent channels, (h, w) latent size, T = ``num_train_timesteps``,
N = sampling steps. The training schedule (DDPM) is one dict shared by training and sampling:
``{num_train_timesteps, beta_schedule, beta_start, beta_end, prediction_type}``; ``prediction_type`` is what the
network regresses: ``epsilon`` (the paper's Eq. 5), ``v_prediction`` (v = sqrt(abar) eps - sqrt(1 - abar) z_0,
Salimans & Ho 2022) or ``sample`` (z_0); the samplers read it from the same dict. The ``sampler`` block (how the
trained model is sampled) is parsed once into :class:`SamplerConfig`; its optional ``consistency`` sub-block (the
kernel-consistent correction of the predicted z_0, off by default) into :class:`ConsistencyConfig`.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor, nn

from ssr.ops.color_correction import COLOR_FIXES
from ssr.utils.options import closest_first

__all__ = ['SAMPLER_KINDS', 'BETA_SCHEDULES', 'CONSISTENCY_STEPS', 'PREDICTION_TYPES', 'START_FROM',
           'ConsistencyConfig', 'SamplerConfig', 'diffusion_config', 'build_train_scheduler', 'build_scheduler',
           'model_output_from_x0', 'predicted_x0', 'sample_latents']

SAMPLER_KINDS = ('ddim', 'dpmsolver++')
BETA_SCHEDULES = ('linear', 'scaled_linear', 'squaredcos_cap_v2')
PREDICTION_TYPES = ('epsilon', 'v_prediction', 'sample')  # Eq. 5 regresses the noise (epsilon)
START_FROM = ('bicubic', 'nbsr')
# sampler.compile: torch.compile modes for the sampler's UNet ('none': eager; 'reduce-overhead' captures CUDA graphs)
COMPILE_MODES = ('none', 'default', 'reduce-overhead', 'max-autotune')
SAMPLER_KEYS = ('kind', 'steps', 'seed', 'start_step', 'start_from', 'tile', 'color_fix', 'consistency',
                'residual_strength', 'compile', 'channels_last')
CONSISTENCY_STEPS = ('all', 'last_k', 'final')
# image: z_0 = E(HR) (the paper); residual: z_0 = E(HR) - E(base) with base = the blind path's I^T (ResShift-style:
# the diffusion only adds what the first stage missed), conditioned on E(base) instead of the bicubic LR
FORMULATIONS = ('image', 'residual')
DIFFUSION_DEFAULTS = {'num_train_timesteps': 1000, 'beta_schedule': 'scaled_linear', 'beta_start': 0.0015,
                      'beta_end': 0.0155, 'prediction_type': 'epsilon', 'formulation': 'image',
                      'residual_scale': 1.0}  # LDM-SR's schedule


def diffusion_config(opt: Mapping | None) -> dict:
    """The ``diffusion`` option block with defaults filled in and checked.

    Raises:
        ValueError: on an unknown key, beta schedule or prediction type, or a non-positive T.
    """
    opt = dict(opt or {})
    unknown = sorted(set(opt) - set(DIFFUSION_DEFAULTS))
    if unknown:
        raise ValueError(f'diffusion: unknown keys {unknown}, allowed {sorted(DIFFUSION_DEFAULTS)}')
    cfg = {**DIFFUSION_DEFAULTS, **opt}
    if cfg['beta_schedule'] not in BETA_SCHEDULES:
        raise ValueError(f"diffusion.beta_schedule {cfg['beta_schedule']!r} not in {BETA_SCHEDULES}")
    if cfg['prediction_type'] not in PREDICTION_TYPES:
        raise ValueError(f"diffusion.prediction_type {cfg['prediction_type']!r} not in {PREDICTION_TYPES}")
    if cfg['formulation'] not in FORMULATIONS:
        raise ValueError(f"diffusion.formulation {cfg['formulation']!r} not in {FORMULATIONS}")
    cfg['residual_scale'] = float(cfg['residual_scale'])
    if not cfg['residual_scale'] > 0:
        raise ValueError(f"diffusion.residual_scale must be > 0, got {cfg['residual_scale']}")
    cfg['num_train_timesteps'] = int(cfg['num_train_timesteps'])
    if cfg['num_train_timesteps'] < 1:
        raise ValueError(f"diffusion.num_train_timesteps must be >= 1, got {cfg['num_train_timesteps']}")
    cfg['beta_start'], cfg['beta_end'] = float(cfg['beta_start']), float(cfg['beta_end'])
    return cfg


def _scheduler_kwargs(train_config: Mapping) -> dict:
    cfg = diffusion_config(train_config)
    cfg.pop('formulation'), cfg.pop('residual_scale')  # what z_0 is, not part of the noise schedule
    # latents are not bounded like images: no clipping of the predicted z_0
    return dict(cfg, clip_sample=False)


def build_train_scheduler(train_config: Mapping) -> DDPMScheduler:
    """The DDPM forward process of training (``add_noise``), from the ``diffusion`` options."""
    return DDPMScheduler(**_scheduler_kwargs(train_config))


def build_scheduler(kind: str, train_config: Mapping, steps: int) -> SchedulerMixin:
    """A sampler over the training schedule, with its ``N = steps`` timesteps set (descending, on the CPU).

    Args:
        kind: ``'ddim'`` (eta = 0, deterministic) or ``'dpmsolver++'`` (diffusers' multistep DPM-Solver++, order 2).
        train_config: the ``diffusion`` options of training (see :func:`diffusion_config`).
        steps: N, number of denoising steps, 1 <= N <= T.

    Returns:
        A ``DDIMScheduler`` or ``DPMSolverMultistepScheduler`` with ``timesteps`` of length N.

    Raises:
        ValueError: on an unknown ``kind`` or ``steps`` out of range, or bad ``train_config``.
    """
    kwargs = _scheduler_kwargs(train_config)
    if not 1 <= int(steps) <= kwargs['num_train_timesteps']:
        raise ValueError(f"sampler steps must be in [1, {kwargs['num_train_timesteps']}], got {steps}")
    kwargs.pop('clip_sample')
    if kind == 'ddim':
        # 'trailing' spacing reaches t = T - 1 at the first step, so sampling from pure noise matches training
        scheduler = DDIMScheduler(**kwargs, clip_sample=False, set_alpha_to_one=False, timestep_spacing='trailing')
    elif kind == 'dpmsolver++':
        scheduler = DPMSolverMultistepScheduler(**kwargs, algorithm_type='dpmsolver++', solver_order=2,
                                                timestep_spacing='trailing')
    else:
        raise ValueError(f'sampler kind {kind!r} not in {SAMPLER_KINDS}')
    scheduler.set_timesteps(int(steps))
    return scheduler


CONSISTENCY_DEFAULTS = {'steps': 'final', 'k': None, 'iters': 10, 'weight': 1e-3, 'sigma': 'auto', 'tau': 1.0}


def _number(key: str, value, kind: type, low: float, strict: bool = False) -> float | int:
    """``value`` as ``kind`` (int or float), >= low (> low when ``strict``); a one-line ValueError naming ``key``."""
    bound = f'> {low}' if strict else f'>= {low}'
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value))
    if bad or not (value > low if strict else value >= low):
        raise ValueError(f'sampler.consistency.{key} must be {"an int" if kind is int else "a number"} {bound}, '
                         f'got {value!r}')
    return kind(value)


@dataclass(frozen=True)
class ConsistencyConfig:
    """The ``sampler.consistency`` block: at the chosen steps the predicted clean image is pulled towards agreement
    with the LR under the kernel field (:func:`~ssr.ops.consistency.consistent_projection`).

    Attributes:
        steps: ``final`` (the last step only), ``last_k`` (the last ``k`` steps run) or ``all`` (every step run).
        k: number of steps for ``last_k`` (None otherwise).
        iters: maximum conjugate-gradient iterations per corrected step, >= 1.
        weight: lam >= 0 of ``||S(K x) - y||^2 + lam ||x - x0_hat||^2``.
        sigma: the LR noise std for the discrepancy stop (images in [0, 1]): a number, ``'auto'`` (MAD estimate on
            the LR's finest diagonal Haar band, :func:`~ssr.ops.consistency.estimate_noise_sigma`) or None (no stop
            rule: ``iters`` iterations).
        tau: > 0, stop once ``||S(K x) - y|| <= tau * sigma * sqrt(n)``.
    """

    steps: str = 'final'
    k: int | None = None
    iters: int = 10
    weight: float = 1e-3
    sigma: float | str | None = 'auto'
    tau: float = 1.0

    @classmethod
    def from_options(cls, block: Mapping | None) -> ConsistencyConfig | None:
        """``{steps, k, iters, weight, sigma, tau}`` with defaults; ``None`` (absent) = off.

        Raises:
            ValueError: naming the ``sampler.consistency.<key>`` that is unknown or wrong.
        """
        if block is None:
            return None
        if not isinstance(block, Mapping):
            raise ValueError(f'sampler.consistency must be a mapping {{steps, k, iters, weight, sigma, tau}} or null, '
                             f'got {block!r}')
        for key in block:
            if key not in CONSISTENCY_DEFAULTS:
                raise ValueError(f'sampler.consistency.{key}: unknown key, allowed {sorted(CONSISTENCY_DEFAULTS)}')
        opt = {**CONSISTENCY_DEFAULTS, **block}
        if opt['steps'] not in CONSISTENCY_STEPS:
            raise ValueError(f"sampler.consistency.steps {opt['steps']!r} not in {CONSISTENCY_STEPS}")
        if opt['steps'] == 'last_k':
            if opt['k'] is None:
                raise ValueError('sampler.consistency.k is required with steps: last_k')
            opt['k'] = _number('k', opt['k'], int, 1)
        elif opt['k'] is not None:
            raise ValueError(f"sampler.consistency.k is read only with steps: last_k, not {opt['steps']!r}")
        sigma = opt['sigma']
        if sigma is not None and sigma != 'auto':
            if isinstance(sigma, str):
                raise ValueError(f"sampler.consistency.sigma must be a number >= 0, 'auto' or null, got {sigma!r}")
            sigma = _number('sigma', sigma, float, 0)
        return cls(steps=opt['steps'], k=opt['k'], iters=_number('iters', opt['iters'], int, 1),
                   weight=_number('weight', opt['weight'], float, 0), sigma=sigma,
                   tau=_number('tau', opt['tau'], float, 0, strict=True))

    def step_indices(self, first: int, count: int) -> frozenset[int]:
        """Indices into the scheduler's ``count`` timesteps corrected when sampling runs ``first .. count - 1``."""
        run = range(first, count)
        if self.steps == 'final':
            return frozenset(run[-1:])
        if self.steps == 'last_k':
            return frozenset(run[-self.k:])
        return frozenset(run)


@dataclass(frozen=True)
class SamplerConfig:
    """The ``sampler`` option block, parsed once (see :meth:`from_options`).

    Attributes:
        kind: ``ddim`` or ``dpmsolver++``.
        steps: N sampling steps, 1 <= N <= T.
        seed: seed of the sampler's noise.
        start_step: index into the N steps where sampling starts from a noised SR estimate, or None (pure noise).
        start_from: that estimate: ``bicubic`` (bicubic LR) or ``nbsr`` (I^T of SVKR).
        tile_size: latent tile side (0 = off); tile_overlap: latent overlap, 0 <= overlap < size.
        color_fix: ``none``, ``adain`` or ``wavelet`` (:mod:`ssr.ops.color_correction`).
        consistency: the kernel-consistent correction (:class:`ConsistencyConfig`), or None (off, the default).
        residual_strength: with ``diffusion.formulation: residual``, the output is ``base + strength * residual``:
            1 adds the sampled residual as it is, 0 returns the base (the blind path); a perception-distortion knob.
        compile: ``none`` (eager, the default) or a ``torch.compile`` mode for the UNet of the sampling loop
            (``reduce-overhead`` replays the N steps as CUDA graphs; the first call compiles).
        channels_last: the UNet's weights in ``torch.channels_last`` (NHWC convolutions on CUDA).
    """

    kind: str = 'ddim'
    steps: int = 20
    seed: int = 0
    start_step: int | None = None
    start_from: str = 'bicubic'
    tile_size: int = 0
    tile_overlap: int = 0
    color_fix: str = 'none'
    consistency: ConsistencyConfig | None = None
    residual_strength: float = 1.0
    compile: str = 'none'
    channels_last: bool = False

    @classmethod
    def from_options(cls, sampler: Mapping | None, diffusion: Mapping | None = None) -> SamplerConfig:
        """``{kind, steps, seed, start_step, start_from, tile: {size, overlap}, color_fix, consistency,
        residual_strength}`` with
        defaults, checked against the training schedule ``diffusion`` (steps <= T).

        Raises:
            ValueError: naming the ``sampler.*`` key that is wrong.
        """
        opt = dict(sampler or {})
        unknown = sorted(set(opt) - set(SAMPLER_KEYS))
        if unknown:
            closest = ', '.join(closest_first(unknown[0], SAMPLER_KEYS)[:2])
            raise ValueError(f'sampler: unknown key(s) {unknown} (closest known: {closest}); allowed: '
                             f'{list(SAMPLER_KEYS)}')
        tile = dict(opt.get('tile') or {})
        unknown = sorted(set(tile) - {'size', 'overlap'})
        if unknown:
            raise ValueError(f'sampler.tile: unknown key(s) {unknown}; allowed: [size, overlap]')
        cfg = cls(kind=opt.get('kind', 'ddim'), steps=int(opt.get('steps', 20)), seed=int(opt.get('seed', 0)),
                  start_step=None if opt.get('start_step') is None else int(opt['start_step']),
                  start_from=opt.get('start_from', 'bicubic'), tile_size=int(tile.get('size', 0)),
                  tile_overlap=int(tile.get('overlap', 0)), color_fix=opt.get('color_fix', 'none') or 'none',
                  consistency=ConsistencyConfig.from_options(opt.get('consistency')),
                  residual_strength=float(opt.get('residual_strength', 1.0)),
                  compile=str(opt.get('compile') or 'none'), channels_last=opt.get('channels_last', False))
        if cfg.compile not in COMPILE_MODES:
            raise ValueError(f'sampler.compile {cfg.compile!r} not in {COMPILE_MODES}')
        if not isinstance(cfg.channels_last, bool):
            raise ValueError(f'sampler.channels_last must be true or false, got {cfg.channels_last!r}')
        if not 0 <= cfg.residual_strength <= 2:
            raise ValueError(f'sampler.residual_strength {cfg.residual_strength} not in [0, 2]')
        if cfg.start_from not in START_FROM:
            raise ValueError(f'sampler.start_from {cfg.start_from!r} not in {START_FROM}')
        if cfg.kind not in SAMPLER_KINDS:
            raise ValueError(f'sampler.kind {cfg.kind!r} not in {SAMPLER_KINDS}')
        build_scheduler(cfg.kind, diffusion or {}, cfg.steps)  # checks steps against T
        if cfg.start_step is not None and not 0 <= cfg.start_step < cfg.steps:
            raise ValueError(f'sampler.start_step {cfg.start_step} not in [0, {cfg.steps})')
        if cfg.tile_size < 0 or not 0 <= cfg.tile_overlap < max(cfg.tile_size, 1):
            raise ValueError(f'sampler.tile size {cfg.tile_size} / overlap {cfg.tile_overlap}: need size >= 0 '
                             f'and 0 <= overlap < size')
        if cfg.color_fix not in COLOR_FIXES:
            raise ValueError(f'sampler.color_fix {cfg.color_fix!r} not in {COLOR_FIXES}')
        return cfg

    def scheduler(self, diffusion: Mapping) -> SchedulerMixin:
        """A fresh scheduler of this kind and N over the training schedule ``diffusion``."""
        return build_scheduler(self.kind, diffusion, self.steps)


def _alpha_sigma(scheduler: SchedulerMixin, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """(sqrt(abar_t), sqrt(1 - abar_t)) of the training schedule at timestep t, as 0-d tensors on ``like``'s device."""
    abar = scheduler.alphas_cumprod[int(t)].to(like.device, torch.float32)
    return abar.sqrt(), (1 - abar).sqrt()


def predicted_x0(scheduler: SchedulerMixin, model_output: Tensor, t: Tensor, sample: Tensor) -> Tensor:
    """The clean latent z_0 that ``model_output`` at z_t = ``sample`` implies, for the scheduler's ``prediction_type``.

    The same formulas as diffusers' ``DDIMScheduler.step`` and ``DPMSolverMultistepScheduler.convert_model_output``:
    ``epsilon``: (z_t - sigma_t eps) / alpha_t; ``v_prediction``: alpha_t z_t - sigma_t v; ``sample``: the output,
    with alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t).

    Args:
        scheduler: a scheduler of :func:`build_scheduler`.
        model_output: (B, C, h, w) the network's output at timestep ``t``.
        t: the timestep (a 0-d tensor or int of ``scheduler.timesteps``).
        sample: (B, C, h, w) z_t.

    Returns:
        (B, C, h, w) float32 z_0.
    """
    kind = scheduler.config.prediction_type
    alpha, sigma = _alpha_sigma(scheduler, t, sample)
    if kind == 'epsilon':
        return (sample - sigma * model_output) / alpha
    if kind == 'v_prediction':
        return alpha * sample - sigma * model_output
    if kind == 'sample':
        return model_output.float()
    raise ValueError(f'diffusion.prediction_type {kind!r} not in {PREDICTION_TYPES}')


def model_output_from_x0(scheduler: SchedulerMixin, x0: Tensor, t: Tensor, sample: Tensor) -> Tensor:
    """The inverse of :func:`predicted_x0`: the network output at z_t = ``sample`` whose predicted z_0 is ``x0``.

    Stepping the scheduler with it continues the sampler from a corrected z_0. For DDIM this is the step with
    ``pred_original_sample = x0`` and ``pred_epsilon = (z_t - alpha_t x0) / sigma_t`` recomputed from it, for every
    ``prediction_type``; DPM-Solver++ stores ``x0`` in its multistep history.

    Args:
        scheduler: a scheduler of :func:`build_scheduler`.
        x0: (B, C, h, w) the corrected z_0.
        t: the timestep.
        sample: (B, C, h, w) z_t.

    Returns:
        (B, C, h, w) float32 output in the scheduler's parameterisation.
    """
    kind = scheduler.config.prediction_type
    alpha, sigma = _alpha_sigma(scheduler, t, sample)
    if kind == 'epsilon':
        return (sample - alpha * x0) / sigma
    if kind == 'v_prediction':
        return (alpha * sample - x0) / sigma
    if kind == 'sample':
        return x0.float()
    raise ValueError(f'diffusion.prediction_type {kind!r} not in {PREDICTION_TYPES}')


def sample_latents(unet: nn.Module, z_lr: Tensor, features: list[list[Tensor]], shape: tuple[int, ...],
                   scheduler: SchedulerMixin, generator: torch.Generator | None, start_latent: Tensor | None = None,
                   start_step: int | None = None, correct_x0: Callable[[Tensor], Tensor] | None = None,
                   correct_steps: Collection[int] = ()) -> Tensor:
    """Runs the reverse process ``z_T -> z_0`` with the AMF-UNet as epsilon_theta (paper Eq. 4 at each step).

    Noise is drawn on ``generator``'s device (the CPU for a CPU generator) and then moved, so a seed gives the same
    result on every device up to float rounding. The scheduler is left stepped; build a fresh one per call.

    Args:
        unet: an :class:`~ssr.archs.amf_unet_arch.AMFUNet` (``unet(z_t, t, z_lr, features=...) -> .sample``).
        z_lr: (B, C_lr, h, w) latent of the LR condition.
        features: ``[f1, f2, f3]`` from ``unet.encode_conditions`` (computed once, reused every step).
        shape: (B, C, h, w) of the latent to sample.
        scheduler: from :func:`build_scheduler`, timesteps already set.
        generator: seeds the initial noise (and any stochastic step); ``None`` uses the global RNG.
        start_latent: (B, C, h, w) estimate of z_0 (e.g. the latent of an NBSR output) to start from, noised to
            ``timesteps[start_step]`` instead of pure noise ("fewer steps").
        start_step: index into ``scheduler.timesteps`` where sampling starts; needs ``start_latent``.
        correct_x0: maps the predicted z_0 (B, C, h, w) to a corrected one (e.g. the kernel-consistent projection of
            :class:`~ssr.pipelines.ssr_pipeline.SSRPipeline`); at the steps in ``correct_steps`` the scheduler is
            stepped with the output implied by the corrected z_0 (:func:`model_output_from_x0`).
        correct_steps: indices into ``scheduler.timesteps`` (see :meth:`ConsistencyConfig.step_indices`).

    Returns:
        (B, C, h, w) z_0 in ``z_lr``'s dtype.

    Raises:
        ValueError: when only one of ``start_latent`` / ``start_step`` is given, or ``start_step`` is out of range.
    """
    timesteps = scheduler.timesteps
    if (start_latent is None) != (start_step is None):
        raise ValueError('sample_latents: give both start_latent and start_step, or neither')
    device, dtype = z_lr.device, z_lr.dtype
    noise = torch.randn(tuple(shape), generator=generator,
                        device=generator.device if generator is not None else 'cpu').to(device, torch.float32)
    if start_latent is None:
        latents = noise * scheduler.init_noise_sigma
        start_step = 0
    else:
        if not 0 <= start_step < len(timesteps):
            raise ValueError(f'sample_latents: start_step {start_step} not in [0, {len(timesteps)})')
        if tuple(start_latent.shape) != tuple(shape):
            raise ValueError(f'sample_latents: start_latent shape {tuple(start_latent.shape)} != {tuple(shape)}')
        if hasattr(scheduler, 'set_begin_index'):
            scheduler.set_begin_index(start_step)
        latents = scheduler.add_noise(start_latent.float(), noise, timesteps[start_step:start_step + 1])
    for i in range(start_step, len(timesteps)):
        t = timesteps[i]
        out = unet(latents.to(dtype), t.to(device), z_lr, features=features).sample.float()
        if correct_x0 is not None and i in correct_steps:
            x0 = correct_x0(predicted_x0(scheduler, out, t, latents).to(dtype)).float()
            out = model_output_from_x0(scheduler, x0, t, latents)
        latents = scheduler.step(out, t, latents, generator=generator).prev_sample
    return latents.to(dtype)
