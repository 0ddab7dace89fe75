"""Kernel-estimator training (DKENet, MANet's estimator, ...): kernel-field loss + LR re-degradation consistency."""
from __future__ import annotations

from collections import OrderedDict

import torch
from basicsr.losses import build_loss
from basicsr.utils.registry import MODEL_REGISTRY
from tqdm import tqdm

from ssr.metrics.condition_metrics import ConditionMetrics
from ssr.models.base_model import SVBaseModel
from ssr.pipelines.svkr import estimate_kernel
from ssr.ops.depth_utils import CONSTANT_DEPTH
from ssr.ops.sv_blur import sv_blur_downsample

VAL_METRICS = ('kernel_mse', 'kernel_psnr', 'lr_psnr')


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1.0 / (a - b).square().flatten(1).mean(1).clamp_min(1e-12))


@MODEL_REGISTRY.register()
class KernelEstimatorModel(SVBaseModel):
    """Trains ``network_g`` to estimate the kernel field of an LR image (optionally from depth).

    Options:
        train.kernel_opt: loss on fields, e.g. ``{type: KernelFieldLoss, criterion: l1}`` (required).
        train.consistency_opt: optional ``{type: LRConsistencyLoss, loss_weight: 0.1}``: the HR image re-degraded
            with the estimated field is compared with the HR degraded by the true field (clean LR, no noise / JPEG).
        train.grad_clip: max gradient norm, or ~.
        train.depth_dropout: probability per image of replacing the depth by a random constant map while training,
            so the estimator also works with ``depth: none`` (default 0).
        depth_input (top level): ``data`` (the dataset's depth, default) or ``none`` (constant 0.5 map: the paper's
            DI-Kernel-without-depth ablation when paired with ``network_g.use_depth: false``).

    Validation (needs ``gt`` and ``kernel`` in the data) reports ``kernel_mse``, ``kernel_psnr`` (peak = largest
    true tap) and ``lr_psnr`` (PSNR of the re-degraded HR against the clean LR); ``val.metrics`` is not used.

    Training settings are the base's (:meth:`~ssr.models.base_model.SVBaseModel.init_training_settings`: EMA with
    ``train.ema_decay``, loaded from ``params_ema`` of a pretrained ``network_g``; optimizers; schedulers) with the
    losses above.

    Overrides: setup_losses, optimize_parameters, test, nondist_validation, get_current_visuals.
    """

    def __init__(self, opt: dict):
        self.depth_input = opt.get('depth_input', 'data')
        if self.depth_input not in ('data', 'none'):
            raise ValueError(f"depth_input {self.depth_input!r} not in ('data', 'none')")
        super().__init__(opt)

    def setup_losses(self) -> None:
        """The kernel-field loss and the optional LR consistency loss, instead of SRModel's pixel losses."""
        train = self.opt['train']
        if not train.get('kernel_opt'):
            raise ValueError('train.kernel_opt is required for KernelEstimatorModel (e.g. {type: KernelFieldLoss})')
        self.cri_kernel = build_loss(train['kernel_opt']).to(self.device)
        self.cri_consistency = build_loss(train['consistency_opt']).to(self.device) if train.get(
            'consistency_opt') else None
        self.grad_clip = train.get('grad_clip')

    def _depth(self, current_iter: int | None = None) -> torch.Tensor | None:
        """The depth given to the network: constant without depth, with ``train.depth_dropout`` while training."""
        if self.depth_input == 'none' or self.depth is None:
            return torch.full_like(self.lq[:, :1], CONSTANT_DEPTH)
        return self.depth if current_iter is None else self.training_depth(current_iter)

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        self.output = estimate_kernel(self.net_g, self.lq, self._depth(current_iter))
        losses = OrderedDict(l_kernel=self.cri_kernel(self.output, self.kernel))
        if self.cri_consistency is not None:
            with torch.no_grad():
                clean_lr = sv_blur_downsample(self.gt, self.kernel, self.cri_consistency.scale)
            losses['l_consistency'] = self.cri_consistency(self.output, self.gt, clean_lr)
        self.finish_step(losses, current_iter, [self.net_g])

    def test(self) -> None:
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        net.eval()
        with torch.no_grad():
            self.output = estimate_kernel(net, self.lq, self._depth())
        if self.is_train:
            self.net_g.train()

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img) -> None:
        dataset_name = dataloader.dataset.opt['name']
        if not hasattr(self, 'best_metric_results'):
            self.best_metric_results = {}
        if dataset_name not in self.best_metric_results:
            self.best_metric_results[dataset_name] = {
                m: {'better': 'lower' if m == 'kernel_mse' else 'higher', 'val': float('inf') if m == 'kernel_mse'
                    else float('-inf'), 'iter': -1} for m in VAL_METRICS}
        metrics = ConditionMetrics()
        metrics.start()
        use_pbar = self.opt['val'].get('pbar', False)
        for data in tqdm(dataloader, unit='image', disable=not use_pbar):
            self.feed_data(data)
            if getattr(self, 'kernel', None) is None or not hasattr(self, 'gt'):
                raise ValueError(f'validation set {dataset_name} must provide gt and kernel (dataroot_kernel)')
            self.test()
            scale = self.opt.get('scale', 4)
            metrics.add_kernel(self.output, self.kernel, strict=True)
            metrics.add('lr_psnr', _psnr(sv_blur_downsample(self.gt, self.output, scale),
                                         sv_blur_downsample(self.gt, self.kernel, scale)))
        self.metric_results = metrics.finish(VAL_METRICS)
        for metric, value in self.metric_results.items():
            self._update_best_metric_result(dataset_name, metric, value, current_iter)
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    def get_current_visuals(self) -> OrderedDict:
        return OrderedDict(lq=self.lq.detach().cpu(), kernel=self.output.detach().cpu())
