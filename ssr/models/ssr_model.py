"""SSR's latent diffusion SR model (paper §3.3): AMF-UNet trained with Eq. 5, sampled with DDIM / DPM-Solver++.

Notation (paper -> code): HR ``gt``, LR ``lq`` (B, 3, h, w), s = ``scale``; z_0 = E(HR) and z_lr = E(bicubic_s(LR))
(B, C, H / f, W / f) with the first stage E of downscale f; f1, f2, f3 = kernel, depth and LR encoder features;
epsilon_theta = ``network_g`` (:class:`~ssr.archs.amf_unet_arch.AMFUNet`).
"""
from __future__ import annotations

import copy
import math
import os.path as osp
from collections import OrderedDict

import torch
from basicsr.archs import build_network
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY
from torch import Tensor
from torch.nn import functional as F

from ssr.archs.first_stage import load_first_stage
from ssr.metrics.kernel_error import kernel_mse, kernel_psnr
from ssr.ops.color_correction import COLOR_FIXES, apply_color_fix
from ssr.models.diffusion_sampling import (SAMPLER_KINDS, build_scheduler, build_train_scheduler, diffusion_config,
                                           sample_latents)
from ssr.models.latent_tiling import TiledUNet, tiled_decode
from ssr.models.network_calls import estimate_kernel, super_resolve
from ssr.models.sv_sr_model import SVSRModel
from ssr.models.svkr import SVKR

CONDITION_SOURCES = ('data', 'svkr')
SVKR_DEPTHS = ('midas', 'file', 'none')
START_FROM = ('bicubic', 'nbsr')
CONSTANT_DEPTH = 0.5  # depth map of svkr depth: none (as BlindSRModel)


def regularizer(features: list[list[Tensor]], weights: list[float]) -> Tensor:
    """Eq. 5's ``sum_i lambda_i * mean|f_i|``; each f_i is a list over levels and contributes the average of means.

    Args:
        features: ``[f1, f2, f3]``, each a list of (B, C_l, h_l, w_l) maps.
        weights: ``[lambda_1, lambda_2, lambda_3]``.
    """
    if len(weights) != len(features):
        raise ValueError(f'train.reg_weights needs {len(features)} values (kernel, depth, LR), got {list(weights)}')
    terms = [w * torch.stack([f.float().abs().mean() for f in levels]).mean() for w, levels in zip(weights, features)]
    return torch.stack(terms).sum()


@MODEL_REGISTRY.register()
class SSRModel(SVSRModel):
    """Latent diffusion SR conditioned on kernel, depth and LR through AMF (paper §3.3, Eq. 3-5).

    Options:
        network_g: ``{type: AMFUNet, latent_channels: C, ...}`` with C = the first stage's latent channels.
        first_stage: ``{kind: pixel_unshuffle | autoencoder_kl | vq, path: ~, factor: 4, scaling_factor: ~}``, see
            :func:`~ssr.archs.first_stage.load_first_stage`; frozen, never saved.
        diffusion: the DDPM training schedule ``{num_train_timesteps, beta_schedule, beta_start, beta_end,
            prediction_type: epsilon}``.
        conditions: ``{source: data | svkr, iterations: 3, gamma: 0.9, depth: midas | file | none}``. ``data``: the
            dataset's ground-truth kernel field and depth (fast training). ``svkr``: K^T and D^T of Algorithm 1 run
            with frozen networks ``network_e`` (estimator) and ``network_sr`` (non-blind SR, e.g. NBSR), plus
            ``network_d`` (e.g. MiDaSDepth) for ``depth: midas``; ``file`` uses the data's depth, ``none`` a constant
            map. Weights from ``path.pretrain_network_e`` / ``pretrain_network_sr`` (``param_key_*``,
            ``strict_load_*``); these networks are not trained and not saved.
        sampler: ``{kind: ddim | dpmsolver++, steps: 20, seed: 0, start_step: ~, start_from: bicubic}``;
            ``start_step`` (index into the N sampling steps) starts there from the noised latent of an SR estimate
            instead of pure noise: ``bicubic`` (bicubic LR) or ``nbsr`` (I^T of SVKR; needs ``source: svkr``).
            ``tile: {size: 0, overlap: 0}`` (latent px; size 0 = off): every step runs the UNet on overlapping
            latent tiles with the whole image's condition features cropped per tile and blends the noise with
            Gaussian weights; decoding is tiled the same way (:mod:`ssr.models.latent_tiling`). Both must be
            multiples of the UNet's 2**(n-1). ``color_fix: none | adain | wavelet`` corrects the decoded SR towards
            the bicubic-upsampled LR (:mod:`ssr.ops.color_correction`).
        train: ``optim_g``, ``ema_decay``, ``grad_clip``, ``reg_weights: [l1, l2, l3]`` (default 0), ``bf16``
            (autocast on CUDA only), ``depth_dropout`` (probability per image of a random constant depth map with
            ``conditions.source: data``, so the model also runs with ``depth: none``; default 0).

    Training (Eq. 5): t ~ U{0, T-1} and eps ~ N(0, I) from a generator seeded by ``(manual_seed, current_iter)``
    (a resumed run draws the same noise), z_t = add_noise(z_0, eps, t),
    loss ``l_eps = MSE(eps_theta(z_t, t, z_lr, f1, f2, f3), eps)`` + ``l_reg = sum_i lambda_i mean|f_i|``; with
    ``diffusion.prediction_type: v_prediction`` / ``sample`` the target is v / z_0 instead of eps (the loss keeps
    its name ``l_eps``).
    Testing: conditions encoded once, latents sampled from ``sampler.seed``, decoded and clamped to [0, 1]; the LR
    is padded (replicate) so the latent fits the UNet and the output cropped back.

    Overrides: __init__, init_training_settings, setup_optimizers, model_ema (also copies buffers such as the AMF
    BatchNorm statistics), feed_data (bicubic LR), optimize_parameters, test.
    Inherits validation, saving and resuming from ``SRModel`` / ``SVSRModel``.
    """

    def __init__(self, opt: dict):
        # 1. options, read and checked before any network is built
        self.diffusion = diffusion_config(opt.get('diffusion'))
        source = (opt.get('conditions') or {}).get('source', 'data')
        if source not in CONDITION_SOURCES:
            raise ValueError(f'conditions.source {source!r} not in {CONDITION_SOURCES}')
        self.condition_source = source
        self._read_svkr_options(opt)
        sampler = dict(opt.get('sampler') or {})
        self.sampler_kind = sampler.get('kind', 'ddim')
        self.sampler_steps = int(sampler.get('steps', 20))
        self.sampler_seed = int(sampler.get('seed', 0))
        self.start_step = sampler.get('start_step')
        self.start_from = sampler.get('start_from', 'bicubic')
        if self.start_from not in START_FROM:
            raise ValueError(f'sampler.start_from {self.start_from!r} not in {START_FROM}')
        if self.start_from == 'nbsr' and source != 'svkr':
            raise ValueError('sampler.start_from: nbsr needs conditions.source: svkr (the NBSR output I^T)')
        if self.sampler_kind not in SAMPLER_KINDS:
            raise ValueError(f'sampler.kind {self.sampler_kind!r} not in {SAMPLER_KINDS}')
        build_scheduler(self.sampler_kind, self.diffusion, self.sampler_steps)  # checks steps against T
        if self.start_step is not None and not 0 <= int(self.start_step) < self.sampler_steps:
            raise ValueError(f'sampler.start_step {self.start_step} not in [0, {self.sampler_steps})')
        tile = dict(sampler.get('tile') or {})
        self.tile_size, self.tile_overlap = int(tile.get('size', 0)), int(tile.get('overlap', 0))
        if self.tile_size < 0 or not 0 <= self.tile_overlap < max(self.tile_size, 1):
            raise ValueError(f'sampler.tile size {self.tile_size} / overlap {self.tile_overlap}: need size >= 0 '
                             f'and 0 <= overlap < size')
        self.color_fix = sampler.get('color_fix', 'none') or 'none'
        if self.color_fix not in COLOR_FIXES:
            raise ValueError(f'sampler.color_fix {self.color_fix!r} not in {COLOR_FIXES}')
        self.bf16 = bool((opt.get('train') or {}).get('bf16', False))  # CUDA autocast, training and sampling
        fs = dict(opt.get('first_stage') or {'kind': 'pixel_unshuffle'})
        self.first_stage = load_first_stage(fs.pop('kind'), fs.pop('path', None), **fs)
        # 2. networks (SRModel builds network_g, loads weights, and calls init_training_settings)
        super().__init__(opt)
        self.first_stage.to(self.device)
        cfg = self.get_bare_model(self.net_g).config
        lr_ch = cfg.lr_latent_channels or cfg.latent_channels
        if cfg.latent_channels != self.first_stage.latent_channels or lr_ch != self.first_stage.latent_channels:
            raise ValueError(f'network_g latent_channels {cfg.latent_channels} / lr_latent_channels {lr_ch} must '
                             f'equal the first stage\'s {self.first_stage.latent_channels} channels')
        self.latent_multiple = 2**(len(cfg.block_out_channels) - 1)
        if self.tile_size % self.latent_multiple or self.tile_overlap % self.latent_multiple:
            raise ValueError(f'sampler.tile size {self.tile_size} / overlap {self.tile_overlap} must be multiples '
                             f'of {self.latent_multiple} (2**(levels - 1) of network_g)')
        self._build_svkr_networks()

    def _read_svkr_options(self, opt: dict) -> None:
        cond = dict(opt.get('conditions') or {})
        self.svkr_iterations, self.svkr_gamma = int(cond.get('iterations', 3)), float(cond.get('gamma', 0.9))
        self.svkr_depth = cond.get('depth', 'midas' if 'network_d' in opt else 'none')
        self.net_e = self.net_sr = self.net_d = None
        if self.condition_source != 'svkr':
            return
        if self.svkr_depth not in SVKR_DEPTHS:
            raise ValueError(f'conditions.depth {self.svkr_depth!r} not in {SVKR_DEPTHS}')
        missing = [k for k in ('network_e', 'network_sr') if k not in opt]
        if self.svkr_depth == 'midas' and 'network_d' not in opt:
            missing.append('network_d')
        if missing:
            raise ValueError(f'conditions.source: svkr needs {missing} (estimator, non-blind SR, depth for '
                             f'conditions.depth: midas)')
        SVKR(lambda x: x, lambda a, b: a, lambda a, b: a, self.svkr_iterations, self.svkr_gamma)  # checks values

    def _build_svkr_networks(self) -> None:
        """Frozen estimator / SR / depth networks of ``conditions.source: svkr``."""
        if self.condition_source != 'svkr':
            return
        paths = self.opt['path']
        for key in ('e', 'sr'):
            net = build_network(self.opt[f'network_{key}']).to(self.device)
            if paths.get(f'pretrain_network_{key}'):
                self.load_network(net, paths[f'pretrain_network_{key}'], paths.get(f'strict_load_{key}', True),
                                  paths.get(f'param_key_{key}', 'params'))
            setattr(self, f'net_{key}', net.eval().requires_grad_(False))
        if 'network_d' in self.opt:
            self.net_d = build_network(self.opt['network_d']).to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def conditions(self, lq: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(kernel (B, k*k, h, w), depth (B, 1, H', W'), SR estimate (B, 3, sh, sw) or None) for ``lq``."""
        if self.condition_source == 'data':
            return self.kernel, self.depth, None
        if self.svkr_depth == 'midas':
            depth_fn = self.net_d
        elif self.svkr_depth == 'file':
            if self.depth is None:
                raise ValueError('conditions.depth: file needs depth maps in the data')
            depth_fn = lambda img: self.depth  # noqa: E731
        else:
            depth_fn = lambda img: torch.full_like(img[:, :1], CONSTANT_DEPTH)  # noqa: E731
        out = SVKR(depth_fn, lambda x, d: estimate_kernel(self.net_e, x, d),
                   lambda x, k: super_resolve(self.net_sr, x, k, self.noise_level), self.svkr_iterations,
                   self.svkr_gamma)(lq)
        return out.kernel, out.depth, out.sr

    def init_training_settings(self) -> None:
        train = self.opt['train']
        self.grad_clip = train.get('grad_clip')
        self.reg_weights = [float(w) for w in train.get('reg_weights', [0.0, 0.0, 0.0])]
        if len(self.reg_weights) != 3:
            raise ValueError(f'train.reg_weights needs 3 values (kernel, depth, LR), got {self.reg_weights}')
        self.train_scheduler = build_train_scheduler(self.diffusion)
        self.noise_seed = int(self.opt.get('manual_seed') or 0)
        self.net_g.train()
        self.ema_decay = train.get('ema_decay', 0)
        if self.ema_decay > 0:
            get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device).eval()
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None:
                self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True),
                                  'params_ema')
            else:
                self.model_ema(0)  # copy net_g
        self.setup_optimizers()
        self.setup_schedulers()

    def setup_optimizers(self) -> None:
        optim = copy.deepcopy(self.opt['train']['optim_g'])
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        self.optimizer_g = self.get_optimizer(optim.pop('type'), params, **optim)
        self.optimizers.append(self.optimizer_g)

    def model_ema(self, decay: float = 0.999) -> None:
        """BaseModel's parameter EMA, plus a copy of the buffers (AMF BatchNorm running statistics)."""
        super().model_ema(decay)
        ema_buffers = dict(self.net_g_ema.named_buffers())
        for name, buf in self.get_bare_model(self.net_g).named_buffers():
            ema_buffers[name].copy_(buf)

    def feed_data(self, data: dict) -> None:
        self.lq_path = (data.get('lq_path') or [None])[0]  # names the blind path's image in validation
        super().feed_data(data)
        if self.condition_source == 'data' and (self.kernel is None or self.depth is None):
            raise ValueError('SSRModel (conditions.source: data) needs kernel and depth in the data; use '
                             'SVDegradationDataset / SVPairedDataset')

    def _lr_latent(self, lq: Tensor) -> Tensor:
        """z_lr: latent of the bicubic-upsampled LR (LDM-SR conditioning)."""
        up = F.interpolate(lq, scale_factor=self.opt['scale'], mode='bicubic', align_corners=False)
        return self.first_stage.encode(up.clamp(0, 1))

    def _autocast(self):
        return torch.autocast('cuda', dtype=torch.bfloat16, enabled=self.bf16 and self.device.type == 'cuda')

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        # 1. latents and noise (Eq. 5: z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps)
        with torch.no_grad():
            z0, z_lr = self.first_stage.encode(self.gt), self._lr_latent(self.lq)
        gen = torch.Generator().manual_seed(self.noise_seed * 1_000_003 + int(current_iter))
        t = torch.randint(0, self.diffusion['num_train_timesteps'], (z0.shape[0], ), generator=gen)
        eps = torch.randn(z0.shape, generator=gen).to(self.device)
        t = t.to(self.device)
        z_t = self.train_scheduler.add_noise(z0, eps, t)
        # 2. epsilon_theta and the loss
        kernel, depth, _ = self.conditions(self.lq)
        if self.condition_source == 'data':
            depth = self.training_depth(current_iter)  # train.depth_dropout
        with self._autocast():
            out = self.net_g(z_t, t, z_lr, kernel=kernel, depth=depth, lr=self.lq)
        losses = OrderedDict(l_eps=F.mse_loss(out.sample.float(), self._target(z0, eps, t)),
                             l_reg=regularizer(out.features, self.reg_weights))
        self.finish_step(losses, current_iter, [self.net_g])

    def _target(self, z0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """What the network regresses (``diffusion.prediction_type``): eps (Eq. 5), v or z_0."""
        kind = self.diffusion['prediction_type']
        if kind == 'epsilon':
            return eps
        if kind == 'v_prediction':
            return self.train_scheduler.get_velocity(z0, eps, t)
        return z0

    def _pad_amount(self, size: int) -> int:
        """Smallest p with ((size + p) * s) divisible by downscale * 2**(n-1), so the latent fits the UNet."""
        step = self.first_stage.downscale * self.latent_multiple
        unit = step // math.gcd(step, self.opt['scale'])
        return -size % unit

    @torch.no_grad()
    def sample(self, net: torch.nn.Module, lq: Tensor, kernel: Tensor, depth: Tensor,
               generator: torch.Generator | None = None, sr_estimate: Tensor | None = None) -> Tensor:
        """SR of ``lq`` with the sampler of the options.

        Args:
            net: the AMF-UNet (EMA copy or network_g).
            lq: (B, 3, h, w) in [0, 1].
            kernel: (B, k*k, h, w) kernel field.
            depth: (B, 1, H', W') depth in [0, 1] (any size; resized to the latent grid).
            generator: seeds the sampler; ``None`` = ``sampler.seed``.
            sr_estimate: (B, 3, sh, sw) in [0, 1], the start of ``sampler.start_from: nbsr``.

        Returns:
            (B, 3, sh, sw) in [0, 1].
        """
        s = self.opt['scale']
        h, w = lq.shape[-2:]
        ph, pw = self._pad_amount(h), self._pad_amount(w)
        if ph or pw:
            dh, dw = ph * depth.shape[-2] // h, pw * depth.shape[-1] // w
            lq = F.pad(lq, (0, pw, 0, ph), mode='replicate')
            kernel = F.pad(kernel, (0, pw, 0, ph), mode='replicate')
            depth = F.pad(depth, (0, dw, 0, dh), mode='replicate')
            if sr_estimate is not None:
                sr_estimate = F.pad(sr_estimate, (0, pw * s, 0, ph * s), mode='replicate')
        if generator is None:
            generator = torch.Generator().manual_seed(self.sampler_seed)
        with self._autocast():
            z_lr = self._lr_latent(lq)
            features = net.encode_conditions(kernel, depth, lq, tuple(z_lr.shape[-2:]))
            scheduler = build_scheduler(self.sampler_kind, self.diffusion, self.sampler_steps)
            start = None
            if self.start_step is not None:
                if self.start_from == 'nbsr':
                    if sr_estimate is None:
                        raise ValueError('sampler.start_from: nbsr needs the SVKR output (conditions.source: svkr)')
                    start_latent = self.first_stage.encode(sr_estimate.clamp(0, 1))
                else:
                    start_latent = z_lr
                start = dict(start_latent=start_latent, start_step=int(self.start_step))
            denoiser = TiledUNet(net, self.tile_size, self.tile_overlap, self.latent_multiple) if self.tile_size \
                else net
            z0 = sample_latents(denoiser, z_lr, features, tuple(z_lr.shape), scheduler, generator,
                                **(start or {}))
        if self.tile_size:
            out = tiled_decode(self.first_stage.decode, z0.float(), self.tile_size, self.tile_overlap,
                               self.first_stage.downscale)
        else:
            out = self.first_stage.decode(z0.float())
        out = out.clamp(0, 1)[..., :h * s, :w * s]
        if self.color_fix != 'none':
            reference = F.interpolate(lq[..., :h, :w], scale_factor=s, mode='bicubic', align_corners=False)
            out = apply_color_fix(self.color_fix, out, reference.clamp(0, 1)).clamp(0, 1)
        return out

    def test(self) -> None:
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        kernel, depth, sr_estimate = self.conditions(self.lq)
        self.output = self.sample(net, self.lq, kernel, depth, sr_estimate=sr_estimate)
        net.train(was_training)
        if getattr(self, '_val_state', None) is not None and self.condition_source == 'svkr':
            self._score_blind_path(kernel, sr_estimate)

    def _score_blind_path(self, kernel: Tensor, sr_estimate: Tensor) -> None:
        """During validation with SVKR conditions: kernel error of K^T and ``val.metrics`` of the blind path's
        I^T (saved as ``<name>_<suffix>_blind.png`` beside the SSR image when images are saved)."""
        state = self._val_state
        truth = getattr(self, 'kernel', None)
        if truth is not None and truth.shape == kernel.shape:
            state['kernel_mse'] += float(kernel_mse(kernel, truth).sum())
            state['kernel_psnr'] += float(kernel_psnr(kernel, truth).sum())
            state['kernel_count'] += kernel.shape[0]
        img = tensor2img([sr_estimate.detach().cpu()])
        gt = getattr(self, 'gt', None)
        if gt is not None:
            pair = {'img': img, 'img2': tensor2img([gt.detach().cpu()])}
            for name, metric_opt in (self.opt['val'].get('metrics') or {}).items():
                value = calculate_metric(pair, metric_opt)
                state['blind'][name] = state['blind'].get(name, 0.0) + float(value)
            state['blind_count'] += 1
        if state['save'] and self.lq_path is not None:
            name = osp.splitext(osp.basename(self.lq_path))[0]
            suffix = self.opt['val'].get('suffix') or self.opt['name']
            folder = osp.join(self.opt['path']['visualization'], state['dataset'])
            if self.opt['is_train']:
                folder, suffix = osp.join(self.opt['path']['visualization'], name), str(state['iter'])
            imwrite(img, osp.join(folder, f'{name}_{suffix}_blind.png'))

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img) -> None:
        """SRModel's ``val.metrics`` of the SSR output. With ``conditions.source: svkr`` also the blind path
        (DKENet + NBSR, I^T of Algorithm 1): the same metrics logged as ``blind path`` and kept in
        ``self.blind_metric_results``, and the kernel error of K^T against the data's kernel fields in
        ``self.kernel_metric_results``."""
        self._val_state = {'dataset': dataloader.dataset.opt['name'], 'iter': current_iter, 'save': save_img,
                           'blind': {}, 'blind_count': 0, 'kernel_mse': 0.0, 'kernel_psnr': 0.0, 'kernel_count': 0}
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
            state = self._val_state
        finally:
            self._val_state = None
        self.blind_metric_results = {k: v / state['blind_count'] for k, v in state['blind'].items()} \
            if state['blind_count'] else None
        self.kernel_metric_results = {k: state[k] / state['kernel_count'] for k in ('kernel_mse', 'kernel_psnr')} \
            if state['kernel_count'] else None
        lines = [(f'blind path (I^T) {k}', v) for k, v in (self.blind_metric_results or {}).items()]
        lines += [(k, v) for k, v in (self.kernel_metric_results or {}).items()]
        if lines:
            get_root_logger().info(f'Validation {state["dataset"]} blind path / kernels\n' +
                                   ''.join(f'\t # {k}: {v:.6g}\n' for k, v in lines))
            if tb_logger:
                for k, v in lines:
                    tb_logger.add_scalar(f'metrics/{state["dataset"]}/{k.replace(" ", "_")}', v, current_iter)
