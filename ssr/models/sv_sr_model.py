"""A plain (kernel-unaware) SR model trained on spatially variant degradations."""
from __future__ import annotations

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY

from ssr.data.degradation import SVDegradation

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
    (``optimize_parameters``, ``test``, ``validation``, ``save``) from ``SRModel``.
    """

    def __init__(self, opt: dict):
        super().__init__(opt)
        train = opt['datasets'].get('train', {}) if self.is_train else {}
        self.degradation = None
        if train.get('synthesis') == 'model':
            self.degradation = SVDegradation(train.get('degradation'), opt.get('scale', 4),
                                             source='datasets.train.degradation')

    @torch.no_grad()
    def synthesize(self, data: dict) -> dict:
        """Degrade ``data['gt']`` on ``self.device``; returns ``data`` with ``lq``, ``kernel``, ``noise_level``."""
        gt = data['gt'].to(self.device)
        depth = data['depth'].to(self.device) if 'depth' in data else None
        generator = torch.Generator(device=self.device).manual_seed(int(data['seed'][0]))
        out = self.degradation(gt, depth, generator)
        return {**data, 'gt': gt, 'lq': out['lq'], 'kernel': out['kernel'], 'depth': out['depth'],
                'noise_level': out['noise_level']}

    def feed_data(self, data: dict) -> None:
        if 'lq' not in data and self.degradation is not None:
            data = self.synthesize(data)
        super().feed_data(data)
        for key in CONDITION_KEYS:
            setattr(self, key, data[key].to(self.device) if key in data else None)
