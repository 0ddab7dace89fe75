"""Lite weights: trained networks stored small enough for git, with a manifest of where each file came from.

A lite file is ``{'params': state_dict}`` written atomically. :func:`to_half` makes the whole-network form (floating
tensors in float16, integer buffers such as BatchNorm's ``num_batches_tracked`` kept);
:meth:`ssr.archs.nbsr_arch.NBSR.delta_state_dict` makes NBSR's SFT / PCA delta. Every write appends (or replaces) one
JSON line in ``<folder>/MANIFEST.jsonl``: file name, source checkpoint, number of tensors, bytes and sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from torch import Tensor

from ssr.utils.checkpoint import atomic_torch_save

MANIFEST_NAME = 'MANIFEST.jsonl'


def to_half(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with its floating tensors in float16 and the others (integer buffers) unchanged."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def write_lite_weights(state: dict[str, Tensor], output: str | os.PathLike, source: str | os.PathLike) -> dict:
    """Save ``{'params': state}`` to ``output`` atomically and record it in the folder's manifest.

    Args:
        state: the tensors to ship.
        output: the ``.pth`` to write (replaced if it exists; callers decide about overwriting).
        source: the checkpoint ``state`` was made from, recorded in the manifest.

    Returns:
        The manifest record: ``{'file', 'source', 'keys', 'bytes', 'sha256'}``.
    """
    output = Path(output)
    atomic_torch_save({'params': state}, output)
    data = output.read_bytes()
    record = {'file': output.name, 'source': str(source), 'keys': len(state), 'bytes': len(data),
              'sha256': hashlib.sha256(data).hexdigest()}
    manifest = output.parent / MANIFEST_NAME
    lines = manifest.read_text(encoding='utf-8').splitlines() if manifest.is_file() else []
    lines = [line for line in lines if line.strip() and json.loads(line).get('file') != record['file']]
    tmp = manifest.with_name(f'.{manifest.name}.tmp')
    tmp.write_text(''.join(f'{line}\n' for line in [*lines, json.dumps(record)]), encoding='utf-8')
    tmp.replace(manifest)
    return record
