"""SSR's latent diffusion SR model (paper §3.3): AMF-UNet trained with Eq. 5, sampled with DDIM / DPM-Solver++.

Notation (paper -> code): HR ``gt``, LR ``lq`` (B, 3, h, w), s = ``scale``; z_0 = E(HR) and z_lr = E(bicubic_s(LR))
(B, C, H / f, W / f) with the first stage E of downscale f; f1, f2, f3 = kernel, depth and LR encoder features;
epsilon_theta = ``network_g`` (:class:`~ssr.archs.amf_unet_arch.AMFUNet`). Inference (conditions, sampling, tiles,
colour fix) is :class:`~ssr.pipelines.ssr_pipeline.SSRPipeline`; this model adds training and validation.
"""
from __future__ import annotations

import copy
import os.path as osp
from collections import OrderedDict

import torch
from basicsr.archs import build_network
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY
from torch import Tensor
from torch.nn import functional as F

from ssr.archs.amf import MODALITIES
from ssr.metrics.condition_metrics import ConditionMetrics, log_metric_values
from ssr.models.base_model import SVBaseModel
from ssr.pipelines.sampling import build_train_scheduler
from ssr.pipelines.ssr_pipeline import SSRPipeline, SSRPipelineConfig


def regularizer(features: list[list[Tensor]], weights: list[float]) -> Tensor:
    """Eq. 5's ``sum_i lambda_i * mean|f_i|``; each f_i is a list over levels and contributes the average of means.

    Args:
        features: ``[f1, f2, f3]`` (or the ``amf_modalities``' features), each a list of (B, C_l, h_l, w_l) maps.
        weights: ``[lambda_1, lambda_2, lambda_3]``, one per entry of ``features``.
    """
    if len(weights) != len(features):
        raise ValueError(f'train.reg_weights needs {len(features)} values (kernel, depth, LR), got {list(weights)}')
    terms = [w * torch.stack([f.float().abs().mean() for f in levels]).mean() for w, levels in zip(weights, features)]
    return torch.stack(terms).sum()


@MODEL_REGISTRY.register()
class SSRModel(SVBaseModel):
    """Latent diffusion SR conditioned on kernel, depth and LR through AMF (paper §3.3, Eq. 3-5).

    Options (parsed once by :class:`~ssr.pipelines.ssr_pipeline.SSRPipelineConfig`):
        network_g: ``{type: AMFUNet, latent_channels: C, ...}`` with C = the first stage's latent channels.
        first_stage: ``{kind: pixel_unshuffle | autoencoder_kl | vq, path: ~, factor: 4, scaling_factor: ~}``, see
            :func:`~ssr.archs.first_stage.load_first_stage`; frozen, never saved.
        diffusion: the DDPM training schedule ``{num_train_timesteps, beta_schedule, beta_start, beta_end,
            prediction_type: epsilon, formulation: image | residual, residual_scale: 1}``. ``residual`` learns
            ``(E(HR) - E(base)) * residual_scale`` on top of a base image (the data's ``base`` from
            ``SVPairedDataset``'s ``base/`` folder, else SVKR's I^T), conditioned on ``E(base)``.
        conditions: ``{source: data | svkr}``. ``data``: the dataset's ground-truth kernel field and depth (fast
            training). ``svkr``: K^T and D^T of Algorithm 1 run with frozen networks ``network_e`` (estimator) and
            ``network_sr`` (non-blind SR, e.g. NBSR), plus ``network_d`` (e.g. MiDaSDepth) for ``svkr.depth:
            midas``. Weights from ``path.pretrain_network_e`` / ``pretrain_network_sr`` (``param_key_*``,
            ``strict_load_*``); these networks are not trained and not saved.
        svkr: ``{iterations: 3, gamma: 0.9, depth: midas | file | none}`` (:class:`~ssr.pipelines.svkr.SVKRConfig`,
            the block ``BlindSRModel`` reads); ``file`` uses the data's depth, ``none`` a constant map. Older files
            write these keys inside ``conditions:``, which is still read.
        sampler: ``{kind: ddim | dpmsolver++, steps: 20, seed: 0, start_step: ~, start_from: bicubic}``;
            ``start_step`` (index into the N sampling steps) starts there from the noised latent of an SR estimate
            instead of pure noise: ``bicubic`` (bicubic LR) or ``nbsr`` (I^T of SVKR; needs ``source: svkr``).
            ``tile: {size: 0, overlap: 0}`` (latent px; size 0 = off): every step runs the UNet on overlapping
            latent tiles with the whole image's condition features cropped per tile and blends the noise with
            Gaussian weights; decoding is tiled the same way (:mod:`ssr.pipelines.tiling`). Both must be
            multiples of the UNet's 2**(n-1). ``color_fix: none | adain | wavelet`` corrects the decoded SR towards
            the bicubic-upsampled LR (:mod:`ssr.ops.color_correction`). ``consistency: {steps: all | last_k |
            final, k, iters, weight, sigma: auto, tau}`` corrects the predicted z_0 toward the LR under the kernel
            field (:mod:`ssr.ops.consistency`).
        train: ``optim_g``, ``ema_decay``, ``grad_clip``, ``reg_weights: [l1, l2, l3]`` (default 0; always three,
            kernel, depth, LR: the weights of modalities that ``network_g.amf_modalities`` leaves out are unused),
            ``bf16`` (autocast on CUDA only), ``depth_dropout`` (probability per image of a random constant depth map
            with ``conditions.source: data``, so the model also runs with ``depth: none``; default 0).

    Ablations (paper Table 2, ``options/ablation/``): with ``network_g.amf_modalities`` a subset of kernel, depth and
    LR, the data need only the kernel / depth that the UNet fuses (:meth:`SSRPipeline.needs`); the others are ignored.

    Training (Eq. 5): t ~ U{0, T-1} and eps ~ N(0, I) from a generator seeded by ``(manual_seed, current_iter)``
    (a resumed run draws the same noise), z_t = add_noise(z_0, eps, t),
    loss ``l_eps = MSE(eps_theta(z_t, t, z_lr, f1, f2, f3), eps)`` + ``l_reg = sum_i lambda_i mean|f_i|``; with
    ``diffusion.prediction_type: v_prediction`` / ``sample`` the target is v / z_0 instead of eps (the loss keeps
    its name ``l_eps``).
    Testing: ``self.pipeline`` (around the EMA network when there is one): conditions encoded once, latents sampled
    from ``sampler.seed``, decoded and clamped to [0, 1]; the LR is padded (replicate) so the latent fits the UNet
    and the output cropped back.

    Overrides: __init__, init_training_settings, setup_optimizers, model_ema (also copies buffers such as the AMF
    BatchNorm statistics), feed_data (bicubic LR), optimize_parameters, test, nondist_validation.
    Inherits saving and resuming from ``SVBaseModel``.
    """

    def __init__(self, opt: dict):
        # 1. options, read and checked before any network is built
        self.config = SSRPipelineConfig.from_options(opt, where=type(self).__name__)
        self.diffusion, self.condition_source = self.config.diffusion, self.config.source
        self.bf16 = self.config.bf16  # CUDA autocast, training and sampling
        self.first_stage = self.config.build_first_stage()
        self.net_e = self.net_sr = self.net_d = None
        self._val_state = None
        # 2. networks (SRModel builds network_g, loads weights, and calls init_training_settings)
        super().__init__(opt)
        self.first_stage.to(self.device)
        self._build_svkr_networks()
        self.pipeline = SSRPipeline(self.get_bare_model(self.net_g), self.first_stage, self.config,
                                    estimator=self.net_e, sr_net=self.net_sr, depth_net=self.net_d)

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
        return self.pipeline.conditions(lq, self.kernel, self.depth, self.noise_level)

    def init_training_settings(self) -> None:
        train = self.opt['train']
        self.grad_clip = train.get('grad_clip')
        self.reg_weights = [float(w) for w in train.get('reg_weights', [0.0, 0.0, 0.0])]
        if len(self.reg_weights) != 3:
            raise ValueError(f'train.reg_weights needs 3 values (kernel, depth, LR), got {self.reg_weights}')
        # Eq. 5 has one lambda per fused modality; the UNet returns features of its amf_modalities only
        modalities = getattr(self.get_bare_model(self.net_g), 'modalities', MODALITIES)
        self.fused_reg_weights = [w for m, w in zip(MODALITIES, self.reg_weights) if m in modalities]
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
        self.base = data['base'].to(self.device) if 'base' in data else None  # SVPairedDataset's base/ folder
        missing = [k for k in ('kernel', 'depth') if self.condition_source == 'data' and getattr(self, k) is None
                   and self.pipeline.needs(k)]
        if missing:
            raise ValueError(f'SSRModel (conditions.source: data) needs {" and ".join(missing)} in the data; use '
                             'SVDegradationDataset / SVPairedDataset')

    def _autocast(self):
        return torch.autocast('cuda', dtype=torch.bfloat16, enabled=self.bf16 and self.device.type == 'cuda')

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        # 1. latents and noise (Eq. 5: z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps)
        kernel, depth, sr_estimate = self.conditions(self.lq)
        with torch.no_grad():
            z0, z_lr = self.pipeline.training_latents(self.gt, self.lq, self.residual_base(sr_estimate))
        gen = torch.Generator().manual_seed(self.noise_seed * 1_000_003 + int(current_iter))
        t = torch.randint(0, self.diffusion['num_train_timesteps'], (z0.shape[0], ), generator=gen)
        eps = torch.randn(z0.shape, generator=gen).to(self.device)
        t = t.to(self.device)
        z_t = self.train_scheduler.add_noise(z0, eps, t)
        # 2. epsilon_theta and the loss
        if self.condition_source == 'data' and self.pipeline.needs('depth'):
            depth = self.training_depth(current_iter)  # train.depth_dropout
        with self._autocast():
            out = self.net_g(z_t, t, z_lr, kernel=kernel, depth=depth, lr=self.lq)
        losses = OrderedDict(l_eps=F.mse_loss(out.sample.float(), self._target(z0, eps, t)),
                             l_reg=regularizer(out.features, self.fused_reg_weights))
        self.finish_step(losses, current_iter, [self.net_g])

    def residual_base(self, sr_estimate: Tensor | None) -> Tensor | None:
        """The base image (B, 3, H, W) in [0, 1] of ``diffusion.formulation: residual``: the data's ``base``
        (``SVPairedDataset``'s ``base/`` folder), else SVKR's I^T (``conditions.source: svkr``); ``None`` for the
        image formulation.

        Raises:
            ValueError: the residual formulation without either source.
        """
        if self.diffusion['formulation'] != 'residual':
            return None
        base = self.base if getattr(self, 'base', None) is not None else sr_estimate
        if base is None:
            raise ValueError('diffusion.formulation: residual needs a base image: a dataset with base/ '
                             '(SVPairedDataset dataroot_base) or conditions.source: svkr')
        return base

    def _target(self, z0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """What the network regresses (``diffusion.prediction_type``): eps (Eq. 5), v or z_0."""
        kind = self.diffusion['prediction_type']
        if kind == 'epsilon':
            return eps
        if kind == 'v_prediction':
            return self.train_scheduler.get_velocity(z0, eps, t)
        return z0

    @torch.no_grad()
    def sample(self, net: torch.nn.Module, lq: Tensor, kernel: Tensor | None, depth: Tensor | None,
               generator: torch.Generator | None = None, sr_estimate: Tensor | None = None) -> Tensor:
        """SR of ``lq`` under the given conditions with the UNet ``net`` (EMA copy or network_g): the pipeline's
        :meth:`~ssr.pipelines.ssr_pipeline.SSRPipeline.sample`. Returns (B, 3, sh, sw) in [0, 1]."""
        return self.pipeline.with_unet(net).sample(lq, kernel, depth, generator, sr_estimate)

    def test(self) -> None:
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        out = self.pipeline.with_unet(net)(self.lq, self.kernel, self.depth, noise_level=self.noise_level,
                                           base=getattr(self, 'base', None))
        self.output = out.sr
        net.train(was_training)
        if self._val_state is not None and self.condition_source == 'svkr':
            self._score_blind_path(out.kernel, out.blind_sr)

    def _score_blind_path(self, kernel: Tensor, sr_estimate: Tensor) -> None:
        """During validation with SVKR conditions: kernel error of K^T and ``val.metrics`` of the blind path's
        I^T (saved as ``<name>_<suffix>_blind.png`` beside the SSR image when images are saved)."""
        state = self._val_state
        state['kernel'].add_kernel(kernel, getattr(self, 'kernel', None))
        img = tensor2img([sr_estimate.detach().cpu()])
        gt = getattr(self, 'gt', None)
        if gt is not None:
            pair = {'img': img, 'img2': tensor2img([gt.detach().cpu()])}
            for name, metric_opt in (self.opt['val'].get('metrics') or {}).items():
                state['blind'].add(name, float(calculate_metric(pair, metric_opt)))
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
        dataset = dataloader.dataset.opt['name']
        state = {'dataset': dataset, 'iter': current_iter, 'save': save_img, 'blind': ConditionMetrics(),
                 'kernel': ConditionMetrics()}
        state['blind'].start()
        state['kernel'].start()
        self._val_state = state
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            self._val_state = None
        self.blind_metric_results = state['blind'].finish() or None
        self.kernel_metric_results = state['kernel'].finish() or None
        lines = {f'blind path (I^T) {k}': v for k, v in (self.blind_metric_results or {}).items()}
        lines.update(self.kernel_metric_results or {})
        log_metric_values('blind path / kernels', dataset, lines, current_iter, tb_logger)
