"""Option files: ``_base_`` inheritance, validation with errors that name the key and the file, and parsing.

An option file is BasicSR YAML. It may start with ``_base_: path/to/base.yml`` (or a list of them, merged left to
right; paths relative to the file that names them). The child is merged into its bases key by key; a mapping that
holds ``_delete_: true`` replaces the base's mapping instead of merging into it (``key: {_delete_: true}`` alone
removes the inherited key, e.g. a network the child does not use). mmengine's ``Config`` offers the
same, but it turns the tree into its own ``ConfigDict`` and re-parses YAML without BasicSR's ordered loader, so the
twenty lines here are kept instead of a dependency.
"""
from __future__ import annotations

import argparse
import difflib
import inspect
import os
import random
import re
import sys
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import yaml

BASE_KEY = '_base_'
DELETE_KEY = '_delete_'
SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
PATH_PREFIXES = ('dataroot', 'meta_info', 'pretrain_network', 'resume_state')
PATH_SUFFIXES = ('_path', '_file', '_dir', '_folder')
# keys each validated section knows (BasicSR 1.4.2's and ssr's); network_*, optim_*, *_opt and the path prefixes
# below are open families
TOP_KEYS = ('name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'path', 'train', 'val', 'logger',
            'dist_params', 'find_unused_parameters', 'cudnn_benchmark', 'svkr', 'conditions', 'diffusion', 'sampler',
            'first_stage', 'depth_input', 'degradation', 'synthesis', 'tile', 'crop_border', 'pca_matrix_path',
            # set by the pipelines themselves
            'is_train', 'dist', 'rank', 'world_size', 'auto_resume', 'root_path', 'resume_position')
# top-level keys only some models read: anywhere else they would be silently ignored
MODEL_TOP_KEYS = {'pca_matrix_path': ('IKCModel',)}
SECTION_KEYS = {
    'train': ('ema_decay', 'scheduler', 'total_iter', 'warmup_iter', 'net_d_iters', 'net_d_init_iters', 'bf16',
              'depth_dropout', 'grad_clip', 'kernel_noise', 'reg_weights', 'trainable_prefixes', 'degradation',
              'synthesis', 'pca_fit'),
    'val': ('val_freq', 'save_img', 'suffix', 'metrics', 'pbar', 'num_val_samples', 'center_frame_only', 'flip_seq'),
    'logger': ('print_freq', 'save_checkpoint_freq', 'use_tb_logger', 'wandb'),
    'path': ('resume_state', 'ignore_resume_networks', 'experiments_root', 'models', 'training_states', 'log',
             'visualization', 'results_root'),
}
PATH_FAMILIES = ('pretrain_network_', 'param_key_', 'strict_load_')
# keys of a datasets.* block that BasicSR itself reads (options parser, build_dataset, build_dataloader, prefetchers)
LOADER_KEYS = ('name', 'type', 'phase', 'scale', 'use_shuffle', 'num_worker_per_gpu', 'batch_size_per_gpu',
               'dataset_enlarge_ratio', 'prefetch_mode', 'num_prefetch_queue', 'pin_memory', 'persistent_workers')
# keys of a datasets.* block that ssr's models read (on-device synthesis: ssr.models.sv_synthesis)
MODEL_DATASET_KEYS = ('synthesis', 'degradation')
# the option keys of BasicSR 1.4.2's image datasets that ssr's files and the MMSR translation use (read off their
# __init__ / __getitem__); BasicSR's other datasets are not checked
BASICSR_DATASET_KEYS = {
    'PairedImageDataset': ('dataroot_gt', 'dataroot_lq', 'meta_info_file', 'io_backend', 'filename_tmpl', 'gt_size',
                           'use_hflip', 'use_rot', 'color', 'mean', 'std', 'scale'),
    'SingleImageDataset': ('dataroot_lq', 'meta_info_file', 'io_backend', 'color', 'mean', 'std', 'scale'),
}
# keys a val.metrics.* block may give any metric (BasicSR passes one block's keys to the function as keywords)
COMMON_METRIC_KEYS = ('type', 'better', 'crop_border', 'test_y_channel', 'input_order')


class OptionError(ValueError):
    """A bad option file: the message names the file and the dotted key."""

    def __init__(self, file: str | os.PathLike, key: str, message: str):
        super().__init__(f'{file}: {key}: {message}')
        self.file, self.key = str(file), key


# ----------------------------------------------------------------------------------------------------------------
# loading with _base_
def _ordered_loader():
    from basicsr.utils.options import ordered_yaml

    return ordered_yaml()[0]


def _merge(base: dict, child: Mapping) -> dict:
    out = OrderedDict(base)
    for key, value in child.items():
        if isinstance(value, Mapping) and value.get(DELETE_KEY) and len(value) == 1:
            out.pop(key, None)
        elif isinstance(value, Mapping) and value.get(DELETE_KEY):
            out[key] = OrderedDict((k, v) for k, v in value.items() if k != DELETE_KEY)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: str | os.PathLike, _chain: tuple[Path, ...] = ()) -> OrderedDict:
    """Read an option file, resolving ``_base_`` recursively.

    Raises:
        FileNotFoundError: the file or one of its bases does not exist (the message names which file named it).
        OptionError: the YAML does not parse, is not a mapping, or the ``_base_`` chain is circular.
    """
    path = Path(path).resolve()
    if path in _chain:
        raise OptionError(_chain[-1], BASE_KEY, f'circular inheritance: {" -> ".join(map(str, _chain + (path,)))}')
    if not path.is_file():
        named_by = f' (named in {_chain[-1]})' if _chain else ''
        from ssr.utils.paths import root_hint

        raise FileNotFoundError(f'option file {str(path)!r} does not exist{named_by}{root_hint()}')
    try:
        with open(path, encoding='utf-8') as f:
            opt = yaml.load(f, Loader=_ordered_loader())
    except yaml.YAMLError as e:
        raise OptionError(path, '<yaml>', f'not valid YAML: {e}') from e
    if not isinstance(opt, Mapping):
        raise OptionError(path, '<root>', f'the file must hold a mapping of options, not {type(opt).__name__}')
    bases = opt.pop(BASE_KEY, None)
    if bases is None:
        return OrderedDict(opt)
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise OptionError(path, BASE_KEY, f'must be a path or a list of paths, not {bases!r}')
    merged: dict = OrderedDict()
    for base in bases:
        merged = _merge(merged, load_yaml(path.parent / base, _chain + (path,)))
    return _merge(merged, opt)


def resolve_paths(opt: dict, root: Path) -> dict:
    """Make relative path-valued options (``dataroot*``, ``pretrain_network*``, ``*_path`` ...) root-relative."""
    for key, value in opt.items():
        if isinstance(value, dict):
            resolve_paths(value, root)
        elif isinstance(value, str) and (key.startswith(PATH_PREFIXES) or key.endswith(PATH_SUFFIXES)):
            value = os.path.expanduser(value)
            opt[key] = value if os.path.isabs(value) else str(root / value)
    return opt


# ----------------------------------------------------------------------------------------------------------------
# validation
def closest_first(name: str, choices) -> list[str]:
    """``choices`` sorted with the closest matches to ``name`` first."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=len(choices), cutoff=0.4)
    return close + [c for c in choices if c not in close]


def _check_type(file, key: str, value, expected) -> None:
    if isinstance(expected, tuple) and any(isinstance(e, str) for e in expected):
        allowed = tuple(e for e in expected if not isinstance(e, str))
        words = tuple(e for e in expected if isinstance(e, str))
        if value in words or (allowed and isinstance(value, allowed) and not isinstance(value, bool)):
            return
        raise OptionError(file, key, f'expected one of {words} or {[t.__name__ for t in allowed]}, got {value!r}')
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if expected is int and isinstance(value, bool):
        raise OptionError(file, key, f'expected int, got bool {value!r}')
    if not isinstance(value, expected):
        name = expected.__name__ if isinstance(expected, type) else '/'.join(t.__name__ for t in expected)
        hint = ' (write floats like !!float 2e-4)' if expected in (float, int) and isinstance(value, str) else ''
        raise OptionError(file, key, f'expected {name}, got {type(value).__name__} {value!r}{hint}')


def _require(file, opt: Mapping, prefix: str, key: str, expected) -> None:
    dotted = f'{prefix}.{key}' if prefix else key
    if key not in opt or opt[key] is None:
        raise OptionError(file, dotted, 'required option is missing')
    _check_type(file, dotted, opt[key], expected)


def _check_registered(file, key: str, name, registry, what: str) -> None:
    if not isinstance(name, str):
        raise OptionError(file, key, f'expected a {what} name (str), got {name!r}')
    if name in registry:  # a lazy registry answers from its index, without importing every registering module
        return
    names = [n for n, _ in registry] if not isinstance(registry, (list, tuple)) else list(registry)
    if name not in names:
        raise OptionError(file, key, f'{name!r} is not a registered {what}; registered (closest first): '
                          f'{", ".join(closest_first(name, names))}')


def _check_block_keys(file, key: str, block: Mapping, known: tuple[str, ...]) -> None:
    """Every key of ``block`` (the option block at dotted ``key``) in ``known``, else the closest known ones."""
    for name in block:
        if name not in known:
            raise OptionError(file, f'{key}.{name}', f'unknown key; closest known: '
                              f'{", ".join(closest_first(name, known)[:3])}')


def _check_arch_kwargs(file, key: str, net_opt: Mapping, registry) -> None:
    cls = registry.get(net_opt['type'])
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n in params if n != 'self']
    for arg in net_opt:
        if arg != 'type' and arg not in accepted:
            raise OptionError(file, f'{key}.{arg}', f'{net_opt["type"]} takes no option {arg!r}; it accepts '
                              f'{", ".join(closest_first(arg, accepted))}')
    _check_arch_types(file, key, net_opt, params)
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in net_opt]
    if missing:
        raise OptionError(file, f'{key}.{missing[0]}', f'{net_opt["type"]} requires option {missing[0]!r}')


def dataset_phase(key: str) -> str:
    """``train`` / ``val`` / ``test`` of a ``datasets`` key: ``test_1``, ``test1`` (BasicSR accepts both), ``val``."""
    m = re.match(r'(train|val|test)(?:_\w+|\d+)?$', str(key))
    return m.group(1) if m else str(key).split('_')[0]


def _check_known_keys(file, opt: Mapping) -> None:
    """Unknown keys at the top level and in ``train`` / ``val`` / ``logger`` / ``path``, closest known key first."""
    networks = [k for k in opt if k.startswith('network_')]
    for key in opt:
        if key.lower().startswith('network_') and key != key.lower():
            raise OptionError(file, key, f'network keys are lower case in BasicSR / ssr: write {key.lower()!r} '
                              '(MMSR-style files such as MANet / DCLS spell it network_G)')
        if key not in TOP_KEYS and not key.startswith('network_'):
            raise OptionError(file, key, f'unknown key; closest known: '
                              f'{", ".join(closest_first(key, TOP_KEYS + tuple(networks))[:3])}')
        if key in MODEL_TOP_KEYS and opt.get('model_type') not in MODEL_TOP_KEYS[key]:
            raise OptionError(file, key, f'only {" / ".join(MODEL_TOP_KEYS[key])} reads it, not model_type '
                              f'{opt.get("model_type")!r}; remove it')
    for section, known in SECTION_KEYS.items():
        block = opt.get(section)
        if not isinstance(block, Mapping):
            continue
        for key in block:
            if key in known:
                continue
            if section == 'train' and (key.startswith('optim_') or key.endswith('_opt')):
                continue
            if section == 'path' and key.startswith(PATH_FAMILIES):
                suffix = key.split('_')[-1]
                if f'network_{suffix}' in opt or key.startswith('param_key_') or key.startswith('strict_load_'):
                    continue
                raise OptionError(file, f'path.{key}', f'there is no network_{suffix} in this file; networks: '
                                  f'{", ".join(networks) or "none"}')
            families = {'train': ('optim_g', 'pixel_opt'), 'path': ('pretrain_network_g', 'param_key_g',
                                                                    'strict_load_g')}.get(section, ())
            raise OptionError(file, f'{section}.{key}', f'unknown key; closest known: '
                              f'{", ".join(closest_first(key, known + families)[:3])}')


def _check_scheduler(file, train: Mapping) -> None:
    """A scheduler that would crash (or stop scheduling) before ``total_iter``: BasicSR's cosine restarts index
    past the end of ``periods`` once ``total_iter`` exceeds their sum."""
    sched = train.get('scheduler')
    if not isinstance(sched, Mapping) or sched.get('type') != 'CosineAnnealingRestartLR':
        return
    periods = sched.get('periods')
    if not isinstance(periods, (list, tuple)) or not periods:
        raise OptionError(file, 'train.scheduler.periods', 'CosineAnnealingRestartLR needs a list of periods')
    weights = sched.get('restart_weights', [1])
    if len(weights) != len(periods):
        raise OptionError(file, 'train.scheduler.restart_weights', f'{len(weights)} weights for {len(periods)} '
                          'periods: give one restart weight per period')
    total = train.get('total_iter')
    if isinstance(total, (int, float)) and sum(periods) < total:
        raise OptionError(file, 'train.scheduler.periods', f'the periods sum to {sum(periods)} < train.total_iter '
                          f'{total:g}: training would crash at iteration {sum(periods) + 1}; make the periods add '
                          'up to total_iter')


def _check_cross(file, opt: Mapping) -> None:
    """The top-level ``scale`` against every network's, and the networks' ``kernel_size`` against the training
    degradation's (both otherwise crash after the first iteration / image)."""
    nets = {k: v for k, v in opt.items() if k.startswith('network_') and isinstance(v, Mapping)}
    scale = opt.get('scale')
    for key, net in nets.items():
        for arg in ('scale', 'upscale'):
            if isinstance(scale, int) and isinstance(net.get(arg), int) and net[arg] != scale:
                raise OptionError(file, f'{key}.{arg}', f'{net[arg]} differs from the top-level scale {scale}; '
                                  'make them equal')
    for phase, ds in (opt.get('datasets') or {}).items():
        deg = ds.get('degradation') if isinstance(ds, Mapping) else None
        k = deg.get('kernel_size') if isinstance(deg, Mapping) else None
        for key, net in nets.items():
            if isinstance(k, int) and isinstance(net.get('kernel_size'), int) and net['kernel_size'] != k:
                raise OptionError(file, f'{key}.kernel_size', f'{net["kernel_size"]} differs from '
                                  f'datasets.{phase}.degradation.kernel_size {k}; make them equal')


def _check_arch_types(file, key: str, net_opt: Mapping, params) -> None:
    """Ints / floats / bools of a network's options against its constructor's annotations."""
    expected = {'int': int, 'float': float, 'bool': bool}
    for arg, value in net_opt.items():
        if arg == 'type' or arg not in params:
            continue
        ann = params[arg].annotation
        ann = ann if isinstance(ann, str) else getattr(ann, '__name__', '')
        want = expected.get(ann)
        if want is None or value is None:
            continue
        ok = (isinstance(value, bool) if want is bool else
              isinstance(value, want) and not isinstance(value, bool) or (want is float and isinstance(value, int)
                                                                          and not isinstance(value, bool)))
        if not ok:
            raise OptionError(file, f'{key}.{arg}', f'{net_opt["type"]} expects {ann} for {arg!r}, got '
                              f'{type(value).__name__} {value!r}')


def validate_options(opt: Mapping, file: str | os.PathLike, is_train: bool) -> None:
    """Check an option tree (after ``_base_`` merging) against the registries and the expected types.

    Raises:
        OptionError: naming the file, the dotted key and what is wrong (for an unknown ``type``: the registered
            names, closest first).
    """
    import torch
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

    _check_known_keys(file, opt)
    _require(file, opt, '', 'name', str)
    _require(file, opt, '', 'model_type', str)
    _check_registered(file, 'model_type', opt['model_type'], MODEL_REGISTRY, 'model')
    _require(file, opt, '', 'num_gpu', (int, 'auto'))
    for key, expected in (('scale', int), ('manual_seed', int)):
        if opt.get(key) is not None:
            _check_type(file, key, opt[key], expected)
    _require(file, opt, '', 'datasets', dict)
    _require(file, opt, '', 'path', dict)

    for phase, ds in opt['datasets'].items():
        key = f'datasets.{phase}'
        if dataset_phase(phase) not in ('train', 'val', 'test'):
            raise OptionError(file, key, 'dataset phase must be train, val[_N] or test[_N] (test1 as in BasicSR)')
        _check_type(file, key, ds, dict)
        _require(file, ds, key, 'name', str)
        _require(file, ds, key, 'type', str)
        _check_registered(file, f'{key}.type', ds['type'], DATASET_REGISTRY, 'dataset')
        known = getattr(DATASET_REGISTRY.get(ds['type']), 'OPTION_KEYS', None)  # ssr's datasets declare theirs
        known = BASICSR_DATASET_KEYS.get(ds['type']) if known is None else known
        if known is not None:
            _check_block_keys(file, key, ds, tuple(known) + LOADER_KEYS + MODEL_DATASET_KEYS)
        if phase == 'train':
            _require(file, ds, key, 'batch_size_per_gpu', int)
            _require(file, ds, key, 'num_worker_per_gpu', int)

    networks = [k for k in opt if k.startswith('network_')]
    for net in networks:
        _check_type(file, net, opt[net], dict)
        _require(file, opt[net], net, 'type', str)
        _check_registered(file, f'{net}.type', opt[net]['type'], ARCH_REGISTRY, 'arch')
        _check_arch_kwargs(file, net, opt[net], ARCH_REGISTRY)
        # networks that read their own files: MiDaSDepth's weights_path, IKCNet's three parts (OWN_WEIGHT_KEYS)
        own_keys = getattr(ARCH_REGISTRY.get(opt[net]['type']), 'OWN_WEIGHT_KEYS', ('weights_path',))
        missing_own = [k for k in own_keys if not opt[net].get(k)]
        if not is_train and not opt['path'].get(f'pretrain_{net}') and missing_own:
            if len(missing_own) < len(own_keys):
                raise OptionError(file, f'{net}.{missing_own[0]}', f'testing {net} ({opt[net]["type"]}) needs the '
                                  f'weights of every part: {", ".join(missing_own)} missing')
            raise OptionError(file, f'path.pretrain_{net}', f'testing {net} ({opt[net]["type"]}) needs its weights; '
                              'a test without them would silently run a randomly initialised network')

    _check_cross(file, opt)
    if is_train:
        if 'train' not in [p.split('_')[0] for p in opt['datasets']]:
            raise OptionError(file, 'datasets.train', 'a training option file needs a train dataset')
        _require(file, opt, '', 'train', dict)
        _require(file, opt, '', 'logger', dict)
        # BasicSR files write counts as `!!float 5e3`: accept whole floats
        for section, key in (('train', 'total_iter'), ('logger', 'print_freq'), ('logger', 'save_checkpoint_freq')):
            _require(file, opt[section], section, key, (int, float))
            if not float(opt[section][key]).is_integer() or opt[section][key] < 1:
                raise OptionError(file, f'{section}.{key}', f'expected a whole number >= 1, got {opt[section][key]!r}')
        _check_scheduler(file, opt['train'])
        optimizers = sorted(n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                            and issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != 'Optimizer')
        for key, value in opt['train'].items():
            if key.startswith('optim_'):
                _require(file, value, f'train.{key}', 'type', str)
                _check_registered(file, f'train.{key}.type', value['type'], optimizers, 'torch.optim optimizer')
                if 'lr' in value:
                    _check_type(file, f'train.{key}.lr', value['lr'], float)
            elif key == 'scheduler':
                _require(file, value, 'train.scheduler', 'type', str)
                _check_registered(file, 'train.scheduler.type', value['type'], SCHEDULERS, 'scheduler')
            elif key.endswith('_opt') and isinstance(value, dict):
                _require(file, value, f'train.{key}', 'type', str)
                _check_registered(file, f'train.{key}.type', value['type'], LOSS_REGISTRY, 'loss')
    if opt.get('val') is not None:
        val = opt['val']
        _check_type(file, 'val', val, dict)
        if is_train and 'val_freq' in val:
            _check_type(file, 'val.val_freq', val['val_freq'], (int, float))
        for name, metric in (val.get('metrics') or {}).items():
            _require(file, metric, f'val.metrics.{name}', 'type', str)
            _check_registered(file, f'val.metrics.{name}.type', metric['type'], METRIC_REGISTRY, 'metric')
            params = inspect.signature(METRIC_REGISTRY.get(metric['type'])).parameters
            named = tuple(n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                          and n not in ('img', 'img2'))
            _check_block_keys(file, f'val.metrics.{name}', metric, named + COMMON_METRIC_KEYS)


def load_options(path: str | os.PathLike, is_train: bool, root: Path | None = None) -> OrderedDict:
    """Load (with ``_base_``), validate and make paths root-relative; no directories are created."""
    from ssr.utils.paths import repo_root

    from ssr.utils.mmsr_options import is_mmsr, translate_mmsr

    opt = load_yaml(path)
    if is_mmsr(opt):
        opt, notes = translate_mmsr(opt, path, is_train)
        print(f'[ssr] {path}: MMSR-style option file (MANet / DCLS layout), translated: ' + '; '.join(notes),
              file=sys.stderr)
    validate_options(opt, path, is_train)
    return resolve_paths(opt, root or repo_root())


def inference_options(path: str | os.PathLike, device: str = 'cpu') -> OrderedDict:
    """A test option file ready for ``build_model`` outside BasicSR's pipeline (scripts, notebooks).

    ``path`` is looked up as given, then under the repository root; the settings BasicSR's test pipeline adds
    (``dist``, ``rank``, ``world_size``, ``is_train``, ``num_gpu`` from ``device``) are filled in.

    Raises:
        FileNotFoundError: the option file does not exist.
        ValueError: ``device`` is neither ``cpu`` nor ``cuda``.
    """
    from ssr.utils.paths import repo_root, root_hint

    if device not in ('cpu', 'cuda'):
        raise ValueError(f'device {device!r} not in (cpu, cuda)')
    found = Path(path)
    if not found.is_file() and not found.is_absolute() and (repo_root() / found).is_file():
        found = repo_root() / found
    if not found.is_file():
        raise FileNotFoundError(f'option file {str(path)!r} does not exist{root_hint()}')
    opt = load_options(found, is_train=False)
    opt.update(dist=False, rank=0, world_size=1, is_train=False, num_gpu=1 if device == 'cuda' else 0)
    return opt


# ----------------------------------------------------------------------------------------------------------------
# command line (replaces basicsr.utils.options.parse_options)
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train or test an ssr / BasicSR model from an option file.')
    parser.add_argument('-opt', '--opt', dest='opt', required=True, help='path to the option YAML file')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher (default: none = one process)')
    parser.add_argument('--auto_resume', '--auto-resume', action='store_true',
                        help='resume from the latest training state of this experiment, if any')
    parser.add_argument('--debug', action='store_true', help='debug mode: prefix the name with debug_')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=int(os.environ.get('LOCAL_RANK', 0)),
                        help='set by torch launchers (default: $LOCAL_RANK or 0)')
    return parser


def init_dist(launcher: str, backend: str | None = None, **kwargs) -> None:
    """Initialise torch.distributed: NCCL with CUDA, gloo on CPU; ``kwargs`` (e.g. ``port``) go to slurm."""
    import torch
    import torch.distributed as dist

    if launcher == 'slurm':
        from basicsr.utils.dist_util import init_dist as basicsr_init_dist

        basicsr_init_dist('slurm', backend=backend or 'nccl', **kwargs)
        return
    if launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} not in (none, pytorch, slurm)')
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    dist.init_process_group(backend=backend or ('nccl' if torch.cuda.is_available() else 'gloo'))


def parse_options(root_path: str, is_train: bool = True, argv: list[str] | None = None):
    """Drop-in for ``basicsr.utils.options.parse_options`` with validation, ``_base_`` and root-relative paths.

    Accepts ``-opt``/``--opt`` and ``--local_rank``/``--local-rank``; BasicSR's ``--force_yml`` (an ``exec`` of
    command-line text) is not offered: use a small option file with ``_base_`` instead.
    """
    import torch
    from basicsr.utils import set_random_seed
    from basicsr.utils.dist_util import get_dist_info

    args = build_parser().parse_args(argv)
    root = Path(root_path)
    opt = load_options(args.opt, is_train, root)

    opt['dist'] = args.launcher != 'none'
    if opt['dist']:
        init_dist(args.launcher, **(opt.get('dist_params') or {}))
    opt['rank'], opt['world_size'] = get_dist_info()

    if opt.get('manual_seed') is None:
        opt['manual_seed'] = random.randint(1, 10000)
    set_random_seed(opt['manual_seed'] + opt['rank'])

    opt['auto_resume'] = args.auto_resume
    opt['is_train'] = is_train
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    if opt['num_gpu'] == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()
    if opt['num_gpu'] > 0 and not torch.cuda.is_available():
        raise OptionError(args.opt, 'num_gpu', f'{opt["num_gpu"]} GPUs asked for but CUDA is not available; '
                          'set num_gpu: 0 to run on the CPU')

    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = dataset_phase(phase)
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
    opt['path'].setdefault('resume_state', None)

    base = root / ('experiments' if is_train else 'results') / opt['name']
    opt['path'].update(log=str(base), visualization=str(base / 'visualization'))
    if is_train:
        opt['path'].update(experiments_root=str(base), models=str(base / 'models'),
                           training_states=str(base / 'training_states'))
        if 'debug' in opt['name']:
            if opt.get('val'):
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        opt['path']['results_root'] = str(base)
    return opt, args
