"""Stop any training run, BasicSR's models included, at the first non-finite loss or weight, before it is saved.

ssr's own models check their losses before each step (:func:`ssr.models.training_utils.check_finite`), but a finite
loss can still produce non-finite weights (an exploding step), and BasicSR's ``SRModel`` checks nothing: it trains on
NaN and saves it. :func:`guard_model` wraps one model *instance* (its class is left as written):

- after every ``optimize_parameters`` the logged losses (``model.log_dict``) must be finite;
- before every ``save`` every parameter and buffer of every network (``net_*`` attributes) must be finite, so no
  checkpoint or training state holding NaN / inf is ever written.

Either failure raises :class:`FloatingPointError` naming the iteration, the bad loss terms or tensors, and the last
training state on disk to resume from. ``ssr/train.py`` installs the guard on every model it builds.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ['guard_model', 'non_finite_tensors']


def non_finite_tensors(model) -> list[str]:
    """``'<net>.<tensor>'`` for every floating parameter / buffer of the model's ``net_*`` networks that holds a
    NaN or inf."""
    bad = []
    for attr, net in sorted(vars(model).items()):
        if not attr.startswith('net_') or not isinstance(net, nn.Module):
            continue
        for name, tensor in list(net.named_parameters()) + list(net.named_buffers()):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                bad.append(f'{attr}.{name.removeprefix("module.")}')
    return bad


def _last_state(opt: dict) -> str:
    from ssr.utils.checkpoint import latest_state

    path = latest_state((opt.get('path') or {}).get('training_states') or '')
    if path is None:
        return 'no training state was saved yet: restart the run'
    return f'the last good training state is {path} (--auto_resume)'


def guard_model(model, opt: dict):
    """Install the finite-loss and finite-weight checks on ``model`` (idempotent); returns ``model``."""
    if getattr(model, '_ssr_finite_guard', False):
        return model
    optimize, save = model.optimize_parameters, model.save

    def optimize_parameters(current_iter, *args, **kwargs):
        result = optimize(current_iter, *args, **kwargs)
        log = getattr(model, 'log_dict', None) or {}
        bad = {k: float(v) for k, v in log.items() if isinstance(v, (int, float)) and not math.isfinite(v)}
        if bad:
            raise FloatingPointError(f'non-finite loss at iteration {current_iter}: {bad}; {_last_state(opt)}, with '
                                     'a lower train.optim_g.lr or train.grad_clip')
        return result

    def guarded_save(epoch, current_iter, *args, **kwargs):
        bad = non_finite_tensors(model)
        if bad:
            where = 'the end of training' if current_iter == -1 else f'iteration {current_iter}'
            shown = ', '.join(bad[:3]) + (f' and {len(bad) - 3} more' if len(bad) > 3 else '')
            raise FloatingPointError(f'non-finite weights at {where} ({shown}); nothing was saved; '
                                     f'{_last_state(opt)}, with a lower learning rate or train.grad_clip')
        return save(epoch, current_iter, *args, **kwargs)

    model.optimize_parameters = optimize_parameters
    model.save = guarded_save
    model._ssr_finite_guard = True
    return model
