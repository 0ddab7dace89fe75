"""Compatibility fixes applied to basicsr 1.4.2 by ``import ssr``.

basicsr 1.4.2 predates torch 2 and torchvision 0.17+. Each fix below is a small, named function so a test can
check it in isolation; :func:`apply` runs all of them once, before the first ``import basicsr``.

Fixes:
    - ``torchvision.transforms.functional_tensor`` was removed in torchvision 0.17; basicsr's
      ``data/degradations.py`` imports ``rgb_to_grayscale`` from it. An alias module points to the new location.
    - ``BaseModel.get_optimizer`` only knows ``Adam``; any ``torch.optim`` optimizer (AdamW, SGD, ...) is accepted.
    - ``BaseModel.model_to_device`` wraps DDP with ``device_ids=[torch.cuda.current_device()]``; on CPU (gloo) DDP
      must get no device ids.
    - ``BaseModel.save_network`` / ``save_training_state`` write in place (a kill mid-write leaves a truncated
      ``.pth``) and swallow errors; they now write atomically and raise. Training states also carry the RNG states,
      so a resumed run continues with the same random stream.
    - ``BaseModel.load_network`` unpickles arbitrary objects; it now loads with ``weights_only=True`` and reports
      missing / unexpected keys as an error when ``strict``.
    - ``BaseModel.resume_training`` also restores the RNG states saved above.
    - ``paths_from_lmdb`` / ``paired_paths_from_lmdb`` keep the text before the FIRST dot of each ``meta_info.txt``
      entry, so the key ``0001.s001`` reads as ``0001``; they now strip only the final extension.
"""
from __future__ import annotations

import importlib
import sys
import types

_APPLIED = False


def alias_functional_tensor() -> None:
    """Make ``torchvision.transforms.functional_tensor`` importable on torchvision >= 0.17."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional as tv_functional

    alias = types.ModuleType(name)
    alias.__doc__ = 'Alias created by ssr.compat: the module was folded into torchvision.transforms.functional.'
    alias.rgb_to_grayscale = tv_functional.rgb_to_grayscale
    sys.modules[name] = alias


def get_optimizer(self, optim_type: str, params, lr: float, **kwargs):
    """``BaseModel.get_optimizer`` accepting every optimizer class in ``torch.optim``."""
    import torch

    names = sorted(n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                   and issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != 'Optimizer')
    if optim_type not in names:
        raise ValueError(f'train.optim_*.type {optim_type!r} is not a torch.optim optimizer; choose one of {names}')
    return getattr(torch.optim, optim_type)(params, lr, **kwargs)


def model_to_device(self, net):
    """``BaseModel.model_to_device`` that also wraps DDP on CPU (gloo backend)."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    net = net.to(self.device)
    if self.opt['dist']:
        find_unused = self.opt.get('find_unused_parameters', False)
        device_ids = [self.device.index or 0] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused)
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def save_network(self, net, net_label: str, current_iter: int, param_key='params') -> None:
    """``BaseModel.save_network`` writing ``{param_key: state_dict}`` atomically (rank 0 only)."""
    import os

    from basicsr.utils.dist_util import get_dist_info

    from ssr.utils.checkpoint import atomic_torch_save

    if get_dist_info()[0] != 0:
        return
    tag = 'latest' if current_iter == -1 else current_iter
    save_path = os.path.join(self.opt['path']['models'], f'{net_label}_{tag}.pth')
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(keys):
        raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys ({keys})')
    save_dict = {}
    for net_, key in zip(nets, keys):
        state = self.get_bare_model(net_).state_dict()
        save_dict[key] = {k.removeprefix('module.'): v.detach().cpu() for k, v in state.items()}
    atomic_torch_save(save_dict, save_path)


def save_training_state(self, epoch: int, current_iter: int) -> None:
    """``BaseModel.save_training_state`` writing atomically, with RNG states (rank 0 only)."""
    import os

    from basicsr.utils.dist_util import get_dist_info

    from ssr.utils.checkpoint import atomic_torch_save
    from ssr.utils.rng import capture_rng_state

    if current_iter == -1 or get_dist_info()[0] != 0:
        return
    state = {
        'epoch': epoch,
        'iter': current_iter,
        'optimizers': [o.state_dict() for o in self.optimizers],
        'schedulers': [s.state_dict() for s in self.schedulers],
        'rng': capture_rng_state(),
    }
    if getattr(self, 'net_g_ema', None) is not None:
        # basicsr reloads the EMA network from 'params' on resume (check_resume), which silently resets the EMA;
        # keeping it here lets resume_training restore it.
        state['net_g_ema'] = {k: v.detach().cpu() for k, v in self.net_g_ema.state_dict().items()}
    atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))


def resume_training(self, resume_state: dict) -> None:
    """``BaseModel.resume_training`` that also restores RNG states and the EMA network."""
    from ssr.utils.rng import restore_rng_state

    if len(resume_state['optimizers']) != len(self.optimizers):
        raise ValueError(f"resume state has {len(resume_state['optimizers'])} optimizers, the model "
                         f'{len(self.optimizers)}: the option file changed since the state was saved')
    if len(resume_state['schedulers']) != len(self.schedulers):
        raise ValueError(f"resume state has {len(resume_state['schedulers'])} schedulers, the model "
                         f'{len(self.schedulers)}: the option file changed since the state was saved')
    for optimizer, state in zip(self.optimizers, resume_state['optimizers']):
        optimizer.load_state_dict(state)
    for scheduler, state in zip(self.schedulers, resume_state['schedulers']):
        scheduler.load_state_dict(state)
    if 'net_g_ema' in resume_state and getattr(self, 'net_g_ema', None) is not None:
        self.net_g_ema.load_state_dict(resume_state['net_g_ema'])
    if 'rng' in resume_state:
        restore_rng_state(resume_state['rng'])


def load_network(self, net, load_path: str, strict: bool = True, param_key: str | None = 'params') -> None:
    """``BaseModel.load_network`` with ``weights_only=True`` and a strict key check that raises.

    A network may define ``adapt_state_dict(state) -> state`` to accept foreign layouts (official MANet / DCLS /
    MiDaS files, a plain RRDBNet checkpoint for NBSR's trunk); it is applied before the strict check.
    """
    from basicsr.utils import get_root_logger

    from ssr.utils.checkpoint import load_state_dict_strict, read_state_dict

    net = self.get_bare_model(net)
    state, used_key = read_state_dict(load_path, param_key)
    if hasattr(net, 'adapt_state_dict'):
        state = net.adapt_state_dict(state)
    get_root_logger().info(f'Loading {net.__class__.__name__} from {load_path}, param key: [{used_key}].')
    load_state_dict_strict(net, state, source=load_path, strict=strict)


def paths_from_lmdb(folder: str) -> list[str]:
    """``basicsr.data.data_util.paths_from_lmdb`` keeping dots inside keys."""
    from ssr.data.image_source import lmdb_keys

    if not folder.endswith('.lmdb'):
        raise ValueError(f'Folder {folder} should be in lmdb format.')
    return lmdb_keys(folder)


def paired_paths_from_lmdb(folders, keys):
    """``basicsr.data.data_util.paired_paths_from_lmdb`` keeping dots inside keys."""
    from ssr.data.image_source import lmdb_keys

    if len(folders) != 2 or len(keys) != 2:
        raise ValueError(f'folders and keys must hold two entries each, got {folders} and {keys}')
    (input_folder, gt_folder), (input_key, gt_key) = folders, keys
    for folder in folders:
        if not folder.endswith('.lmdb'):
            raise ValueError(f'{input_key} folder and {gt_key} folder should both be in lmdb formats, got {folder}')
    input_keys, gt_keys = lmdb_keys(input_folder), lmdb_keys(gt_folder)
    if sorted(input_keys) != sorted(gt_keys):
        raise ValueError(f'Keys in {input_key}_folder and {gt_key}_folder are different.')
    return [{f'{input_key}_path': key, f'{gt_key}_path': key} for key in sorted(input_keys)]


def _replace_everywhere(original, replacement) -> None:
    """Rebind ``original`` to ``replacement`` in every loaded basicsr module that imported it by name."""
    for module in list(sys.modules.values()):
        if getattr(module, '__name__', '').startswith('basicsr'):
            for attr, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attr, replacement)


def patch_basicsr() -> None:
    """Replace the basicsr 1.4.2 functions and methods listed in the module docstring."""
    import basicsr.data.data_util as data_util
    from basicsr.models.base_model import BaseModel

    _replace_everywhere(data_util.paths_from_lmdb, paths_from_lmdb)
    _replace_everywhere(data_util.paired_paths_from_lmdb, paired_paths_from_lmdb)

    BaseModel.get_optimizer = get_optimizer
    BaseModel.model_to_device = model_to_device
    BaseModel.save_network = save_network
    BaseModel.save_training_state = save_training_state
    BaseModel.resume_training = resume_training
    BaseModel.load_network = load_network


def apply() -> None:
    """Apply every fix once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    alias_functional_tensor()
    patch_basicsr()
    _APPLIED = True
