"""Blind two-stage SR: any registered kernel estimator + any registered SR network, refined by SVKR at test time."""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from ssr.metrics.depth_error import depth_abs_rel
from ssr.metrics.kernel_error import kernel_mse, kernel_psnr
from ssr.models.network_calls import estimate_kernel, super_resolve
from ssr.models.sv_sr_model import SVSRModel
from ssr.models.svkr import SVKR, SVKROutput

DEPTH_SOURCES = ('midas', 'file', 'none')
CONSTANT_DEPTH = 0.5


@MODEL_REGISTRY.register()
class BlindSRModel(SVSRModel):
    """Kernel estimator (``network_e``) + SR network (``network_g``) + optional depth network (``network_d``).

    Combinations, all by option: DKENet + NBSR (SSR's blind path), MANetEstimator + MANetSR, a one-network blind SR
    (``DCLSNet``) or a kernel-unaware SR (``RRDBNet``, e.g. RealSR weights) with no ``network_e``.

    Options:
        network_e (optional): the estimator; weights ``path.pretrain_network_e`` (``param_key_e``, ``strict_load_e``).
        network_g: the SR network; weights ``path.pretrain_network_g``.
        network_d (optional): a depth network such as ``MiDaSDepth`` (weights from its own ``weights_path``).
        svkr: ``{iterations: 3, gamma: 0.9, depth: midas | file | none}`` - Algorithm 1 at test time; ``depth``
            ``midas`` runs ``network_d`` on LR and each SR iterate, ``file`` uses the data's depth (fixed), ``none`` a
            constant map (the paper's no-depth ablation, and the fallback without depth weights). ``iterations: 0``
            is the plain two-stage pipeline.
        train (joint fine-tuning, optional): ``optim_g`` (required), ``optim_e`` (omit to keep the estimator
            frozen), ``pixel_opt``, ``kernel_opt`` (loss of the estimate against the data's kernel), ``grad_clip``,
            ``ema_decay`` (EMA of network_g only). Training runs one estimate + SR pass per batch (no SVKR rounds)
            with the data's depth.

    After ``test()``: ``self.output`` (I^T), ``self.kernel_est`` (K^T or None), ``self.depth_est`` (D^T or None),
    and ``self.svkr_output`` (with every iterate when ``svkr.save_iterates``).
    Overrides: __init__, init_training_settings, optimize_parameters, test, nondist_validation, save.
    """

    def __init__(self, opt: dict):
        svkr = dict(opt.get('svkr') or {})
        self.svkr_iterations, self.svkr_gamma = int(svkr.get('iterations', 3)), float(svkr.get('gamma', 0.9))
        self.depth_source = svkr.get('depth', 'midas' if 'network_d' in opt else 'none')
        self.save_iterates = bool(svkr.get('save_iterates', False))
        if self.depth_source not in DEPTH_SOURCES:
            raise ValueError(f'svkr.depth {self.depth_source!r} not in {DEPTH_SOURCES}')
        if self.depth_source == 'midas' and 'network_d' not in opt:
            raise ValueError('svkr.depth: midas needs a network_d (e.g. {type: MiDaSDepth, weights_path: ...}); '
                             'use depth: none to run without depth weights')
        self.net_e = self.net_d = None
        self._reset_condition_metrics()
        super().__init__(opt)
        self._build_aux_networks()
        SVKR(lambda x: x, lambda a, b: a, lambda a, b: a, self.svkr_iterations, self.svkr_gamma)  # checks values

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
    def _depth_fn(self, reference: torch.Tensor):
        if self.depth_source == 'midas':
            return lambda img: self.net_d(img)
        if self.depth_source == 'file':
            if self.depth is None:
                raise ValueError('svkr.depth: file needs depth maps in the data (dataroot_depth)')
            return lambda img: self.depth
        return lambda img: torch.full_like(img[:, :1], CONSTANT_DEPTH)

    def run_svkr(self, lq: torch.Tensor, net_g=None, net_e=None) -> SVKROutput:
        """Algorithm 1 on ``lq`` with this model's networks (EMA / eval copies when given)."""
        net_g, net_e = net_g or self.net_g, net_e or self.net_e
        svkr = SVKR(self._depth_fn(lq), lambda x, d: estimate_kernel(net_e, x, d),
                    lambda x, k: super_resolve(net_g, x, k, self.noise_level), self.svkr_iterations, self.svkr_gamma)
        return svkr(lq, return_iterates=self.save_iterates)

    def optimize_parameters(self, current_iter: int) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        losses = OrderedDict()
        kernel = None
        if self.net_e is not None:
            depth = self.depth if self.depth is not None and self.depth_source != 'none' else None
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
            if self.net_e is None:
                out = net_g(self.lq)
                self.output, self.depth_est = getattr(out, 'sr', out), None
                self.kernel_est = self._field_of(getattr(out, 'kernel', None))
                self.svkr_output = None
            else:
                self.svkr_output = self.run_svkr(self.lq, net_g=net_g)
                self.output = self.svkr_output.sr
                self.kernel_est, self.depth_est = self.svkr_output.kernel, self.svkr_output.depth
        truth = getattr(self, 'kernel', None)
        if self.kernel_est is not None and truth is not None and truth.shape == self.kernel_est.shape:
            self._totals['kernel_mse'] += float(kernel_mse(self.kernel_est, self.kernel).sum())
            self._totals['kernel_psnr'] += float(kernel_psnr(self.kernel_est, self.kernel).sum())
            self._counts['kernel'] += self.lq.shape[0]
        if self.depth_source == 'midas' and self.depth_est is not None and getattr(self, 'depth', None) is not None:
            # only an estimated depth has an error; with depth: file the estimate is the ground truth itself
            estimate = F.interpolate(self.depth_est, size=self.depth.shape[-2:], mode='bilinear', align_corners=False)
            self._totals['depth_abs_rel'] += float(depth_abs_rel(estimate, self.depth).sum())
            self._counts['depth'] += self.lq.shape[0]
        if self.is_train:
            self.net_g.train()
            if self.train_estimator:
                self.net_e.train()

    def _reset_condition_metrics(self) -> None:
        self._totals = {'kernel_mse': 0.0, 'kernel_psnr': 0.0, 'depth_abs_rel': 0.0}
        self._counts = {'kernel': 0, 'depth': 0}

    def _field_of(self, kernel: torch.Tensor | None) -> torch.Tensor | None:
        """A one-kernel-per-image estimate ``(B, 1, k, k)`` / ``(B, k*k)`` (DCLS) as a field on the LR grid."""
        if kernel is None:
            return None
        b, h, w = self.lq.shape[0], self.lq.shape[2], self.lq.shape[3]
        return kernel.reshape(b, -1, 1, 1).expand(b, kernel[0].numel(), h, w)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img) -> None:
        """SRModel's image metrics, plus kernel error (data with kernel fields) and depth AbsRel (depth: midas on data
        with depth maps)."""
        self._reset_condition_metrics()
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        values = {name: total / self._counts[name.split('_')[0]] for name, total in self._totals.items()
                  if self._counts[name.split('_')[0]]}
        if values:
            name = dataloader.dataset.opt['name']
            get_root_logger().info(f'Validation {name} kernels / depth\n' +
                                   ''.join(f'\t # {k}: {v:.6g}\n' for k, v in values.items()))
            if tb_logger:
                for k, v in values.items():
                    tb_logger.add_scalar(f'metrics/{name}/{k}', v, current_iter)
            self.kernel_metric_results = values

    def save(self, epoch: int, current_iter: int) -> None:
        if self.train_estimator:
            self.save_network(self.net_e, 'net_e', current_iter)
        super().save(epoch, current_iter)
