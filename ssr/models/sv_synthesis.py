"""On-device synthesis of SV training pairs for models whose dataset says ``synthesis: model``."""
from __future__ import annotations

import torch

from ssr.data.degradation import SVDegradation


def build_synthesis(opt: dict, is_train: bool) -> SVDegradation | None:
    """The training dataset's ``degradation`` block as an :class:`SVDegradation`, when synthesis is the model's."""
    train = opt['datasets'].get('train', {}) if is_train else {}
    if train.get('synthesis') != 'model':
        return None
    return SVDegradation(train.get('degradation'), opt.get('scale', 4), source='datasets.train.degradation')


@torch.no_grad()
def synthesize(degradation: SVDegradation, data: dict, device: torch.device) -> dict:
    """Degrade ``data['gt']`` on ``device`` with a generator seeded from the batch's first sample seed.

    Returns ``data`` with ``gt``, ``lq``, ``kernel``, ``depth``, ``noise_level`` on ``device``.
    """
    gt = data['gt'].to(device)
    depth = data['depth'].to(device) if 'depth' in data else None
    generator = torch.Generator(device=device).manual_seed(int(data['seed'][0]))
    out = degradation(gt, depth, generator)
    return {**data, 'gt': gt, 'lq': out['lq'], 'kernel': out['kernel'], 'depth': out['depth'],
            'noise_level': out['noise_level']}
