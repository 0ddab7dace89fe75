"""Seeded random crops with flips and 90-degree rotations, shared by the training datasets."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample, distinct for each (seed, epoch, index): any sample can be rebuilt, and a resumed
    run sees the same data."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def random_crop_augment(tensors: list[Tensor | None], size: int, g: torch.Generator, hflip: bool, rot: bool,
                        source: str) -> list[Tensor | None]:
    """The same random ``size``^2 crop, horizontal flip (p = 0.5, with ``hflip``) and rotation by k * 90 degrees
    (k uniform in 0..3, with ``rot``) of every (C, H, W) tensor (``None`` entries pass through).

    Draws, in this order: top, left, then the flip and rotation draws (always drawn, so the stream does not depend on
    the flags).

    Raises:
        ValueError: the first tensor is smaller than ``size`` (the message names ``source``).
    """
    _, h, w = tensors[0].shape
    if h < size or w < size:
        raise ValueError(f'{source}: image {h}x{w} is smaller than gt_size {size}')
    top = int(torch.randint(0, h - size + 1, (1,), generator=g))
    left = int(torch.randint(0, w - size + 1, (1,), generator=g))
    flip, turn = torch.rand(2, generator=g).tolist()
    out = []
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        t = t[:, top:top + size, left:left + size]
        if hflip and flip < 0.5:
            t = t.flip(-1)
        if rot:
            t = torch.rot90(t, int(turn * 4) % 4, dims=(-2, -1))
        out.append(t.contiguous())
    return out
