"""IKC's two training stages (Gu et al., CVPR 2019, as yuanjunchai/IKC trains them) as one BasicSR model."""
from __future__ import annotations

import os
from collections import OrderedDict

import torch
from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import MODEL_REGISTRY
from torch import Tensor

from ssr.archs.ikc_arch import SFTMD, IKCNet
from ssr.models.base_model import SVBaseModel
from ssr.models.training_utils import check_finite
from ssr.ops.dcls_degradation import dcls_random_kernels
from ssr.ops.ikc_pca import fit_ikc_pca, ikc_codes, read_ikc_pca
from ssr.utils.checkpoint import atomic_torch_save

__all__ = ['IKCModel']

PCA_FIT_DEFAULTS = {'num_kernels': 30000, 'kernel_size': 21, 'sig_min': 0.2, 'sig_max': 4.0}


@MODEL_REGISTRY.register()
class IKCModel(SVBaseModel):
    """IKC's training, the stage set by ``network_g``; the data carry each image's blur kernel (``kernel_hr``,
    ``IKCGTDataset``), whose PCA code (:mod:`ssr.ops.ikc_pca`) is the target / condition.

    - ``network_g: {type: SFTMD}`` (``train_SFTMD.py``): the non-blind SFTMD conditioned on the true code, trained
      with ``pixel_opt``; validation super-resolves with the true code.
    - ``network_g: {type: IKCNet, sftmd_path: ...}`` (``train_IKC.py``): SFTMD frozen; per batch one step of the
      Predictor (``optim_g``) on ``code_opt`` against the true code, then ``steps`` rounds of SR = SFTMD(LR, code)
      (no gradient) and one step of the Corrector (``optim_c``) on ``corrector_code_opt``, its output (detached)
      being the next round's code. Validation runs IKCNet blind (the last round's SR). Checkpoints hold the whole
      IKCNet, which ``ssr/test.py`` runs with ``path.pretrain_network_g``.

    Options: ``pca_matrix_path`` (top level: IKC's ``pca_matrix.pth``; required to train IKCNet, whose SFTMD was
    trained with it, and to test SFTMD alone with the true codes); training SFTMD without it fits the basis as
    ``train_SFTMD.py`` does, from ``train.pca_fit`` (``num_kernels`` 30000, ``kernel_size``, ``sig_min``,
    ``sig_max``: random isotropic kernels seeded by ``manual_seed``) and saves it as
    ``<experiments_root>/pca_matrix.pth``. EMA and multi-process training are not supported (IKC has neither).
    ``ssr/test.py`` with SFTMD super-resolves each image with its true code (the non-blind bound of IKC).

    Overrides: init_training_settings, setup_losses, setup_optimizers, feed_data, optimize_parameters, test.
    """

    def __init__(self, opt: dict):
        super().__init__(opt)
        if not self.is_train and not self._correcting:
            self.pca = self._pca_basis({})

    def init_training_settings(self) -> None:
        train = self.opt['train']
        if train.get('ema_decay', 0):
            raise ValueError('train.ema_decay: IKCModel trains without an EMA network; remove it')
        if self.opt['dist'] and isinstance(self.get_bare_model(self.net_g), IKCNet):
            raise ValueError('IKCModel trains the Predictor and Corrector in one process (they step separately); '
                             'run ssr/train.py without a launcher')
        self.pca = self._pca_basis(train)
        super().init_training_settings()

    @property
    def _correcting(self) -> bool:
        return isinstance(self.get_bare_model(self.net_g), IKCNet)

    def _code_length(self) -> int:
        return int(self.opt['network_g'].get('code_len', 10))

    def _pca_basis(self, train: dict) -> Tensor:
        logger = get_root_logger()
        path = self.opt.get('pca_matrix_path')
        if path:
            try:
                basis = read_ikc_pca(path, self._code_length())
            except ValueError as e:
                raise ValueError(f'pca_matrix_path: {e}') from None
            logger.info(f'IKC PCA basis {tuple(basis.shape)} read from {path}')
            return basis.to(self.device)
        if self._correcting:
            raise ValueError('pca_matrix_path is required to train the Predictor and Corrector: the PCA basis the '
                             'SFTMD was trained with (pca_matrix.pth)')
        if not isinstance(self.get_bare_model(self.net_g), SFTMD):
            raise ValueError(f'network_g: IKCModel trains SFTMD or IKCNet, got {self.opt["network_g"]["type"]}')
        if not self.is_train:
            raise ValueError('pca_matrix_path is required to test SFTMD alone (it super-resolves with the true '
                             'kernel codes); test IKC blind with IKCNet')
        fit = {**PCA_FIT_DEFAULTS, **(train.get('pca_fit') or {})}
        unknown = sorted(set(fit) - set(PCA_FIT_DEFAULTS))
        if unknown:
            raise ValueError(f'train.pca_fit: unknown key(s) {unknown}; allowed: {sorted(PCA_FIT_DEFAULTS)}')
        generator = torch.Generator().manual_seed(int(self.opt.get('manual_seed') or 0))
        kernels = dcls_random_kernels(int(fit['num_kernels']), int(fit['kernel_size']), float(fit['sig_min']),
                                      float(fit['sig_max']), rate_iso=1.0, generator=generator)
        basis = fit_ikc_pca(kernels, self._code_length())
        out = os.path.join(self.opt['path']['experiments_root'], 'pca_matrix.pth')
        if get_dist_info()[0] == 0:
            atomic_torch_save(basis, out)
        logger.info(f'IKC PCA basis {tuple(basis.shape)} fitted to {fit["num_kernels"]} random isotropic kernels '
                    f'(k {fit["kernel_size"]}, std {fit["sig_min"]}-{fit["sig_max"]}), saved as {out}')
        return basis.to(self.device)

    def setup_losses(self) -> None:
        train = self.opt['train']
        if self._correcting:
            for key in ('code_opt', 'corrector_code_opt'):
                if not train.get(key):
                    raise ValueError(f'train.{key} is required to train IKCNet (the code loss of the '
                                     f'{"Predictor" if key == "code_opt" else "Corrector"}, IKC: MSELoss)')
            self.cri_code = build_loss(train['code_opt']).to(self.device)
            self.cri_code_c = build_loss(train['corrector_code_opt']).to(self.device)
        else:
            super().setup_losses()

    def setup_optimizers(self) -> None:
        train, net = self.opt['train'], self.get_bare_model(self.net_g)
        if not self._correcting:
            optim = dict(train['optim_g'])
            params = [p for p in net.parameters() if p.requires_grad]  # SFTMD's unused sft_branch is frozen
            self.optimizer_g = self.get_optimizer(optim.pop('type'), params, **optim)
            self.optimizers.append(self.optimizer_g)
            return
        if not train.get('optim_c'):
            raise ValueError('train.optim_c is required to train IKCNet (the Corrector\'s optimizer)')
        net.SFTMD.requires_grad_(False).eval()
        for key, part in (('optim_g', net.Predictor), ('optim_c', net.Corrector)):
            optim = dict(train[key])
            optimizer = self.get_optimizer(optim.pop('type'), list(part.parameters()), **optim)
            setattr(self, 'optimizer_g' if key == 'optim_g' else 'optimizer_c', optimizer)
            self.optimizers.append(optimizer)

    def feed_data(self, data: dict) -> None:
        super().feed_data(data)
        kernel = data.get('kernel_hr')
        pca = getattr(self, 'pca', None)
        self.code = ikc_codes(kernel.to(self.device), pca) if kernel is not None and pca is not None else None

    def _need_code(self, what: str) -> Tensor:
        if self.code is None:
            raise ValueError(f'IKCModel {what} needs each image\'s blur kernel (kernel_hr, IKCGTDataset) and the PCA '
                             'basis (pca_matrix_path)')
        return self.code

    def optimize_parameters(self, current_iter: int) -> None:
        code = self._need_code('training')
        net = self.get_bare_model(self.net_g)
        if not self._correcting:
            self.optimizer_g.zero_grad()
            self.output = self.net_g(self.lq, code)
            self.finish_step(OrderedDict(l_pix=self.cri_pix(self.output, self.gt)), current_iter, [self.net_g])
            return
        net.SFTMD.eval()
        self.optimizer_g.zero_grad()
        estimate = net.Predictor(self.lq)
        losses = OrderedDict(l_code=self.cri_code(estimate, code))
        check_finite(losses, current_iter)
        losses['l_code'].backward()
        self.optimizer_g.step()
        estimate = estimate.detach()
        for _ in range(net.steps):  # train_IKC.py: the Corrector steps once per round
            with torch.no_grad():
                self.output = net.SFTMD(self.lq, estimate)
            self.optimizer_c.zero_grad()
            corrected = net.Corrector(self.output, estimate)
            loss = self.cri_code_c(corrected, code)
            check_finite({'l_code_c': loss}, current_iter)
            loss.backward()
            self.optimizer_c.step()
            estimate = corrected.detach()
        losses['l_code_c'] = loss.detach()  # the last round's, as train_IKC.py logs it
        self.log_dict = self.reduce_loss_dict(losses)

    def test(self) -> None:
        self.net_g.eval()
        with torch.no_grad():
            if self._correcting:
                out = self.net_g(self.lq)
                self.output, self.code_est = out.sr, out.code
            else:
                self.output = self.net_g(self.lq, self._need_code('validation of SFTMD (non-blind)'))
        if self.is_train:
            self.net_g.train()
            if self._correcting:
                self.get_bare_model(self.net_g).SFTMD.eval()
