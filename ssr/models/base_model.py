"""The shared, unregistered base of ssr's BasicSR models: checkpoints, optimizers, devices, synthesis, one step.

basicsr 1.4.2's ``BaseModel`` only knows Adam, wraps DDP with a CUDA device id, writes checkpoints in place and
swallows write errors, unpickles arbitrary objects when loading, and forgets the RNG and EMA states on resume.
:class:`SVBaseModel` overrides those methods for ssr's models only; basicsr's own models keep basicsr's behaviour.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info
from torch import Tensor, nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ssr.models.sv_synthesis import build_synthesis, synthesize
from ssr.models.training_utils import check_finite, clip_gradients
from ssr.ops.depth_utils import depth_dropout
from ssr.utils.checkpoint import atomic_torch_save, load_state_dict_strict, read_state_dict
from ssr.utils.rng import capture_rng_state, restore_rng_state

CONDITION_KEYS = ('kernel', 'depth', 'noise_level')


def torch_optimizers() -> list[str]:
    """Names of the optimizer classes in ``torch.optim`` (``train.optim_*.type`` choices)."""
    return sorted(n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                  and issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != 'Optimizer')


class SVBaseModel(SRModel):
    """BasicSR's ``SRModel`` with spatially variant training data and safe, exactly resumable checkpoints.

    Not registered: the registered recipes (``SVSRModel``, ``KernelEstimatorModel``, ``NonBlindSRModel``,
    ``BlindSRModel``, ``SSRModel``) subclass it.

    Data: with ``datasets.train.synthesis: model`` the dataset returns HR crops (and depth) only, and
    :meth:`feed_data` degrades the whole batch on the model's device with ``datasets.train.degradation`` (one
    :class:`~ssr.data.degradation.SVDegradation`, the options the data workers would use), seeded from the batch's
    first sample seed so runs and resumed runs are reproducible. The batch's kernel field ``(B, k*k, h, w)``, depth
    ``(B, 1, H, W)`` in [0, 1] and noise level ``(B,)`` are kept as ``self.kernel``, ``self.depth``,
    ``self.noise_level`` (``None`` when the data has none) for the models that condition on them.

    Training: :meth:`init_training_settings` runs :meth:`setup_ema` (EMA of ``network_g``, loaded from the
    ``params_ema`` of a pretrained ``network_g``) and :meth:`setup_losses` (SRModel's pixel / perceptual losses;
    models with other losses override it), then the optimizers and schedulers. :meth:`finish_step` ends an
    optimisation step; :meth:`training_depth` applies ``train.depth_dropout``.

    Overrides of basicsr's ``BaseModel`` / ``SRModel``:
        - ``get_optimizer``: any ``torch.optim`` optimizer (basicsr: Adam only);
        - ``model_to_device``: DDP on CPU (gloo) gets no device ids;
        - ``save_network`` / ``save_training_state``: atomic writes that raise on failure; the training state also
          holds the python / numpy / torch RNG states and the EMA network (basicsr's resume would reload the EMA
          from ``params``, silently resetting it);
        - ``resume_training``: also restores those RNG and EMA states, and names a changed option file;
        - ``load_network``: ``weights_only=True``, the network's ``adapt_state_dict`` (official MANet / DCLS / MiDaS
          layouts, a plain RRDBNet for NBSR's trunk), missing / unexpected / wrong-shape keys raised together;
        - ``init_training_settings``, ``feed_data``.
    Inherits ``optimize_parameters``, ``test``, ``validation`` and ``save`` from ``SRModel``.
    """

    def __init__(self, opt: dict):
        super().__init__(opt)
        self.degradation = build_synthesis(opt, self.is_train)

    # ------------------------------------------------------------------------------------------------------------
    # data
    def feed_data(self, data: dict) -> None:
        if 'lq' not in data and self.degradation is not None:
            data = synthesize(self.degradation, data, self.device)
        super().feed_data(data)
        for key in CONDITION_KEYS:
            setattr(self, key, data[key].to(self.device) if key in data else None)

    def training_depth(self, current_iter: int) -> Tensor | None:
        """``self.depth`` with ``train.depth_dropout`` applied (seeded by ``manual_seed`` and the iteration, so a
        resumed run drops the same maps), or ``None`` without depth in the data."""
        p = float(self.opt.get('train', {}).get('depth_dropout', 0) or 0)
        if self.depth is None or p == 0:
            return self.depth
        seed = int(self.opt.get('manual_seed') or 0) * 1_000_003 + int(current_iter) + 7_919
        return depth_dropout(self.depth, p, torch.Generator().manual_seed(seed))

    # ------------------------------------------------------------------------------------------------------------
    # training set-up and one step
    def init_training_settings(self) -> None:
        """``network_g`` in train mode, :meth:`setup_ema`, :meth:`setup_losses`, optimizers, schedulers."""
        self.net_g.train()
        self.setup_ema()
        self.setup_losses()
        self.setup_optimizers()
        self.setup_schedulers()

    def setup_ema(self) -> None:
        """``train.ema_decay`` > 0: ``self.net_g_ema``, a second ``network_g`` that holds the parameter EMA.

        It starts from ``params_ema`` of ``path.pretrain_network_g`` when that is set (``params`` when the file has
        no EMA), else from ``net_g``. It is only evaluated and saved, so it is never wrapped in DDP.
        """
        self.ema_decay = self.opt['train'].get('ema_decay', 0)
        if self.ema_decay <= 0:
            return
        get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
        self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
        load_path = self.opt['path'].get('pretrain_network_g')
        if load_path is not None:
            self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
        else:
            self.model_ema(0)  # copy net_g
        self.net_g_ema.eval()

    def setup_losses(self) -> None:
        """SRModel's losses: ``train.pixel_opt`` as ``self.cri_pix``, ``train.perceptual_opt`` as
        ``self.cri_perceptual`` (each ``None`` when absent; at least one is required)."""
        train = self.opt['train']
        self.cri_pix = build_loss(train['pixel_opt']).to(self.device) if train.get('pixel_opt') else None
        self.cri_perceptual = build_loss(train['perceptual_opt']).to(self.device) if train.get(
            'perceptual_opt') else None
        if self.cri_pix is None and self.cri_perceptual is None:
            raise ValueError('train.pixel_opt and train.perceptual_opt are both missing: give at least one loss')

    def finish_step(self, losses: Mapping[str, Tensor], current_iter: int, nets: Sequence[nn.Module]) -> None:
        """Check the losses are finite, back-propagate their sum, clip (``train.grad_clip``), step every optimizer,
        log the losses and update the EMA network."""
        check_finite(losses, current_iter)
        sum(losses.values()).backward()
        clip_gradients(nets, getattr(self, 'grad_clip', None))
        for optimizer in self.optimizers:
            optimizer.step()
        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    # ------------------------------------------------------------------------------------------------------------
    # optimizers and devices
    def get_optimizer(self, optim_type: str, params, lr: float, **kwargs) -> torch.optim.Optimizer:
        """Any optimizer class of ``torch.optim`` by name (``train.optim_*.type``).

        Raises:
            ValueError: ``optim_type`` is not one; the message lists the choices.
        """
        names = torch_optimizers()
        if optim_type not in names:
            raise ValueError(f'train.optim_*.type {optim_type!r} is not a torch.optim optimizer; choose one of {names}')
        return getattr(torch.optim, optim_type)(params, lr, **kwargs)

    def model_to_device(self, net: nn.Module) -> nn.Module:
        """``net`` on ``self.device``, wrapped in DDP (``dist``; on CPU without device ids) or DataParallel."""
        net = net.to(self.device)
        if self.opt['dist']:
            find_unused = self.opt.get('find_unused_parameters', False)
            device_ids = [self.device.index or 0] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused)
        elif self.opt['num_gpu'] > 1:
            net = DataParallel(net)
        return net

    # ------------------------------------------------------------------------------------------------------------
    # checkpoints
    def save_network(self, net, net_label: str, current_iter: int, param_key='params') -> None:
        """Write ``{param_key: state_dict}`` to ``<path.models>/<net_label>_<iter | latest>.pth`` atomically.

        ``net`` and ``param_key`` may be lists of the same length (``[net_g, net_g_ema]``, ``['params',
        'params_ema']``). Only rank 0 writes.
        """
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
        """Write ``<path.training_states>/<iter>.state`` atomically (rank 0 only; nothing for ``current_iter`` -1).

        Holds ``epoch``, ``iter``, the optimizer and scheduler states, ``rng`` (python / numpy / torch, CUDA when
        initialised), under DDP ``rng_per_rank`` (every rank's, gathered; so every rank must call this) and
        ``net_g_ema`` (the EMA network's state, when there is one).
        """
        if current_iter == -1:
            return
        rank, world = get_dist_info()
        rng = capture_rng_state()
        per_rank = None
        if world > 1:
            # every rank draws its own crops / flips: keep each rank's RNG states, not only rank 0's
            import torch.distributed as dist

            per_rank = [None] * world
            dist.all_gather_object(per_rank, rng)
        if rank != 0:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'rng': rng,
        }
        if per_rank is not None:
            state['rng_per_rank'] = per_rank
        if getattr(self, 'net_g_ema', None) is not None:
            # basicsr reloads the EMA network from 'params' on resume (check_resume), which silently resets the EMA;
            # keeping it here lets resume_training restore it.
            state['net_g_ema'] = {k: v.detach().cpu() for k, v in self.net_g_ema.state_dict().items()}
        atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state: dict) -> None:
        """Restore the optimizers, schedulers and, when saved, the EMA network and the RNG states.

        Raises:
            ValueError: the state holds another number of optimizers / schedulers than the model (the option file
                changed since the state was saved).
        """
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
        rank, world = get_dist_info()
        per_rank = resume_state.get('rng_per_rank')
        if per_rank is not None and len(per_rank) == world:
            restore_rng_state(per_rank[rank])
        elif 'rng' in resume_state:
            if world > 1:
                get_root_logger().warning(f'the training state holds RNG states for {len(per_rank or [])} ranks, '
                                          f'this run has {world}: every rank restores rank 0\'s')
            restore_rng_state(resume_state['rng'])

    def load_network(self, net: nn.Module, load_path: str, strict: bool = True, param_key: str | None = 'params'):
        """Load ``param_key`` of ``load_path`` (``params_ema`` falls back to ``params``) into ``net``.

        Reads with ``weights_only=True``; a network may define ``adapt_state_dict(state) -> state`` to accept
        foreign layouts, applied before the strict check.

        Raises:
            RuntimeError: with ``strict``, the missing, unexpected and wrong-shape keys together; or a file that is
                not a plain tensor pickle.
        """
        net = self.get_bare_model(net)
        state, used_key = read_state_dict(load_path, param_key)
        if hasattr(net, 'adapt_state_dict'):
            state = net.adapt_state_dict(state)
        get_root_logger().info(f'Loading {net.__class__.__name__} from {load_path}, param key: [{used_key}].')
        load_state_dict_strict(net, state, source=load_path, strict=strict)
