"""A plain (kernel-unaware) SR model trained on spatially variant degradations."""
from __future__ import annotations

from basicsr.utils.registry import MODEL_REGISTRY

from ssr.models.base_model import SVBaseModel


@MODEL_REGISTRY.register()
class SVSRModel(SVBaseModel):
    """The recipe of ``options/*svsr*``: BasicSR's ``SRModel`` training (``network_g`` on ``lq``, ``train.pixel_opt``
    / ``perceptual_opt``, ``ema_decay``) on spatially variant training pairs, optionally synthesised on the model's
    device (``datasets.train.synthesis: model``).

    Everything comes from :class:`~ssr.models.base_model.SVBaseModel` (synthesis in ``feed_data``, checkpoints,
    any ``torch.optim`` optimizer) and ``SRModel`` (``optimize_parameters``, ``test``, ``validation``, ``save``); the
    class exists to give the recipe its registered name, also usable for any BasicSR network that needs none of
    the kernel / depth conditions.
    """
