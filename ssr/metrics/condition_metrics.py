"""Validation scores of a model's conditions: kernel-field error and depth AbsRel (plus any other per-image value)
averaged over one validation pass; shared by ``BlindSRModel``, ``SSRModel`` and ``KernelEstimatorModel``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor

from ssr.metrics.depth_error import depth_abs_rel
from ssr.metrics.kernel_error import kernel_mse, kernel_psnr

__all__ = ['ConditionMetrics', 'log_metric_values']


class ConditionMetrics:
    """Sums of per-image values between :meth:`start` and :meth:`finish`, then their means.

    Outside a pass every ``add*`` is a no-op, so ``test()`` may report its estimates whether or not a validation is
    running; only the validation that started the pass scores them.
    """

    def __init__(self) -> None:
        self._totals: dict[str, float] | None = None
        self._counts: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return self._totals is not None

    def start(self) -> None:
        """Begins a pass with empty sums."""
        self._totals, self._counts = {}, {}

    def add(self, name: str, values: Tensor | float) -> None:
        """Adds per-image values: a (B,) tensor, or one float for one image."""
        if self._totals is None:
            return
        if isinstance(values, Tensor):
            total, count = float(values.float().sum()), values.numel()
        else:
            total, count = float(values), 1
        self._totals[name] = self._totals.get(name, 0.0) + total
        self._counts[name] = self._counts.get(name, 0) + count

    def add_kernel(self, estimate: Tensor | None, truth: Tensor | None, strict: bool = False,
                   name: str = 'kernel') -> None:
        """Kernel MSE and PSNR of ``estimate`` against ``truth``, both (B, k*k, h, w), as ``<name>_mse`` /
        ``<name>_psnr`` (``kernel_lr`` for DCLS's reformulated LR-space kernels, which are not HR kernels).

        Without ``strict`` a missing truth or a field of another shape (another kernel size or grid) is skipped;
        with it, a shape mismatch raises ``ValueError``.
        """
        if estimate is None or truth is None or (not strict and truth.shape != estimate.shape):
            return
        self.add(f'{name}_mse', kernel_mse(estimate, truth))
        self.add(f'{name}_psnr', kernel_psnr(estimate, truth))

    def add_depth(self, estimate: Tensor | None, truth: Tensor | None) -> None:
        """``depth_abs_rel`` of ``estimate`` (B, 1, H', W', resized bilinearly) against ``truth`` (B, 1, H, W)."""
        if estimate is None or truth is None:
            return
        estimate = F.interpolate(estimate, size=truth.shape[-2:], mode='bilinear', align_corners=False)
        self.add('depth_abs_rel', depth_abs_rel(estimate, truth))

    def finish(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """Ends the pass: the mean of every value added (in the order first added), or of ``names`` (0.0 for a name
        never added)."""
        totals, counts = self._totals or {}, self._counts
        self._totals, self._counts = None, {}
        if names is None:
            return {name: total / counts[name] for name, total in totals.items()}
        return {name: totals.get(name, 0.0) / max(counts.get(name, 0), 1) for name in names}


def log_metric_values(title: str, dataset: str, values: Mapping[str, float], current_iter: int, tb_logger) -> None:
    """Logs ``values`` as BasicSR does (``\\t # name: value`` lines) and to TensorBoard as ``metrics/<dataset>/<name>``
    (spaces in names become underscores)."""
    from basicsr.utils import get_root_logger

    if not values:
        return
    lines = ''.join(f'\t # {k}: {v:.6g}\n' for k, v in values.items())
    get_root_logger().info(f'Validation {dataset} {title}\n' + lines)
    if tb_logger:
        for k, v in values.items():
            tb_logger.add_scalar(f'metrics/{dataset}/{k.replace(" ", "_")}', v, current_iter)
