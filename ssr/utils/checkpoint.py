"""Checkpoint I/O: atomic writes and safe, strict reads of BasicSR-style ``.pth`` files."""
from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

CONTAINER_KEYS = ('params_ema', 'params', 'state_dict', 'model')


def latest_state(training_states: str) -> str | None:
    """Path of the ``<iter>.state`` with the largest iteration in a folder, or ``None``."""
    if not os.path.isdir(training_states):
        return None
    iters = [int(m.group(1)) for f in os.listdir(training_states) if (m := re.fullmatch(r'(\d+)\.state', f))]
    return os.path.join(training_states, f'{max(iters)}.state') if iters else None


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    A process killed mid-write leaves at most a stray ``.tmp`` file, never a truncated checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a checkpoint is as readable as any other output
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safe_torch_load(path: str | os.PathLike):
    """``torch.load(path, map_location='cpu', weights_only=True)`` with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        from ssr.utils.paths import root_hint

        raise FileNotFoundError(f'checkpoint {str(path)!r} does not exist{root_hint()}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the path and what to try
        raise RuntimeError(f'cannot read checkpoint {str(path)!r} with weights_only=True ({e}); a truncated or '
                           'non-tensor pickle cannot be loaded safely: re-save it as a plain state_dict') from e


def read_state_dict(path: str | os.PathLike, param_key: str | None = 'params') -> tuple[dict, str | None]:
    """Read a state_dict from a BasicSR checkpoint (``{'params', 'params_ema'}``) or a raw state_dict.

    Args:
        path: checkpoint file.
        param_key: preferred container key; falls back to ``'params'`` when ``'params_ema'`` is absent, and to the
            raw dict when the file holds no container key at all. ``None`` takes the file's top level.

    Returns:
        The state_dict with any ``module.`` prefix stripped, and the container key actually used.
    """
    obj = safe_torch_load(path)
    if not isinstance(obj, Mapping):
        raise ValueError(f'checkpoint {str(path)!r} holds a {type(obj).__name__}, not a state_dict')
    used = None
    if param_key is not None:
        if param_key in obj:
            used = param_key
        elif param_key == 'params_ema' and 'params' in obj:
            used = 'params'
        elif any(k in obj for k in CONTAINER_KEYS):
            found = [k for k in CONTAINER_KEYS if k in obj]
            raise KeyError(f'checkpoint {str(path)!r} has no {param_key!r}; it holds {found}')
    state = obj[used] if used else obj
    return {k.removeprefix('module.'): v for k, v in state.items()}, used


def _first(keys, count: int = 3) -> str:
    keys = sorted(keys)
    return ', '.join(repr(k) for k in keys[:count]) + (', ...' if len(keys) > count else '')


def load_state_dict_strict(net: nn.Module, state: Mapping[str, torch.Tensor], source: str, strict: bool = True):
    """Load ``state`` into ``net``.

    With ``strict``, missing, unexpected and wrong-shape keys raise together. Without it, the entries whose key and
    shape match are loaded, the counts of loaded / missing / unexpected / wrong-shape keys are logged (logger
    ``basicsr``), and a load that would match no key at all raises instead of silently loading nothing.

    Args:
        net: the network.
        state: the state_dict to load.
        source: where ``state`` comes from (a file name), for the messages.
        strict: see above.

    Returns:
        ``net.load_state_dict``'s result (missing and unexpected keys).

    Raises:
        RuntimeError: with ``strict``, on any mismatch; without it, when no key of ``state`` matches the network.
    """
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(f'{k}: checkpoint {tuple(state[k].shape)} vs network {tuple(own[k].shape)}'
                         for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    name = net.__class__.__name__
    if strict and (missing or unexpected or wrong_shape):
        lines = [f'{source} does not match {name}:']
        for title, keys in (('missing', missing), ('unexpected', unexpected), ('wrong shape', wrong_shape)):
            if keys:
                shown = ', '.join(keys[:20]) + (f' ... ({len(keys)} in all)' if len(keys) > 20 else '')
                lines.append(f'  {title}: {shown}')
        raise RuntimeError('\n'.join(lines))
    if not strict:
        state = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
        if own and not state:
            raise RuntimeError(f'{source} matches none of the {len(own)} keys of {name} (non-strict load): the network '
                               f'expects keys like {_first(own)}, the file holds {_first(unexpected) or "no tensors"}'
                               f'{f" ({len(wrong_shape)} of them with the wrong shape)" if wrong_shape else ""}; '
                               f'check the key prefix and the param key, or convert the file')
        logging.getLogger('basicsr').info(
            f'Non-strict load of {source} into {name}: {len(state)} keys loaded, {len(missing)} missing, '
            f'{len(unexpected)} unexpected, {len(wrong_shape)} with the wrong shape (skipped)')
    return net.load_state_dict(state, strict=strict)
