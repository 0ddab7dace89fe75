"""Blind two-stage SR: any registered kernel estimator + any registered SR network, refined by SVKR at test time."""
from __future__ import annotations

from collections import OrderedDict

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.utils.registry import MODEL_REGISTRY

from ssr.metrics.condition_metrics import ConditionMetrics, log_metric_values
from ssr.models.base_model import SVBaseModel
from ssr.pipelines.svkr import (CONSTANT_DEPTH, SVKRConfig, SVKROutput, blind_sr, estimate_kernel, kernel_field_of,
                                run_sr_network, super_resolve)

__all__ = ['BlindSRModel', 'CONSTANT_DEPTH']


@MODEL_REGISTRY.register()
class BlindSRModel(SVBaseModel):
    """Kernel estimator (``network_e``) + SR network (``network_g``) + optional depth network (``network_d``).

    Combinations, all by option: DKENet + NBSR (SSR's blind path), MANetEstimator + MANetSR, a one-network blind SR
    (``DCLSNet``) or a kernel-unaware SR (``RRDBNet``, e.g. RealSR weights) with no ``network_e``.

    Options:
        network_e (optional): the estimator; weights ``path.pretrain_network_e`` (``param_key_e``, ``strict_load_e``).
        network_g: the SR network; weights ``path.pretrain_network_g``.
        network_d (optional): a depth network such as ``MiDaSDepth`` (weights from its own ``weights_path``).
        svkr: ``{iterations: 3, gamma: 0.9, depth: midas | file | none, save_iterates: false}`` - Algorithm 1 at test
            time (:class:`~ssr.pipelines.svkr.SVKRConfig`); ``depth`` ``midas`` runs ``network_d`` on LR and each SR
            iterate, ``file`` uses the data's depth (fixed), ``none`` a constant map (the paper's no-depth ablation,
            and the fallback without depth weights). ``iterations: 0`` is the plain two-stage pipeline.
        train (joint fine-tuning, optional): ``optim_g`` (required; ``lr_by_prefix: {Estimator.: 1e-4}`` gives the
            parameters of network_g whose names start with a prefix their own learning rate), ``optim_e`` (omit to
            keep the estimator frozen), ``pixel_opt``, ``kernel_opt`` (loss of the estimate against the data's
            kernel: ``kernel`` for network_e's field; for a one-network blind SR that returns a kernel, such as
            ``DCLSNet``, the data's ``kernel_lr`` (``DCLSGTDataset``) or ``kernel``), ``grad_clip``, ``ema_decay``
            (EMA of network_g only). Training runs one estimate + SR pass per batch (no SVKR rounds) with the data's
            depth.

    After ``test()``: ``self.output`` (I^T), ``self.kernel_est`` (K^T or None), ``self.depth_est`` (D^T or None),
    and ``self.svkr_output`` (:class:`~ssr.pipelines.svkr.SVKROutput`, with every iterate when
    ``svkr.save_iterates``).
    Overrides: __init__, feed_data, init_training_settings, setup_optimizers, optimize_parameters, test,
    nondist_validation, save.
    """

    def __init__(self, opt: dict):
        self.svkr = SVKRConfig.from_options(opt, where=type(self).__name__)
        self.svkr.check_networks(opt, where=type(self).__name__)
        self.net_e = self.net_d = None
        self.condition_metrics = ConditionMetrics()
        super().__init__(opt)
        self._build_aux_networks()

    # ------------------------------------------------------------------------------------------------------------
    def _build_aux_networks(self) -> None:
        if self.net_e is None and 'network_e' in self.opt:
            self.net_e = self.model_to_device(build_network(self.opt['network_e']))
            path = self.opt['path'].get('pretrain_network_e')
            if path:
                self.load_network(self.net_e, path, self.opt['path'].get('strict_load_e', True),
                                  self.opt['path'].get('param_key_e', 'params'))
        if self.net_d is None and 'network_d' in self.opt:
            self.net_d = build_network(self.opt['network_d']).to(self.device).eval()

    def init_training_settings(self) -> None:
        self._build_aux_networks()
        train = self.opt['train']
        self.grad_clip = train.get('grad_clip')
        self.cri_kernel = build_loss(train['kernel_opt']).to(self.device) if train.get('kernel_opt') else None
        self.train_estimator = self.net_e is not None and bool(train.get('optim_e'))
        if self.net_e is not None:
            self.net_e.train(self.train_estimator)
            self.net_e.requires_grad_(self.train_estimator)
        if self.train_estimator:  # before SRModel's settings, whose setup_schedulers covers every optimizer
            optim = dict(train['optim_e'])
            params = [p for p in self.net_e.parameters() if p.requires_grad]
            self.optimizer_e = self.get_optimizer(optim.pop('type'), params, **optim)
            self.optimizers.append(self.optimizer_e)
        super().init_training_settings()  # net_g, EMA, pixel loss, optim_g, schedulers

    # ------------------------------------------------------------------------------------------------------------
    def run_svkr(self, lq: torch.Tensor, net_g=None, net_e=None) -> SVKROutput:
        """Algorithm 1 on ``lq`` with this model's networks (EMA / eval copies when given); without an estimator,
        the SR network alone (:class:`~ssr.pipelines.svkr.OneNetworkSR`)."""
        net_g, net_e = net_g or self.net_g, net_e or self.net_e
        path = blind_sr(self.svkr, net_g, net_e, self.net_d, depth_map=self.depth, noise_level=self.noise_level)
        return path(lq, return_iterates=self.svkr.save_iterates)

    def feed_data(self, data: dict) -> None:
        super().feed_data(data)
        self.kernel_lr = data['kernel_lr'].to(self.device) if 'kernel_lr' in data else None

    def setup_optimizers(self) -> None:
        """SRModel's ``optim_g`` over network_g, with ``lr_by_prefix`` as parameter groups of their own rate."""
        optim = dict(self.opt['train']['optim_g'])
        optim_type, by_prefix = optim.pop('type'), dict(optim.pop('lr_by_prefix', None) or {})
        groups: dict[str, list] = {prefix: [] for prefix in by_prefix}
        rest = []
        for name, param in self.get_bare_model(self.net_g).named_parameters():
            if not param.requires_grad:
                continue
            prefix = next((p for p in by_prefix if name.startswith(p)), None)
            (groups[prefix] if prefix is not None else rest).append(param)
        empty = [p for p, params in groups.items() if not params]
        if empty:
            raise ValueError('train.optim_g.lr_by_prefix: no trainable parameter of network_g starts with '
                             f'{empty[0]!r}')
        params = [{'params': rest}] + [{'params': groups[p], 'lr': float(lr)} for p, lr in by_prefix.items()]
        self.optimizer_g = self.get_optimizer(optim_type, params if by_prefix else rest, **optim)
        self.optimizers.append(self.optimizer_g)

    def _one_network_kernel_loss(self) -> torch.Tensor:
        """``kernel_opt`` on the kernel a one-network blind SR returns (DCLSNet's (B, 1, k, k)), against the data's
        ``kernel_lr`` (or ``kernel``); sets ``self.output``."""
        out = run_sr_network(self.net_g, self.lq, None, self.noise_level)
        kernel = getattr(out, 'kernel', None)
        target = self.kernel_lr if self.kernel_lr is not None else self.kernel
        if kernel is None or target is None:
            raise ValueError('train.kernel_opt: network_g returns no kernel or the data has none to compare with '
                             '(kernel_lr from DCLSGTDataset, or kernel)')
        if kernel.shape != target.shape:
            raise ValueError(f'train.kernel_opt: network_g returns kernels {tuple(kernel.shape)}, the data '
                             f'{tuple(target.shape)}')
        self.output = out.sr
        return self.cri_kernel(kernel, target)

    def optimize_parameters(self, current_iter: int) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        losses = OrderedDict()
        kernel = None
        if self.net_e is None and self.cri_kernel is not None:  # one network (DCLS): SR + kernel in one pass
            losses['l_kernel'] = self._one_network_kernel_loss()
            losses['l_pix'] = self.cri_pix(self.output, self.gt)
            self.finish_step(losses, current_iter, [self.net_g])
            return
        if self.net_e is not None:
            depth = self.depth if self.depth is not None and self.svkr.depth != 'none' else None
            depth = depth if depth is not None else torch.full_like(self.lq[:, :1], CONSTANT_DEPTH)
            kernel = estimate_kernel(self.net_e, self.lq, depth)
            if self.cri_kernel is not None and self.kernel is not None and self.train_estimator:
                losses['l_kernel'] = self.cri_kernel(kernel, self.kernel)
            if not self.train_estimator:
                kernel = kernel.detach()
        self.output = super_resolve(self.net_g, self.lq, kernel, self.noise_level)
        losses['l_pix'] = self.cri_pix(self.output, self.gt)
        self.finish_step(losses, current_iter, [self.net_g] + ([self.net_e] if self.train_estimator else []))

    def test(self) -> None:
        net_g = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        for net in (net_g, self.net_e):
            if net is not None:
                net.eval()
        with torch.no_grad():
            out = self.run_svkr(self.lq, net_g=net_g)
        self.svkr_output = out if self.net_e is not None else None
        self.output, self.kernel_est, self.depth_est = out.sr, out.kernel, out.depth
        self.condition_metrics.add_kernel(self.kernel_est, getattr(self, 'kernel', None))
        if getattr(self, 'kernel_lr', None) is not None:  # DCLS's reformulated kernel (DCLSGTDataset)
            self.condition_metrics.add_kernel(self.kernel_est, kernel_field_of(self.kernel_lr, self.lq),
                                              name='kernel_lr')
        if self.svkr.depth == 'midas':  # only an estimated depth has an error; with depth: file it is the truth
            self.condition_metrics.add_depth(self.depth_est, getattr(self, 'depth', None))
        if self.is_train:
            self.net_g.train()
            if self.train_estimator:
                self.net_e.train()

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img) -> None:
        """SRModel's image metrics, plus kernel error (data with kernel fields) and depth AbsRel (depth: midas on data
        with depth maps)."""
        self.condition_metrics.start()
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            values = self.condition_metrics.finish()
        if values:
            log_metric_values('kernels / depth', dataloader.dataset.opt['name'], values, current_iter, tb_logger)
            self.kernel_metric_results = values

    def save(self, epoch: int, current_iter: int) -> None:
        if self.train_estimator:
            self.save_network(self.net_e, 'net_e', current_iter)
        super().save(epoch, current_iter)
