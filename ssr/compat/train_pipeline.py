"""Exact, device-independent resumption for ``basicsr.train.train_pipeline``, and ssr's option parser.

basicsr 1.4.2 resumes only on CUDA (``torch.cuda.current_device()``), looks for training states relative to the
working directory, restarts the interrupted epoch from its first batch and forgets the RNG states, so a resumed run
sees other data than an uninterrupted one. :func:`apply` rebinds module-level names of ``basicsr.train`` (and the
option parser of ``basicsr.test``) so that both pipelines, run by ``ssr/train.py`` / ``ssr/test.py``, use:

    - :func:`~ssr.utils.options.parse_options`: ``_base_`` inheritance, validation, root-relative paths;
    - :func:`load_resume_state`: reads ``<root>/experiments/<name>/training_states`` on any device, with
      ``weights_only=True`` (the newest state: :func:`ssr.utils.checkpoint.latest_state`);
    - :class:`ResumableEnlargedSampler`: skips the batches the interrupted epoch already consumed and tells the
      dataset the epoch (datasets with ``set_epoch`` seed their samples from ``(seed, epoch, index)``);
    - a ``create_train_val_dataloader`` that computes the number of epochs from the batches the loader really yields
      (basicsr assumes ``ceil(samples / batch)`` although its loader drops the last partial batch, so small sets
      stopped early) and seeds every dataset from ``manual_seed``;
    - :func:`copy_opt_file`: writes the resolved options (``_base_`` merged) into the experiment folder;
    - a ``build_model`` that guards every model against non-finite losses and weights
      (:mod:`ssr.models.finite_guard`), BasicSR's ``SRModel`` included, and labels basicsr's validation after the
      training loop ``total_iter`` instead of ``total_iter + 1`` (skipping it when that iteration was validated).

The training state also carries the python / numpy / torch RNG states; that part is a method of ssr's models
(:meth:`ssr.models.base_model.SVBaseModel.save_training_state`), not a patch. Nothing here imports basicsr at module
level: :func:`apply` runs from the post-import hook of :func:`ssr.compat.apply`.
"""
from __future__ import annotations

import math
import os

from torch.utils.data import Sampler

RESUME_KEY = 'resume_position'


class ResumableEnlargedSampler(Sampler):
    """basicsr's ``EnlargedSampler`` that can skip the first ``skip`` indices of its next epoch and forwards the epoch.

    Same constructor as ``basicsr.data.data_sampler.EnlargedSampler`` (``basicsr.train`` builds it by that name);
    the index order is that sampler's, which it wraps.

    Args:
        dataset: the training set.
        num_replicas: world size.
        rank: rank of this process.
        ratio: ``dataset_enlarge_ratio``.
    """

    def __init__(self, dataset, num_replicas: int, rank: int, ratio: int = 1):
        from basicsr.data.data_sampler import EnlargedSampler

        self.sampler = EnlargedSampler(dataset, num_replicas, rank, ratio)
        self.dataset = dataset
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        if hasattr(self.dataset, 'set_epoch'):
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        indices = list(iter(self.sampler))
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])

    def __len__(self) -> int:
        return len(self.sampler) - self.skip


def load_resume_state(opt: dict):
    """Drop-in for ``basicsr.train.load_resume_state`` (CPU-safe, root-relative, ``weights_only``)."""
    from basicsr.utils.misc import check_resume

    from ssr.utils.checkpoint import latest_state, safe_torch_load

    path = latest_state(opt['path']['training_states']) if opt['auto_resume'] else opt['path'].get('resume_state')
    if not path:
        return None
    opt['path']['resume_state'] = path
    state = safe_torch_load(path)
    check_resume(opt, state['iter'])
    opt[RESUME_KEY] = {'epoch': state['epoch'], 'iter': state['iter']}
    _pending[0] = state  # create_train_val_dataloader sets its epoch once the loader's length is known
    return state


_pending: list = [None]  # the resume state load_resume_state returned, for the dataloader wrapper


def wrap_create_train_val_dataloader(original):
    """Wrap ``basicsr.train.create_train_val_dataloader`` to skip the consumed part of an interrupted epoch."""

    def create_train_val_dataloader(opt, logger):
        for phase, dataset_opt in opt['datasets'].items():
            dataset_opt.setdefault('seed', opt['manual_seed'])
        train_loader, train_sampler, val_loaders, total_epochs, total_iters = original(opt, logger)
        if train_loader is not None and len(train_loader):
            # basicsr counts ceil(samples / batch) iterations per epoch, but its loader drops the last partial
            # batch: with small sets training stopped early. Count the batches the loader really yields.
            total_epochs = math.ceil(total_iters / len(train_loader))
        result = (train_loader, train_sampler, val_loaders, total_epochs, total_iters)
        position = opt.get(RESUME_KEY)
        state, _pending[0] = _pending[0], None
        if position and isinstance(train_sampler, ResumableEnlargedSampler) and len(train_loader):
            # the next iteration, iter + 1, is batch iter % L of epoch iter // L: a state saved at the last batch
            # of an epoch resumes at the first batch of the next one (basicsr would replay the finished epoch)
            epoch, consumed = divmod(position['iter'], len(train_loader))
            if state is not None and state.get('iter') == position['iter'] and epoch != state['epoch']:
                if consumed == 0 and epoch == state['epoch'] + 1:
                    logger.info(f'Epoch {state["epoch"]} ended at iteration {position["iter"]}: resuming at the '
                                f'start of epoch {epoch}.')
                else:
                    logger.warning(f'The state says epoch {state["epoch"]}, but with {len(train_loader)} batches per '
                                   f'epoch iteration {position["iter"]} lies in epoch {epoch}: resuming there (did '
                                   'the training set or batch size change?).')
                state['epoch'] = position['epoch'] = epoch
            if consumed and epoch == position['epoch']:
                train_sampler.skip = consumed * train_loader.batch_size
                logger.info(f'Resuming inside epoch {epoch}: skipping its first {consumed} batches.')
        return result

    create_train_val_dataloader.ssr_wrapped = True
    return create_train_val_dataloader


def label_final_validation(model, opt: dict):
    """basicsr's validation after the training loop runs with the loop's counter, one past ``total_iter`` (its
    log says ``Best: ... @ <total_iter + 1> iter``), and repeats the last iteration's validation when ``val_freq``
    divides ``total_iter``. This relabels that call ``total_iter`` and skips it for a loader already validated at
    ``total_iter``; returns ``model``."""
    total = int((opt.get('train') or {}).get('total_iter') or 0)
    if not total or getattr(model, '_ssr_final_validation', False):
        return model
    validation, validated = model.validation, set()

    def labelled_validation(dataloader, current_iter, tb_logger, save_img=False):
        if current_iter == total + 1:  # the post-loop call
            current_iter = total
            if id(dataloader) in validated:
                return None
        if current_iter == total:
            validated.add(id(dataloader))
        return validation(dataloader, current_iter, tb_logger, save_img)

    model.validation = labelled_validation
    model._ssr_final_validation = True
    return model


def wrap_build_model(original):
    """Wrap ``basicsr.train.build_model``: every model it builds, BasicSR's too, stops at the first non-finite loss
    and never saves non-finite weights (:func:`ssr.models.finite_guard.guard_model`), and its validation after the
    training loop is labelled ``total_iter`` (:func:`label_final_validation`)."""

    def build_model(opt):
        from ssr.models.finite_guard import guard_model

        return label_final_validation(guard_model(original(opt), opt), opt)

    build_model.ssr_wrapped = True
    return build_model


def copy_opt_file(opt_file: str, experiments_root: str) -> None:
    """Write the resolved options (``_base_`` merged) and the command into the experiment folder (rank 0)."""
    import sys
    import time

    import yaml
    from basicsr.utils.dist_util import get_dist_info
    from basicsr.utils.options import ordered_yaml

    from ssr.utils.options import load_yaml

    if get_dist_info()[0] != 0:
        return
    os.makedirs(experiments_root, exist_ok=True)
    target = os.path.join(experiments_root, os.path.basename(opt_file))
    text = yaml.dump(load_yaml(opt_file), Dumper=ordered_yaml()[1], sort_keys=False)
    header = f'# GENERATE TIME: {time.asctime()}\n# CMD:\n# {" ".join(sys.argv)}\n# resolved from {opt_file}\n\n'
    with open(target, 'w', encoding='utf-8') as f:
        f.write(header + text)


def apply() -> None:
    """Install the replacements above into ``basicsr.train`` and ``basicsr.test`` (idempotent)."""
    import basicsr.test
    import basicsr.train

    from ssr.utils.options import parse_options

    basicsr.train.parse_options = parse_options
    basicsr.test.parse_options = parse_options
    basicsr.train.load_resume_state = load_resume_state
    basicsr.train.copy_opt_file = copy_opt_file
    basicsr.train.EnlargedSampler = ResumableEnlargedSampler
    if not getattr(basicsr.train.build_model, 'ssr_wrapped', False):
        basicsr.train.build_model = wrap_build_model(basicsr.train.build_model)
    if not getattr(basicsr.train.create_train_val_dataloader, 'ssr_wrapped', False):
        basicsr.train.create_train_val_dataloader = wrap_create_train_val_dataloader(
            basicsr.train.create_train_val_dataloader)
