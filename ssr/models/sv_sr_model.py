"""A plain (kernel-unaware) SR model trained on spatially variant degradations."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY
from torch import Tensor, nn

import torch

from ssr.ops.depth_utils import depth_dropout
from ssr.models.sv_synthesis import build_synthesis, synthesize
from ssr.models.training_utils import check_finite, clip_gradients

CONDITION_KEYS = ('kernel', 'depth', 'noise_level')


@MODEL_REGISTRY.register()
class SVSRModel(SRModel):
    """BasicSR's ``SRModel`` whose training pairs may be synthesised on the model's device.

    With ``datasets.train.synthesis: model`` the dataset returns HR crops and depth only, and :meth:`feed_data`
    degrades the whole batch with ``datasets.train.degradation`` (one :class:`~ssr.data.degradation.SVDegradation`,
    the same options the data workers would use), seeded from the batch's first sample seed so runs and resumed
    runs are reproducible. Otherwise it behaves as ``SRModel``. The batch's kernel field, depth and noise level are
    kept as ``self.kernel``, ``self.depth``, ``self.noise_level`` for subclasses that condition on them.

    Overrides: ``__init__`` (reads the synthesis options once), ``feed_data``. Inherits everything else
    (``optimize_parameters``, ``test``, ``validation``, ``save``) from ``SRModel``. Adds :meth:`finish_step`, the
    end of an optimisation step shared by ssr's models, and :meth:`training_depth`, the batch's depth after
    ``train.depth_dropout`` (probability per image of a random constant map; 0 by default).
    """

    def __init__(self, opt: dict):
        super().__init__(opt)
        self.degradation = build_synthesis(opt, self.is_train)

    def feed_data(self, data: dict) -> None:
        if 'lq' not in data and self.degradation is not None:
            data = synthesize(self.degradation, data, self.device)
        super().feed_data(data)
        for key in CONDITION_KEYS:
            setattr(self, key, data[key].to(self.device) if key in data else None)

    def training_depth(self, current_iter: int) -> Tensor | None:
        """``self.depth`` with ``train.depth_dropout`` applied (seeded by ``manual_seed`` and the iteration, so a
        resumed run drops the same maps), or ``None`` without depth in the data."""
        p = float(self.opt.get('train', {}).get('depth_dropout', 0) or 0)
        if self.depth is None or p == 0:
            return self.depth
        seed = int(self.opt.get('manual_seed') or 0) * 1_000_003 + int(current_iter) + 7_919
        return depth_dropout(self.depth, p, torch.Generator().manual_seed(seed))

    def finish_step(self, losses: Mapping[str, Tensor], current_iter: int, nets: Sequence[nn.Module]) -> None:
        """Check the losses are finite, back-propagate their sum, clip (``train.grad_clip``), step every optimizer,
        log the losses and update the EMA network."""
        check_finite(losses, current_iter)
        sum(losses.values()).backward()
        clip_gradients(nets, getattr(self, 'grad_clip', None))
        for optimizer in self.optimizers:
            optimizer.step()
        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
