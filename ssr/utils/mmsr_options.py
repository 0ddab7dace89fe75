"""MMSR-style option files (MANet, DCLS, IKC) translated to BasicSR / ssr options, so they run as they are.

MANet and DCLS ship option files in the older MMSR layout: ``network_G: {which_model_G: ...}``,
``path.pretrain_model_G``, ``gpu_ids``, ``datasets.test1`` with ``mode: LQGT``, ``dataroot_GT`` / ``dataroot_LQ``, and
the network's ``scale`` / ``kernel_size`` / ``code_length`` / ``pca_path`` at the top level. :func:`translate_mmsr`
maps such a test file onto the equivalent ssr file (``model_type: BlindSRModel`` with ``MANetBlindSR`` /
``DCLSNet``, ``PairedImageDataset`` / ``SingleImageDataset``, Y-channel PSNR / SSIM), returning the notes of every
key it mapped; :func:`ssr.utils.options.load_options` applies it, so ``ssr/test.py -opt`` takes the official files,
and ``scripts/convert_options.py`` writes the translation.

============================================  =========================================================================
MMSR key                                      ssr / BasicSR key
============================================  =========================================================================
``gpu_ids: ~`` / ``[]`` / ``[0, 1]``          ``num_gpu: 0`` / ``0`` / ``2``
``model`` (``blind``, ``sr``)                 ``model_type: BlindSRModel``
``network_G.which_model_G: MANet_s3``         ``network_g.type: MANetBlindSR`` (``in_nc``, ``out_nc``, ``nf``, ``nb``,
                                              ``gc``, ``manet_nf``, ``manet_nb``, ``split``; top-level ``scale``,
                                              ``kernel_size``, ``code_length``, ``pca_path``)
``network_G.which_model_G: DCLS``             ``network_g.type: DCLSNet`` (``setting``'s ``nf``, ``nb``, ``ng``,
                                              ``in_nc``, ``reduction``, ``input_para``, ``kernel_size``; ``upscale`` =
                                              ``scale``)
``path.pretrain_model_G``, ``strict_load``    ``path.pretrain_network_g`` (``param_key_g: ~``, a raw state_dict),
                                              ``path.strict_load_g``
``datasets.testN.mode: LQGT`` / ``GTLQ``      ``PairedImageDataset`` (``dataroot_gt`` / ``dataroot_lq``; ``.lmdb``
                                              roots read with the LMDB backend)
``datasets.testN.mode: LQ``                   ``SingleImageDataset`` (``dataroot_lq``)
``suffix``, ``crop_border``                   ``val.suffix``; ``crop_border`` of the PSNR / SSIM metrics (default: scale)
============================================  =========================================================================

``datasets.testN.mode: GT`` (HR only: MMSR synthesises the LR on the fly) becomes an ``MMSRGTDataset``
(:mod:`ssr.data.mmsr_gt_dataset`) built from the file's top-level ``sig`` (isotropic std), ``sig1`` / ``sig2``
(anisotropic covariance eigenvalues, px², converted to standard deviations), ``theta``, ``rate_iso``, ``sv_mode``
(MANet's spatially variant patterns 1-6, :mod:`ssr.ops.mmsr_kernels`), ``test_noise`` / ``noise`` and
``test_jpeg`` / ``jpeg``, with ``kernel_size``; the LR is made on MANet's grid (its kernel layout, replicate padding,
``[0::s]``: equal to MANet's recipe up to float rounding, tested), so MANet's networks see what they were trained
on. In a file with DCLS's ``degradation`` block a ``mode: GT`` set is a ``DCLSGTDataset`` instead (DCLS's kernels,
blur and bicubic downsampling, :mod:`ssr.data.dcls_gt_dataset`). Training-only synthesis keys (``sig_min`` /
``sig_max``, ``train_noise``, ``noise_high``, ``train_jpeg``, ``jpeg_low``, ``pca_matrix_path``) and MMSR bookkeeping
(``distortion``, ``is_train``, ``cal_lr_psnr``, ``use_tb_logger``, ``path.results_root`` / ``root`` / ``log``,
``data_type``, ``color``) are noted as not used. Every other key is an :class:`OptionError` naming it.

DCLS training files: ``datasets.train`` (``mode: GT``) and the ``degradation`` block (``random_kernel``, ``ksize``,
``sig_min`` / ``sig_max``, ``rate_iso``, ``random_disturb``, ``noise`` / ``noise_high``) become a ``DCLSGTDataset``
whose samples carry DCLS's reformulated kernel as ``kernel_lr``; ``BlindSRModel`` trains ``DCLSNet`` with
``kernel_opt`` L1 on it plus the pixel loss (DCLS's ``B_Model``: their unweighted sum), the Restorer at ``lr_G`` and
the Estimator at ``lr_E`` (``optim_g.lr_by_prefix``).

MANet's three stages, test and training files: ``MANet_s1`` (the kernel estimator alone) -> ``MANetEstimator`` in a
``KernelEstimatorModel`` (weights ``path.pretrain_model_K`` or ``_G``; validated on kernels: ``kernel_psnr``,
``lr_psnr``), ``MANet_s2`` (the non-blind RRDB-SFT fed with the true kernels) -> ``MANetSR`` in a ``NonBlindSRModel``,
``MANet_s3`` -> ``MANetBlindSR`` in a ``BlindSRModel``. Training files (``ssr/train.py -opt``): ``datasets.train``
(``mode: GT``) becomes an ``MMSRGTDataset`` with random ``GT_size`` crops, ``use_flip`` / ``use_rot`` and MANet's
random kernels (``sig_min``, ``sig_max``, ``rate_iso``; ``train_noise`` / ``noise_high``, ``train_jpeg`` /
``jpeg_low``); in stage 3 ``path.pretrain_model_K`` / ``pretrain_model_G`` load the stage-1 / stage-2 files into
``MANetBlindSR``'s estimator / SR part (``estimator_path`` / ``sr_path``); ``train`` maps ``lr_G``, ``beta1`` /
``beta2``, ``weight_decay_G`` to an Adam ``optim_g``, ``niter`` to ``total_iter``, ``lr_scheme`` (``MultiStepLR`` with
``lr_steps`` / ``lr_gamma`` / ``restarts``, or ``CosineAnnealingLR_Restart`` with ``T_period`` / ``restarts`` /
``restart_weights``) to BasicSR's schedulers, ``pixel_criterion`` / ``pixel_weight`` to ``pixel_opt`` (stages 2, 3)
and stage 1's ``kernel_criterion`` / ``kernel_weight`` to a ``KernelFieldLoss`` of the same value (MANet's
1e4-scaled, per-pixel-divided L1 / L2; tested equal); ``logger`` and ``use_tb_logger`` carry over. A loss a stage
cannot compute (``pixel_criterion`` in stage 1, ``kernel_criterion`` in stages 2 / 3, ``pixel_criterion_lr``) is an
error naming it.

IKC tests with three files (``test_IKC.py -opt_F SFTMD.yml -opt_P Predictor.yml -opt_C Corrector.yml``):
:func:`translate_ikc` (``scripts/convert_options.py --ikc``) merges them into one file that runs ``IKCNet``
(:mod:`ssr.archs.ikc_arch`: the Predictor's code, ``step`` rounds of SFTMD + Corrector, each part's
``pretrain_model_G`` loaded into it) on the Predictor file's ``LQGTker`` sets (a set without ``dataroot_LQ``, for
which ``test_IKC.py`` draws new random kernels at every run, becomes an ``IKCGTDataset`` seeded per image); one IKC
test file alone is an error that says so.

IKC's training (:mod:`ssr.models.ikc_model`, :mod:`ssr.data.ikc_gt_dataset`): ``train_SFTMD.yml`` runs as it is
(``ssr/train.py -opt``): ``IKCModel`` trains ``SFTMD`` on the true kernels' PCA codes, the PCA basis fitted at the
start as ``train_SFTMD.py`` does and saved as ``experiments/<name>/pca_matrix.pth``; its ``LQGTker`` sets become
``IKCGTDataset`` (IKC's random isotropic kernels, reflect blur, 8-bit PIL bicubic). ``train_IKC.py``'s three files
(``-opt_F train_SFTMD.yml -opt_P train_Predictor.yml -opt_C train_Corrector.yml``) are merged by
:func:`translate_ikc_training` (``scripts/convert_options.py --ikc``) into one ``IKCModel`` file training ``IKCNet``'s
Predictor and Corrector against the frozen SFTMD of the SFTMD file's ``sftmd`` block, with the PCA basis found beside
that SFTMD's run (or IKC's ``./pca_matrix.pth``). ``lr_scheme: ~`` is a constant learning rate.

Not translated (an error that says so): DCLS's stored-kernel training (``stored_kernel``), MANet's LR re-degradation
loss (``pixel_criterion_lr``).
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Mapping

__all__ = ['is_mmsr', 'translate_ikc', 'translate_ikc_training', 'translate_mmsr']

MANET_MODELS = ('MANet_s3', 'MANet')
MANET_ESTIMATOR_MODELS = ('MANet_s1',)
MANET_NONBLIND_MODELS = ('MANet_s2',)
MANET_TRAIN_MODELS = ('MANet_s1', 'MANet_s2', 'MANet_s3')
# network_G keys each MANet stage builds its network from (the official classes take and ignore the others)
MANET_STAGE_KEYS = {'MANet_s1': ('in_nc', 'manet_nf', 'manet_nb', 'split'),
                    'MANet_s2': ('in_nc', 'out_nc', 'nf', 'nb', 'gc')}
MODEL_TYPES = {'MANet_s1': 'KernelEstimatorModel', 'MANet_s2': 'NonBlindSRModel'}
TRAIN_SYNTHESIS_KEYS = ('sig_min', 'sig_max', 'rate_iso', 'train_noise', 'noise_high', 'train_jpeg', 'jpeg_low')
DCLS_MODELS = ('DCLS',)
IKC_MODELS = ('SFTMD', 'Predictor', 'Corrector')
MANET_NET_KEYS = ('in_nc', 'out_nc', 'nf', 'nb', 'gc', 'manet_nf', 'manet_nb', 'split')
MANET_TOP_KEYS = ('kernel_size', 'code_length', 'pca_path')
DCLS_SETTING_KEYS = ('nf', 'nb', 'ng', 'in_nc', 'reduction', 'input_para', 'kernel_size')
SYNTHESIS_KEYS = ('sig', 'sig1', 'sig2', 'theta', 'rate_iso', 'sv_mode', 'test_noise', 'noise', 'test_jpeg', 'jpeg',
                  'sig_min', 'sig_max', 'train_noise', 'noise_high', 'train_jpeg', 'jpeg_low', 'degradation',
                  'pca_matrix_path')
GT_KEYS = ('sig', 'sig1', 'sig2', 'theta', 'rate_iso', 'sv_mode', 'test_noise', 'noise', 'test_jpeg', 'jpeg')
UNUSED_TOP = ('distortion', 'is_train', 'cal_lr_psnr', 'use_tb_logger')
UNUSED_PATH = ('results_root', 'root', 'log')
UNUSED_DATASET = ('data_type', 'color', 'n_workers', 'batch_size', 'use_shuffle', 'phase')


def is_mmsr(opt: Mapping) -> bool:
    """An MMSR-layout file: ``network_G`` with ``which_model_G``, or ``path.pretrain_model_G``, or ``gpu_ids``."""
    net = opt.get('network_G')
    return (isinstance(net, Mapping) and 'which_model_G' in net) or 'gpu_ids' in opt or (
        isinstance(opt.get('path'), Mapping) and 'pretrain_model_G' in opt['path'])


def _is_lmdb(root) -> bool:
    """An MMSR root ending in ``.lmdb`` (read with the LMDB backend)."""
    return str(root).rstrip('/').endswith('.lmdb')


def _error(file, key: str, message: str):
    from ssr.utils.options import OptionError

    return OptionError(file, key, message)


def _network(opt: Mapping, file, notes: list[str]) -> dict:
    net = opt.get('network_G')
    if not isinstance(net, Mapping) or 'which_model_G' not in net:
        raise _error(file, 'network_G.which_model_G', 'an MMSR file needs network_G.which_model_G')
    which = net['which_model_G']
    scale = opt.get('scale', 4)
    if which in MANET_STAGE_KEYS:
        return _manet_stage_network(which, net, opt, file, notes)
    if which in MANET_MODELS:
        out = {'type': 'MANetBlindSR'}
        for key, value in net.items():
            if key == 'which_model_G':
                continue
            if key not in MANET_NET_KEYS + MANET_TOP_KEYS + ('scale',):
                raise _error(file, f'network_G.{key}', f'has no meaning for MANetBlindSR; it takes '
                             f'{", ".join(MANET_NET_KEYS + MANET_TOP_KEYS)}')
            out[key] = value
        for key in MANET_TOP_KEYS:
            if key in opt and key not in out:
                out[key] = opt[key]
                notes.append(f'{key} -> network_g.{key}')
        out['scale'] = net.get('scale', scale)
        out['kernel_layout'] = 'ssr'
        notes.append(f'network_G ({which}) -> network_g (MANetBlindSR, kernel_layout: ssr)')
        return out
    if which in DCLS_MODELS:
        setting = dict(net.get('setting') or {})
        extra = [k for k in net if k not in ('which_model_G', 'setting')]
        if extra:
            raise _error(file, f'network_G.{extra[0]}', 'DCLS files keep the network options under network_G.setting')
        out = {'type': 'DCLSNet'}
        for key, value in setting.items():
            if key == 'pca_matrix_path':
                notes.append('network_G.setting.pca_matrix_path: not used (DCLSNet needs no PCA at test time)')
                continue
            if key == 'upscale':
                out['upscale'] = value
                continue
            if key not in DCLS_SETTING_KEYS:
                raise _error(file, f'network_G.setting.{key}', f'has no meaning for DCLSNet; it takes '
                             f'{", ".join(DCLS_SETTING_KEYS)}')
            out[key] = value
        if 'kernel_size' not in out and 'kernel_size' in opt:
            out['kernel_size'] = opt['kernel_size']
        out.setdefault('upscale', scale)
        notes.append(f'network_G ({which}) -> network_g (DCLSNet)')
        return out
    if which in IKC_MODELS:
        raise _error(file, 'network_G.which_model_G', f'{which!r} is one of IKC\'s three test files (SFTMD, '
                     'Predictor, Corrector): merge them with scripts/convert_options.py --ikc SFTMD.yml '
                     'Predictor.yml Corrector.yml OUT.yml, then run ssr/test.py -opt OUT.yml')
    raise _error(file, 'network_G.which_model_G', f'{which!r} is not translated; ssr runs '
                 f'{", ".join(MANET_ESTIMATOR_MODELS + MANET_NONBLIND_MODELS + MANET_MODELS + DCLS_MODELS)} from '
                 'MMSR files (write an ssr file for others)')


def _manet_stage_network(which: str, net: Mapping, opt: Mapping, file, notes: list[str]) -> dict:
    """MANet stage 1 (``MANet_s1``: the kernel estimator alone) -> ``MANetEstimator``; stage 2 (``MANet_s2``: the
    non-blind RRDB-SFT fed with true kernels) -> ``MANetSR``."""
    used = MANET_STAGE_KEYS[which]
    scale = int(net.get('scale', opt.get('scale', 4)))
    values = {}
    for key, value in net.items():
        if key in ('which_model_G', 'scale'):
            continue
        if key not in MANET_NET_KEYS + MANET_TOP_KEYS:
            raise _error(file, f'network_G.{key}', f'has no meaning for {which}; it takes {", ".join(used)}')
        if key in used or key in MANET_TOP_KEYS:
            values[key] = value
        elif value is not None:
            notes.append(f'network_G.{key}: not used ({which} builds its network from {", ".join(used)})')
    for key in MANET_TOP_KEYS:
        if key in opt and key not in values:
            values[key] = opt[key]
    values = {k: v for k, v in values.items() if v is not None}
    kernel_size = int(values.pop('kernel_size', 21))
    if which == 'MANet_s1':
        nf = int(values.get('manet_nf', 128))
        out = {'type': 'MANetEstimator', 'in_nc': values.get('in_nc', 3), 'kernel_size': kernel_size,
               'nc': [nf, 2 * nf], 'nb': values.get('manet_nb', 1), 'split': values.get('split', 2), 'scale': scale,
               'kernel_layout': 'ssr'}
        for key in ('code_length', 'pca_path'):
            if key in values:
                notes.append(f'{key}: not used (the stage-1 estimator has no PCA)')
        notes.append(f'network_G ({which}) -> network_g (MANetEstimator, nc [{nf}, {2 * nf}], kernel_layout: ssr)')
        return out
    out = {'type': 'MANetSR', **{k: values[k] for k in ('in_nc', 'out_nc', 'nf', 'nb', 'gc') if k in values},
           'scale': scale, 'code_length': values.get('code_length', 15), 'kernel_size': kernel_size,
           'kernel_layout': 'ssr'}
    if 'pca_path' in values:
        out['pca_path'] = values['pca_path']
    notes.append(f'network_G ({which}) -> network_g (MANetSR, fed the data\'s true kernels; kernel_layout: ssr)')
    return out


DCLS_DEGRADATION = ('random_kernel', 'sig', 'sig_min', 'sig_max', 'rate_iso', 'random_disturb', 'noise',
                    'noise_high')


def _dcls_degradation(opt: Mapping, file, notes: list[str]) -> tuple[dict, int | None]:
    """DCLS's top-level ``degradation`` block (``SRMDPreprocessing``'s arguments) -> ``DCLSGTDataset.degradation``
    and its ``ksize``."""
    block = dict(opt.get('degradation') or {})
    out = {}
    for key, value in block.items():
        if key in DCLS_DEGRADATION:
            out[key] = value
        elif key == 'code_length':
            notes.append('degradation.code_length: not used (DCLS computes PCA codes of its kernels but its model '
                         'never reads them)')
        elif key == 'rate_cln':
            notes.append('degradation.rate_cln: not used (DCLS adds noise_high to every image)')
        elif key in ('stored_kernel', 'pre_kernel_path') and not value:
            continue
        elif key == 'ksize':
            continue
        else:
            raise _error(file, f'degradation.{key}', 'has no meaning in ssr (known: ksize, code_length, rate_cln, '
                         f'{", ".join(DCLS_DEGRADATION)}; stored kernel files are not translated)')
    ksize = block.get('ksize')
    return out, (None if ksize is None else int(ksize))


TRAIN_SET_KEYS = {'dataroot_GT': 'dataroot_gt', 'GT_size': 'gt_size', 'use_flip': 'use_hflip', 'use_rot': 'use_rot',
                  'use_shuffle': 'use_shuffle', 'n_workers': 'num_worker_per_gpu', 'batch_size': 'batch_size_per_gpu'}
TEST_SET_KEYS = {'dataroot_GT': 'dataroot_gt'}


def _gt_set_keys(key: str, ds: Mapping, file, notes: list[str], what: str, train: bool, scale: int) -> dict:
    """The keys of a ``mode: GT`` set (HR only; the LR is synthesised): renamed (:data:`TRAIN_SET_KEYS` for a train
    set, :data:`TEST_SET_KEYS` otherwise), ``dataroot_LQ: ~`` and a consistent ``LR_size`` accepted, bookkeeping
    noted as unused; any other key is an error naming it (``what`` names the set's kind in it)."""
    rename = TRAIN_SET_KEYS if train else TEST_SET_KEYS
    unused = ('color', 'data_type', 'phase') + (() if train else UNUSED_DATASET)
    out: dict = {}
    for k, value in ds.items():
        if k in rename:
            out[rename[k]] = value
        elif k in ('mode', 'name') or (k in ('dataroot_LQ', 'LR_size') and value is None):
            continue
        elif k == 'dataroot_LQ':
            raise _error(file, f'{key}.dataroot_LQ', 'mode GT synthesises the LR images: set dataroot_LQ: ~, or use '
                         'mode: LQGT to read LR / HR pairs')
        elif k == 'LR_size' and train:
            if ds.get('GT_size') is not None and int(value) * scale != int(ds['GT_size']):
                raise _error(file, f'{key}.LR_size', f'LR_size {value} x scale {scale} != GT_size {ds["GT_size"]}')
        elif k in unused:
            notes.append(f'{key}.{k}: not used')
        else:
            raise _error(file, f'{key}.{k}', f'has no meaning in ssr for {what} (known: name, mode, dataroot_LQ: ~, '
                         f'{"LR_size, " if train else ""}{", ".join(rename)}, {", ".join(unused)})')
    if not out.get('dataroot_gt'):
        raise _error(file, f'{key}.dataroot_GT', 'mode GT needs dataroot_GT (the HR images to degrade)')
    return out


def _dcls_dataset(key: str, ds: Mapping, opt: Mapping, file, notes: list[str], train: bool) -> dict:
    """A DCLS ``mode: GT`` set (its ``train`` set, or a test set of a file with a ``degradation`` block) -> a
    ``DCLSGTDataset``: random crops and random kernels for training, fixed (seeded) ones for a test set."""
    if ds.get('mode') != 'GT':
        raise _error(file, f'{key}.mode', f'DCLS trains on mode: GT (LR synthesised on the fly), got '
                     f'{ds.get("mode")!r}')
    scale = int(opt.get('scale', 4))
    out: dict = {'name': ds.get('name', key.split('.')[-1]), 'type': 'DCLSGTDataset',
                 **_gt_set_keys(key, ds, file, notes, 'a DCLS mode: GT set', train, scale)}
    degradation, ksize = _dcls_degradation(opt, file, notes)
    net_k = ((opt.get('network_G') or {}).get('setting') or {}).get('kernel_size', opt.get('kernel_size'))
    if ksize is not None and net_k is not None and int(net_k) != ksize:
        raise _error(file, 'degradation.ksize', f'{ksize} != network_G.setting.kernel_size {net_k}: DCLS estimates '
                     'kernels of the size it is trained on')
    out['kernel_size'] = int(ksize or net_k or 21)
    out['degradation'] = degradation
    out['io_backend'] = {'type': 'lmdb' if _is_lmdb(out['dataroot_gt']) else 'disk'}
    kind = 'random' if degradation.get('random_kernel', True) else f"fixed isotropic sig {degradation.get('sig', 2.6)}"
    notes.append(f'{key} (mode GT) -> DCLSGTDataset: {kind} k={out["kernel_size"]} kernels centred at k // 2, '
                 f'bicubic x1/{scale}' + (f', random {out.get("gt_size")}² crops' if train else ', seeded per image') +
                 '; the reformulated LR kernel as the estimator\'s target (kernel_lr)')
    return out


def _gt_dataset(key: str, ds: Mapping, opt: Mapping, file, notes: list[str]) -> dict:
    """``mode: GT``: an ``MMSRGTDataset`` with the file's kernel, noise and JPEG settings (a ``DCLSGTDataset`` for a
    file with DCLS's ``degradation`` block)."""
    if isinstance(opt.get('degradation'), Mapping):
        return _dcls_dataset(key, ds, opt, file, notes, train=False)
    out: dict = {'name': ds.get('name', key.split('.')[-1]), 'type': 'MMSRGTDataset',
                 **_gt_set_keys(key, ds, file, notes, 'a mode: GT test set', False, int(opt.get('scale', 4)))}
    kernel = {k: opt[k] for k in ('sig', 'sig1', 'sig2', 'theta', 'rate_iso', 'sv_mode') if opt.get(k) is not None}
    out['kernel'] = kernel
    out['kernel_size'] = int(opt.get('kernel_size', 21))
    out['noise_level'] = float(opt.get('noise', 0)) if opt.get('test_noise') else 0.0
    out['jpeg_quality'] = int(opt['jpeg']) if opt.get('test_jpeg') else None
    out['io_backend'] = {'type': 'lmdb' if _is_lmdb(out['dataroot_gt']) else 'disk'}
    sv = kernel.get('sv_mode', 0)
    blur = (f"sv_mode {sv}" if sv else 'isotropic sig {}'.format(kernel.get('sig')) if kernel.get('rate_iso', 1) >= 1
            else f"eigenvalues sig1 {kernel.get('sig1')} / sig2 {kernel.get('sig2')} px², theta {kernel.get('theta')}")
    notes.append(f"{key} (mode GT) -> MMSRGTDataset: LR synthesised on the fly ({blur}, noise "
                 f"{out['noise_level']:g}, JPEG {out['jpeg_quality']})")
    return out


def _dataset(phase: str, ds: Mapping, file, notes: list[str], opt: Mapping | None = None) -> tuple[str, dict]:
    mode = ds.get('mode')
    key = f'datasets.{phase}'
    numbered = re.fullmatch(r'(test|val)(\d+)', phase)
    if mode == 'GT':
        return (f'{numbered[1]}_{numbered[2]}' if numbered else phase), _gt_dataset(key, ds, opt or {}, file, notes)
    if mode not in ('LQGT', 'GTLQ', 'LQ'):
        raise _error(file, f'{key}.mode', f'expected LQGT, GTLQ, LQ or GT, got {mode!r}')
    out: dict = {'name': ds.get('name', phase)}
    roots = {'dataroot_GT': 'dataroot_gt', 'dataroot_LQ': 'dataroot_lq'}
    for k, value in ds.items():
        if k in ('mode', 'name'):
            continue
        if k in roots:
            if value is not None:
                out[roots[k]] = value
            continue
        if k in UNUSED_DATASET:
            notes.append(f'{key}.{k}: not used')
            continue
        raise _error(file, f'{key}.{k}', 'has no meaning in ssr for a test set (known: name, mode, dataroot_GT, '
                     f'dataroot_LQ, {", ".join(UNUSED_DATASET)})')
    needed = ('dataroot_lq',) if mode == 'LQ' else ('dataroot_gt', 'dataroot_lq')
    for k in needed:
        if k not in out:
            mmsr = 'dataroot_LQ' if k == 'dataroot_lq' else 'dataroot_GT'
            raise _error(file, f'{key}.{mmsr}', f'mode {mode} needs {mmsr}')
    lmdb = [_is_lmdb(out[k]) for k in needed]
    if any(lmdb) and not all(lmdb):
        raise _error(file, key, 'dataroot_GT and dataroot_LQ must both be LMDB or both folders')
    out['io_backend'] = {'type': 'lmdb' if all(lmdb) else 'disk'}
    out['type'] = 'SingleImageDataset' if mode == 'LQ' else 'PairedImageDataset'
    name = f'{numbered[1]}_{numbered[2]}' if numbered else phase
    notes.append(f'{key} (mode {mode}) -> datasets.{name} ({out["type"]}, {out["io_backend"]["type"]})')
    return name, out


def translate_mmsr(opt: Mapping, file: str | os.PathLike, is_train: bool) -> tuple[OrderedDict, list[str]]:
    """The ssr option tree of an MMSR test file (or, with ``is_train``, a MANet stage 1-3 or DCLS training file) and
    one note per mapped / unused key.

    Raises:
        OptionError: a key with no meaning in ssr (named), a network, dataset mode or training file not translated.
    """
    which = (opt.get('network_G') or {}).get('which_model_G') if isinstance(opt.get('network_G'), Mapping) else None
    if is_train and which == 'SFTMD':
        return _translate_ikc_sftmd(opt, file)
    if is_train and which in IKC_MODELS:
        raise _error(file, 'network_G.which_model_G', f'IKC trains the {which} with the Predictor, Corrector and the '
                     'trained SFTMD together (train_IKC.py -opt_F -opt_P -opt_C): merge the three files with '
                     'scripts/convert_options.py --ikc train_SFTMD.yml train_Predictor.yml train_Corrector.yml '
                     'OUT.yml, then run ssr/train.py -opt OUT.yml')
    if is_train and which not in MANET_TRAIN_MODELS + DCLS_MODELS:
        raise _error(file, 'network_G.which_model_G', f'MMSR training files are translated for MANet stages 1-3, '
                     f'DCLS and IKC ({", ".join(MANET_TRAIN_MODELS + DCLS_MODELS + IKC_MODELS)}), not {which!r}; write an ssr '
                     'training file (options/train_*.yml)')
    notes: list[str] = []
    out: OrderedDict = OrderedDict()
    out['name'] = opt.get('name') or os.path.splitext(os.path.basename(str(file)))[0]
    out['model_type'] = MODEL_TYPES.get(which, 'BlindSRModel')
    if 'model' in opt:
        notes.append(f'model: {opt["model"]} -> model_type: {out["model_type"]}')
    if which in MANET_ESTIMATOR_MODELS:
        out['depth_input'] = 'none'  # MANet's estimator sees the LR image only
    gpus = opt.get('gpu_ids')
    out['num_gpu'] = len(gpus) if isinstance(gpus, (list, tuple)) else 0
    notes.append(f'gpu_ids: {gpus!r} -> num_gpu: {out["num_gpu"]}')
    out['scale'] = int(opt.get('scale', 4))
    if 'manual_seed' in opt:
        out['manual_seed'] = opt['manual_seed']
    out['network_g'] = _network(opt, file, notes)
    crop = opt.get('crop_border')
    crop = out['scale'] if crop is None else crop
    datasets: OrderedDict = OrderedDict()
    for phase, ds in (opt.get('datasets') or {}).items():
        if is_train and phase == 'train':
            datasets['train'] = (_dcls_dataset('datasets.train', ds, opt, file, notes, train=True)
                                 if which in DCLS_MODELS else _train_dataset(ds, opt, file, notes))
            continue
        if not str(phase).startswith(('test', 'val')):
            raise _error(file, f'datasets.{phase}', 'a test file holds test / val sets only' if not is_train else
                         'a training file holds one train set and val sets')
        name, translated = _dataset(str(phase), ds, file, notes, opt)
        datasets[name] = translated
    if not datasets:
        raise _error(file, 'datasets', 'no test set (datasets.test1: {mode: LQGT, dataroot_GT, dataroot_LQ})')
    if is_train and 'train' not in datasets:
        raise _error(file, 'datasets.train', 'a training file needs a train set (mode: GT, dataroot_GT)')
    out['datasets'] = datasets
    path = dict(opt.get('path') or {})
    out['path'] = OrderedDict()
    stage_path = which in MANET_STAGE_KEYS or which in DCLS_MODELS  # one network, one weights file
    if which in MANET_ESTIMATOR_MODELS and path.get('pretrain_model_K') and path.get('pretrain_model_G'):
        raise _error(file, 'path.pretrain_model_G', f'{which} loads one file into its estimator: give '
                     'pretrain_model_K or pretrain_model_G, not both')
    for key, value in path.items():
        if stage_path and key in ('pretrain_model_K', 'pretrain_model_G'):
            if key == 'pretrain_model_K' and which not in MANET_ESTIMATOR_MODELS and value is not None:
                raise _error(file, 'path.pretrain_model_K', f'{which} has no kernel estimator; its weights are '
                             'path.pretrain_model_G')
            if value is not None:
                out['path']['pretrain_network_g'] = value
                out['path']['param_key_g'] = None  # the official releases are raw state_dicts
                notes.append(f'path.{key} -> path.pretrain_network_g (param_key_g: ~)')
        elif is_train and key in ('pretrain_model_K', 'pretrain_model_G'):
            field = 'estimator_path' if key == 'pretrain_model_K' else 'sr_path'
            if value is not None:
                out['network_g'][field] = value
            notes.append(f'path.{key} -> network_g.{field} (stage {"1" if field == "estimator_path" else "2"} '
                         'weights loaded into that part, strictly)')
        elif is_train and key == 'resume_state':
            out['path']['resume_state'] = value
        elif is_train and key == 'strict_load' and not stage_path:
            notes.append('path.strict_load: not used (the stage-1 / stage-2 parts load strictly)')
        elif key == 'pretrain_model_G':
            out['path']['pretrain_network_g'] = value
            out['path']['param_key_g'] = None  # the official releases are raw state_dicts
            notes.append('path.pretrain_model_G -> path.pretrain_network_g (param_key_g: ~)')
        elif key == 'strict_load':
            out['path']['strict_load_g'] = bool(value)
            notes.append('path.strict_load -> path.strict_load_g')
        elif key in UNUSED_PATH:
            notes.append(f'path.{key}: not used (results land in results/<name>/)')
        else:
            raise _error(file, f'path.{key}', 'has no meaning in ssr (known: pretrain_model_G, strict_load, '
                         f'{", ".join(UNUSED_PATH)})')
    metric = {'crop_border': crop, 'test_y_channel': True}
    out['val'] = {'save_img': True, 'suffix': opt.get('suffix'),
                  'metrics': {'psnr': dict(type='calculate_psnr', **metric),
                              'ssim': dict(type='calculate_ssim', **metric)}}
    if which in MANET_ESTIMATOR_MODELS:  # KernelEstimatorModel reports kernel_mse / kernel_psnr / lr_psnr itself
        out['val'] = {'save_img': False, 'suffix': opt.get('suffix')}
        notes.append('crop_border: not used (the stage-1 estimator is validated on kernels)')
    gt_sets = any(isinstance(ds, Mapping) and ds.get('mode') == 'GT' for ds in (opt.get('datasets') or {}).values())
    dcls_gt = isinstance(opt.get('degradation'), Mapping) and gt_sets
    known = {'name', 'model', 'gpu_ids', 'scale', 'manual_seed', 'network_G', 'datasets', 'path', 'crop_border',
             'suffix'} | set(MANET_TOP_KEYS)
    if is_train:
        _train_sections(opt, out, file, notes, which)
        known |= {'train', 'logger', 'use_tb_logger'}
    for key in opt:
        if key in known:
            continue
        if key == 'degradation' and dcls_gt:
            notes.append('degradation -> the DCLSGTDataset sets (kernels, noise)')
        elif key == 'pca_matrix_path' and which in DCLS_MODELS:
            notes.append('pca_matrix_path: not used (DCLSNet needs no PCA)')
        elif is_train and key in TRAIN_SYNTHESIS_KEYS:
            notes.append(f'{key} -> datasets.train (MANet\'s random training kernels / noise / JPEG)')
        elif key in GT_KEYS and gt_sets:
            notes.append(f'{key} -> the kernel / noise / JPEG of the mode: GT sets')
        elif key in SYNTHESIS_KEYS:
            notes.append(f'{key}: not used (LR synthesis of mode: GT; {"training only" if gt_sets else "no GT set"})')
        elif key in UNUSED_TOP:
            notes.append(f'{key}: not used')
        else:
            raise _error(file, key, f'has no meaning in ssr for an MMSR {"training" if is_train else "test"} file; '
                         'remove it or write an ssr file')
    return out, notes


def _train_dataset(ds: Mapping, opt: Mapping, file, notes: list[str]) -> dict:
    """MANet's ``datasets.train`` (``mode: GT``) -> an ``MMSRGTDataset`` with random crops and random kernels."""
    key = 'datasets.train'
    if ds.get('mode') != 'GT':
        raise _error(file, f'{key}.mode', f'MANet trains on mode: GT (LR synthesised on the fly), got '
                     f'{ds.get("mode")!r}')
    out: dict = {'name': ds.get('name', 'train'), 'type': 'MMSRGTDataset',
                 **_gt_set_keys(key, ds, file, notes, 'a MANet train set', True, int(opt.get('scale', 4)))}
    out['kernel_size'] = int(opt.get('kernel_size', 21))
    out['random_kernel'] = {'sig_min': opt.get('sig_min', 0.2), 'sig_max': opt.get('sig_max', 4.0),
                            'rate_iso': opt.get('rate_iso', 1.0)}
    out['noise_high'] = float(opt.get('noise_high', 0)) if opt.get('train_noise') else 0.0
    out['jpeg_low'] = int(opt['jpeg_low']) if opt.get('train_jpeg') else None
    out['io_backend'] = {'type': 'lmdb' if _is_lmdb(out['dataroot_gt']) else 'disk'}
    notes.append(f"{key} (mode GT) -> MMSRGTDataset: random {out.get('gt_size')}² crops, random kernels "
                 f"(sig_min {out['random_kernel']['sig_min']}, sig_max {out['random_kernel']['sig_max']}, rate_iso "
                 f"{out['random_kernel']['rate_iso']}), noise up to {out['noise_high']:g}, JPEG from {out['jpeg_low']}")
    return out


PIXEL_LOSSES = {'l1': 'L1Loss', 'l2': 'MSELoss', 'cb': 'CharbonnierLoss'}
LR_SCHEMES = ('MultiStepLR', 'CosineAnnealingLR_Restart')


KERNEL_LOSSES = {'l1': 'l1', 'l2': 'mse'}


def _loss_keys(train: Mapping, which: str | None, file) -> None:
    """The losses a MANet stage computes: the kernel loss in stage 1, the pixel loss in stages 2 and 3 (MANet's
    ``B_model`` builds every criterion that is not ``~``; a stage without that output would crash on it)."""
    kernel_stage = which in MANET_ESTIMATOR_MODELS
    for key in ('pixel_criterion_lr', 'pixel_weight_lr'):
        if train.get(key) is not None:
            raise _error(file, f'train.{key}', 'the LR re-degradation loss is not translated (MANet blurs with '
                         'replicate padding); set it to ~ or write an ssr file with consistency_opt')
    if kernel_stage and train.get('pixel_criterion') is not None:
        raise _error(file, 'train.pixel_criterion', f'{which} estimates kernels only: it has no SR output for a '
                     'pixel loss; set it to ~ and use kernel_criterion')
    if not kernel_stage and train.get('kernel_criterion') is not None:
        raise _error(file, 'train.kernel_criterion', f'{which} is trained with the pixel loss only here; set it to ~ '
                     '(train MANet_s1 for the kernel estimator)')
    if kernel_stage and train.get('kernel_criterion', 'l1') not in KERNEL_LOSSES:
        raise _error(file, 'train.kernel_criterion', f'{train.get("kernel_criterion")!r} not in '
                     f'{sorted(KERNEL_LOSSES)}')


def _kernel_opt(train: Mapping, out: dict, file, notes: list[str]) -> dict:
    """MANet's stage-1 kernel loss, ``kernel_weight * crit(1e4 K_est, 1e4 K) / (h w)`` with ``crit`` the mean over
    every tap of every pixel, as a ``KernelFieldLoss`` (sum over the k*k taps, mean over pixels): the same value for
    ``loss_weight = kernel_weight * 1e4^p / (h w k^2)`` (p = 1 for l1, 2 for l2), h w the LR crop's pixels."""
    criterion = train.get('kernel_criterion', 'l1')
    k = int(out['network_g']['kernel_size'])
    lr_side = int(out['datasets']['train'].get('gt_size') or 0) // int(out['scale'])
    if lr_side < 1:
        raise _error(file, 'datasets.train.GT_size', 'MANet_s1 needs GT_size (its kernel loss is divided '
                     'by the LR crop\'s pixels)')
    power = 1 if criterion == 'l1' else 2
    weight = float(train.get('kernel_weight', 1.0)) * 1e4**power / (lr_side * lr_side * k * k)
    notes.append(f'train.kernel_criterion {criterion}, kernel_weight -> kernel_opt KernelFieldLoss (loss_weight '
                 f'{weight:.6g}: MANet\'s 1e4-scaled mean over the {lr_side}² LR crop)')
    return {'type': 'KernelFieldLoss', 'criterion': KERNEL_LOSSES[criterion], 'loss_weight': weight}


def _cosine_restarts(train: Mapping, file) -> dict:
    """MMSR's ``CosineAnnealingLR_Restart`` (``T_period``; ``restarts``: the iterations where period i + 1 starts;
    ``restart_weights``: one per restart) -> BasicSR's ``CosineAnnealingRestartLR`` (``periods``, one weight per
    period, restarts at their cumulative sums): the periods that run, weights ``[1] + restart_weights``."""
    periods = [int(float(p)) for p in train.get('T_period') or []]
    if not periods:
        raise _error(file, 'train.T_period', 'CosineAnnealingLR_Restart needs T_period')
    restarts = [int(float(r)) for r in train.get('restarts') or []]
    weights = list(train.get('restart_weights') or [1] * len(restarts))
    if len(weights) != len(restarts):
        raise _error(file, 'train.restart_weights', f'{len(weights)} weights for {len(restarts)} restarts: MMSR '
                     'needs one per restart')
    if len(restarts) >= len(periods):
        raise _error(file, 'train.restarts', f'{len(restarts)} restarts need {len(restarts) + 1} T_period entries, '
                     f'got {len(periods)}')
    ends = [sum(periods[:i + 1]) for i in range(len(restarts))]
    if restarts != ends:
        raise _error(file, 'train.restarts', f'restarts {restarts} are not where the T_period periods end ({ends}); '
                     'BasicSR restarts at the end of each period')
    return {'type': 'CosineAnnealingRestartLR', 'periods': periods[:len(restarts) + 1],
            'restart_weights': [1] + weights, 'eta_min': float(train.get('eta_min', 0))}


def _train_sections(opt: Mapping, out: dict, file, notes: list[str], which: str | None = None) -> None:
    """MANet's / DCLS's ``train`` and ``logger`` blocks -> BasicSR's ``train`` / ``logger`` / ``val.val_freq``."""
    train = dict(opt.get('train') or {})
    dcls = which in DCLS_MODELS
    known = {'lr_G', 'beta1', 'beta2', 'weight_decay_G', 'niter', 'warmup_iter', 'lr_scheme', 'lr_steps', 'lr_gamma',
             'restarts', 'restart_weights', 'eta_min', 'T_period', 'pixel_criterion', 'pixel_weight', 'manual_seed',
             'val_freq', 'clear_state'}
    ikc = which in ('SFTMD', 'IKCNet')
    known |= {'lr_E'} if dcls else set() if ikc else {'kernel_criterion', 'kernel_weight', 'pixel_criterion_lr',
                                                       'pixel_weight_lr'}
    unknown = sorted(set(train) - known)
    if unknown:
        label = 'DCLS' if dcls else 'IKC' if ikc else 'MANet'
        raise _error(file, f'train.{unknown[0]}', f'has no meaning in ssr for {"an" if ikc else "a"} {label} training file (known: '
                     f'{", ".join(sorted(known))})')
    if not dcls and not ikc:
        _loss_keys(train, which, file)
    if train.get('clear_state'):
        raise _error(file, 'train.clear_state', 'clearing the optimizer state at restarts is not translated; set it '
                     'to ~')
    for k in ('lr_G', 'niter'):
        if k not in train:
            raise _error(file, f'train.{k}', 'required option is missing')
    optim = {'type': 'Adam', 'lr': float(train['lr_G']),
             'betas': [float(train.get('beta1', 0.9)), float(train.get('beta2', 0.999))],
             'weight_decay': float(train.get('weight_decay_G') or 0.0)}
    scheme = train.get('lr_scheme', 'MultiStepLR')
    if scheme is None and not train.get('lr_steps') and not train.get('restarts'):  # IKC: no scheduler
        scheme = 'MultiStepLR'
        notes.append('train.lr_scheme: ~ -> a constant learning rate (MultiStepLR without milestones)')
    if scheme not in LR_SCHEMES:
        raise _error(file, 'train.lr_scheme', f'{scheme!r} is not translated; expected one of {LR_SCHEMES}')
    restarts, weights = train.get('restarts'), train.get('restart_weights')
    if scheme == 'MultiStepLR':
        scheduler = {'type': 'MultiStepRestartLR' if restarts else 'MultiStepLR',
                     'milestones': list(train.get('lr_steps') or []), 'gamma': float(train.get('lr_gamma', 0.5))}
        if restarts:
            scheduler.update(restarts=list(restarts), restart_weights=list(weights or [1] * len(restarts)))
    else:
        scheduler = _cosine_restarts(train, file)
    out['train'] = {'optim_g': optim, 'scheduler': scheduler, 'total_iter': int(float(train['niter'])),
                    'warmup_iter': int(train.get('warmup_iter', -1) or -1)}
    if dcls and train.get('lr_E') is not None:  # DCLS's B_Model: Restorer at lr_G, Estimator at lr_E
        optim['lr_by_prefix'] = {'Estimator.': float(train['lr_E'])}
        notes.append('train.lr_E -> optim_g.lr_by_prefix {Estimator.: lr_E} (the Restorer runs at lr_G)')
    if which in MANET_ESTIMATOR_MODELS:
        out['train']['kernel_opt'] = _kernel_opt(train, out, file, notes)
        loss_note = 'kernel_opt KernelFieldLoss'
    elif dcls:  # DCLS's B_Model: total = L1(kernel, reformulated kernel) + pixel loss, pixel_weight unused
        criterion = train.get('pixel_criterion', 'l1')
        if criterion not in PIXEL_LOSSES:
            raise _error(file, 'train.pixel_criterion', f'{criterion!r} not in {sorted(PIXEL_LOSSES)}')
        out['train']['pixel_opt'] = {'type': PIXEL_LOSSES[criterion], 'loss_weight': 1.0, 'reduction': 'mean'}
        out['train']['kernel_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
        if 'pixel_weight' in train:
            notes.append('train.pixel_weight: not used (DCLS adds the unweighted pixel loss to the kernel loss)')
        loss_note = f'pixel_opt {PIXEL_LOSSES[criterion]} + kernel_opt L1Loss on the reformulated kernel'
    else:
        criterion = train.get('pixel_criterion', 'l1')
        if criterion not in PIXEL_LOSSES:
            raise _error(file, 'train.pixel_criterion', f'{criterion!r} not in {sorted(PIXEL_LOSSES)}')
        out['train']['pixel_opt'] = {'type': PIXEL_LOSSES[criterion],
                                     'loss_weight': float(train.get('pixel_weight', 1.0)), 'reduction': 'mean'}
        loss_note = f'pixel_opt {PIXEL_LOSSES[criterion]}'
    if 'manual_seed' in train:
        out['manual_seed'] = train['manual_seed']
    if 'val_freq' in train:
        out['val']['val_freq'] = int(float(train['val_freq']))
    out['val']['save_img'] = False
    logger = dict(opt.get('logger') or {})
    unknown = sorted(set(logger) - {'print_freq', 'save_checkpoint_freq'})
    if unknown:
        raise _error(file, f'logger.{unknown[0]}', 'has no meaning in ssr (known: print_freq, save_checkpoint_freq)')
    out['logger'] = {'print_freq': int(float(logger.get('print_freq', 100))),
                     'save_checkpoint_freq': int(float(logger.get('save_checkpoint_freq', 5000))),
                     'use_tb_logger': bool(opt.get('use_tb_logger', False))}
    notes.append(f'train -> optim_g Adam (lr {optim["lr"]:g}), {scheduler["type"]}, total_iter '
                 f'{out["train"]["total_iter"]}, {loss_note}; logger, use_tb_logger mapped')


IKC_TOP = ('name', 'suffix', 'model', 'distortion', 'scale', 'crop_border', 'gpu_ids', 'step', 'kernel_size',
           'code_length', 'sig_min', 'sig_max', 'sig', 'datasets', 'network_G', 'path')
IKC_NET_KEYS = ('which_model_G', 'in_nc', 'out_nc', 'nf', 'nb', 'upscale', 'code_length')


def translate_ikc(opts: Mapping[str, Mapping], files: Mapping[str, str | os.PathLike]) -> tuple[OrderedDict, list[str]]:
    """IKC's three test files (``test_IKC.py -opt_F SFTMD.yml -opt_P Predictor.yml -opt_C Corrector.yml``) as one
    ssr test file: ``BlindSRModel`` with ``IKCNet`` (the Predictor's code, then ``step`` rounds of SFTMD + Corrector;
    each part's ``path.pretrain_model_G`` loaded into it), the Predictor file's test sets (as ``test_IKC.py`` uses),
    Y-channel PSNR / SSIM with its ``crop_border``.

    Args:
        opts: ``{'SFTMD': ..., 'Predictor': ..., 'Corrector': ...}``, the parsed files.
        files: the same keys -> file paths, named in errors.

    Returns:
        The option tree and one note per mapped / unused key.

    Raises:
        OptionError: a file that is not the named IKC network, keys with no meaning, settings the three files
            disagree on.

    A test set without LR images (``dataroot_LQ: ~``; ``test_IKC.py`` draws new random kernels at every run) becomes
    an ``IKCGTDataset`` seeded per image, with the Predictor file's ``kernel_size`` / ``sig_min`` / ``sig_max``. Three
    *training* files (a ``train`` block) are translated by :func:`translate_ikc_training`.
    """
    if any('train' in opts[part] or 'train' in (opts[part].get('datasets') or {}) for part in IKC_MODELS):
        return translate_ikc_training(opts, files)
    notes: list[str] = []
    nets = {}
    for part in IKC_MODELS:
        nets[part] = _ikc_check_file(opts[part], files[part], part, train=False)
    first = files['Predictor']
    for key in ('in_nc', 'code_length'):
        values = {part: nets[part].get(key) for part in IKC_MODELS if nets[part].get(key) is not None}
        if len(set(values.values())) > 1:
            raise _error(first, f'network_G.{key}', f'the three IKC files disagree: {values}')
    nf = {part: nets[part].get('nf') for part in ('Predictor', 'Corrector') if nets[part].get('nf') is not None}
    if len(set(nf.values())) > 1:
        raise _error(files['Corrector'], 'network_G.nf', f'Predictor and Corrector widths differ: {nf}')
    sftmd = nets['SFTMD']
    if sftmd.get('out_nc') not in (None, sftmd.get('in_nc', 3)):
        raise _error(files['SFTMD'], 'network_G.out_nc', 'SFTMD outputs in_nc channels')
    scale = int(opts['Predictor'].get('scale', 4))
    if sftmd.get('upscale') is not None and int(sftmd['upscale']) != scale:
        raise _error(files['SFTMD'], 'network_G.upscale', f'{sftmd["upscale"]} != scale {scale}')
    steps = opts['Corrector'].get('step', opts['Predictor'].get('step'))
    if steps is None:
        raise _error(files['Corrector'], 'step', 'IKC needs the number of correction rounds (step: 7)')
    network = {'type': 'IKCNet', 'in_nc': int(sftmd.get('in_nc', 3)), 'code_len': int(sftmd.get('code_length', 10)),
               'scale': scale, 'nb': int(sftmd.get('nb', 16)), 'nf': int(next(iter(nf.values()), 64)),
               'steps': int(steps)}
    for part, key in (('Predictor', 'predictor_path'), ('SFTMD', 'sftmd_path'), ('Corrector', 'corrector_path')):
        weights = (opts[part].get('path') or {}).get('pretrain_model_G')
        if weights:
            network[key] = weights
            notes.append(f'{part}: path.pretrain_model_G -> network_g.{key}')
    notes.append(f'SFTMD + Predictor + Corrector -> network_g IKCNet ({steps} correction rounds)')
    out: OrderedDict = OrderedDict()
    p_opt = opts['Predictor']
    out['name'] = p_opt.get('name') or os.path.splitext(os.path.basename(str(first)))[0]
    out['model_type'] = 'BlindSRModel'
    gpus = p_opt.get('gpu_ids')
    out['num_gpu'] = len(gpus) if isinstance(gpus, (list, tuple)) else 0
    out['scale'] = scale
    out['network_g'] = network
    datasets: OrderedDict = OrderedDict()
    for phase, ds in (p_opt.get('datasets') or {}).items():
        key = f'datasets.{phase}'
        if not isinstance(ds, Mapping) or ds.get('mode') != 'LQGTker':
            raise _error(first, f'{key}.mode', f'expected IKC\'s LQGTker, got {(ds or {}).get("mode")!r}')
        if not ds.get('dataroot_LQ'):  # test_IKC.py draws new random kernels at every run; ssr seeds them
            numbered = re.fullmatch(r'(test|val)_?(\d+)', str(phase))
            name = f'{numbered[1]}_{numbered[2]}' if numbered else str(phase)
            datasets[name] = _ikc_set(key, ds, p_opt, first, notes, train=False)
            continue
        name, translated = _dataset(str(phase), {**ds, 'mode': 'LQGT'}, first, notes)
        datasets[name] = translated
    if not datasets:
        raise _error(first, 'datasets', 'no test set (datasets.test_1: {mode: LQGTker, dataroot_GT, dataroot_LQ})')
    out['datasets'] = datasets
    for part in ('SFTMD', 'Corrector'):
        if opts[part].get('datasets'):
            notes.append(f'{part}: datasets not used (test_IKC.py tests on the Predictor file\'s sets)')
    synthesised = any(ds['type'] == 'IKCGTDataset' for ds in datasets.values())
    for key in ('kernel_size', 'sig_min', 'sig_max', 'sig'):
        if any(key in opts[part] for part in IKC_MODELS):
            if synthesised and key != 'sig' and key in p_opt:
                notes.append(f'{key} -> the IKCGTDataset sets (random isotropic kernels)')
            elif synthesised and key != 'sig':
                notes.append(f'{key}: not used (the Predictor file\'s settings drive the synthesised sets)')
            else:
                notes.append(f'{key}: not used (LR synthesis; {"random kernels" if key == "sig" else "the sets give their LR images"})')
    crop = p_opt.get('crop_border')
    metric = {'crop_border': scale if crop is None else crop, 'test_y_channel': True}
    out['path'] = OrderedDict()
    out['val'] = {'save_img': True, 'suffix': p_opt.get('suffix'),
                  'metrics': {'psnr': dict(type='calculate_psnr', **metric),
                              'ssim': dict(type='calculate_ssim', **metric)}}
    return out, notes


# ---------------------------------------------------------------------------------------------------------------------
# IKC's training files
IKC_TRAIN_TOP = IKC_TOP + ('use_tb_logger', 'train', 'logger', 'sftmd')
IKC_TEST_PATH_KEYS = ('pretrain_model_G', 'strict_load', 'results_root', 'root', 'log')
IKC_PATH_KEYS = IKC_TEST_PATH_KEYS + ('resume_state',)
PCA_FILE = 'pca_matrix.pth'


def _ikc_set(key: str, ds: Mapping, opt: Mapping, file, notes: list[str], train: bool) -> dict:
    """An IKC ``LQGTker`` set whose LR is synthesised (a training file's sets; a test set without ``dataroot_LQ``)
    -> an ``IKCGTDataset`` with the file's ``kernel_size``, ``sig_min``, ``sig_max``."""
    if not isinstance(ds, Mapping) or ds.get('mode') != 'LQGTker':
        raise _error(file, f'{key}.mode', f'expected IKC\'s LQGTker, got {(ds or {}).get("mode")!r}')
    ds = dict(ds)
    if ds.get('dataroot_LQ') is not None:
        ds['dataroot_LQ'] = None
        notes.append(f'{key}.dataroot_LQ: not used (IKC\'s training scripts synthesise the LR of every set from GT)')
    scale = int(opt.get('scale', 4))
    out: dict = {'name': ds.get('name', key.split('.')[-1]), 'type': 'IKCGTDataset',
                 **_gt_set_keys(key, ds, file, notes, 'an IKC set', train, scale)}
    out.update(kernel_size=int(opt.get('kernel_size', 21)), sig_min=float(opt.get('sig_min', 0.2)),
               sig_max=float(opt.get('sig_max', 4.0)),
               io_backend={'type': 'lmdb' if _is_lmdb(out['dataroot_gt']) else 'disk'})
    notes.append(f'{key} (mode LQGTker) -> IKCGTDataset: random isotropic k={out["kernel_size"]} kernels (std '
                 f'{out["sig_min"]}-{out["sig_max"]}), reflect blur, 8-bit PIL bicubic x1/{scale}' +
                 (f', random {out.get("gt_size")}² crops' if train else ', seeded per image (the same LR at every run)'))
    return out


def _ikc_check_file(opt: Mapping, file, part: str, train: bool = True) -> dict:
    """The top-level, ``network_G`` and ``path`` keys of one of IKC's test / training files (an error naming any
    key with no meaning); returns its ``network_G``."""
    net = opt.get('network_G') if isinstance(opt.get('network_G'), Mapping) else {}
    if net.get('which_model_G') != part:
        raise _error(file, 'network_G.which_model_G', f'expected the {part} file, got {net.get("which_model_G")!r}')
    top, path_keys = (IKC_TRAIN_TOP, IKC_PATH_KEYS) if train else (IKC_TOP, IKC_TEST_PATH_KEYS)
    for key in opt:
        if key not in top:
            raise _error(file, key, f'has no meaning in ssr for an IKC {"training" if train else "test"} file '
                         f'(known: {", ".join(top)})')
    for key in net:
        if key not in IKC_NET_KEYS:
            raise _error(file, f'network_G.{key}', f'has no meaning for IKC (known: {", ".join(IKC_NET_KEYS)})')
    for key in opt.get('path') or {}:
        if key not in path_keys:
            raise _error(file, f'path.{key}', f'has no meaning in ssr (known: {", ".join(path_keys)})')
    code = opt.get('code_length')
    if code is not None and net.get('code_length') is not None and int(code) != int(net['code_length']):
        raise _error(file, 'code_length', f'{code} != network_G.code_length {net["code_length"]}')
    return dict(net)


def _ikc_train_common(opt: Mapping, file, notes: list[str], network: dict) -> OrderedDict:
    """name, model_type, devices, the synthesised sets, path, val and the translated ``train`` / ``logger``."""
    out: OrderedDict = OrderedDict()
    out['name'] = opt.get('name') or os.path.splitext(os.path.basename(str(file)))[0]
    out['model_type'] = 'IKCModel'
    notes.append(f'model: {opt.get("model")} -> model_type: IKCModel')
    gpus = opt.get('gpu_ids')
    out['num_gpu'] = len(gpus) if isinstance(gpus, (list, tuple)) else 0
    out['scale'] = int(opt.get('scale', 4))
    out['network_g'] = network
    datasets: OrderedDict = OrderedDict()
    for phase, ds in (opt.get('datasets') or {}).items():
        phase = str(phase)
        if phase != 'train' and not phase.startswith('val'):
            raise _error(file, f'datasets.{phase}', 'an IKC training file holds one train set and val sets')
        datasets[phase] = _ikc_set(f'datasets.{phase}', ds, opt, file, notes, train=phase == 'train')
    if 'train' not in datasets:
        raise _error(file, 'datasets.train', 'a training file needs a train set (mode: LQGTker, dataroot_GT)')
    out['datasets'] = datasets
    path = dict(opt.get('path') or {})
    out['path'] = OrderedDict()
    if path.get('resume_state') is not None:
        out['path']['resume_state'] = path['resume_state']
    for key in ('results_root', 'root', 'log'):
        if key in path:
            notes.append(f'path.{key}: not used (runs land in experiments/<name>/)')
    crop = opt.get('crop_border')
    # train_SFTMD.py / train_IKC.py validate on RGB PSNR with a border of `scale` pixels cropped
    out['val'] = {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': out['scale'] if
                                                          crop is None else crop, 'test_y_channel': False}}}
    _train_sections(opt, out, file, notes, network['type'])
    if opt.get('sig') is not None:
        notes.append('sig: not used (IKC\'s training scripts draw random kernels)')
    return out


def _translate_ikc_sftmd(opt: Mapping, file) -> tuple[OrderedDict, list[str]]:
    """IKC's ``train_SFTMD.yml`` (``train_SFTMD.py -opt_F``): the non-blind SFTMD trained with the true kernel's
    PCA code, the PCA basis fitted at the start as IKC does."""
    notes: list[str] = []
    net = _ikc_check_file(opt, file, 'SFTMD')
    scale = int(opt.get('scale', 4))
    if net.get('upscale') is not None and int(net['upscale']) != scale:
        raise _error(file, 'network_G.upscale', f'{net["upscale"]} != scale {scale}')
    if net.get('out_nc') not in (None, net.get('in_nc', 3)):
        raise _error(file, 'network_G.out_nc', 'SFTMD outputs in_nc channels')
    network = {'type': 'SFTMD', 'in_nc': int(net.get('in_nc', 3)),
               'code_len': int(net.get('code_length', opt.get('code_length', 10))), 'scale': scale,
               'nb': int(net.get('nb', 16))}
    if net.get('nf') not in (None, 64):
        raise _error(file, 'network_G.nf', 'SFTMD\'s trunk is 64 features wide in IKC (its nf is not read)')
    notes.append(f'network_G (SFTMD) -> network_g (SFTMD, code_len {network["code_len"]}, nb {network["nb"]})')
    out = _ikc_train_common(opt, file, notes, network)
    path = dict(opt.get('path') or {})
    if path.get('pretrain_model_G'):
        out['path']['pretrain_network_g'] = path['pretrain_model_G']
        out['path']['param_key_g'] = None  # IKC saves raw state_dicts
        out['path']['strict_load_g'] = bool(path.get('strict_load', True))
        notes.append('path.pretrain_model_G -> path.pretrain_network_g (param_key_g: ~)')
    train_set = out['datasets']['train']
    out['train']['pca_fit'] = {'num_kernels': 30000, 'kernel_size': train_set['kernel_size'],
                               'sig_min': train_set['sig_min'], 'sig_max': train_set['sig_max']}
    notes.append(f'PCA basis fitted as train_SFTMD.py does (30000 random isotropic kernels), saved as '
                 f'experiments/{out["name"]}/{PCA_FILE} (IKC: ./{PCA_FILE})')
    if 'sftmd' in opt:
        notes.append('sftmd: not used here (train_IKC.py reads it: merge the three files with --ikc)')
    return out, notes


def _ikc_pca_path(sftmd_weights: str, file) -> str:
    """The PCA basis the SFTMD was trained with: ``pca_matrix.pth`` of ssr's SFTMD run (next to its ``models/``),
    else IKC's ``./pca_matrix.pth`` (``train_IKC.py`` reads it from the working directory)."""
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(sftmd_weights)))
    candidates = [os.path.join(run_dir, PCA_FILE), os.path.join('.', PCA_FILE)]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise _error(file, 'sftmd.path.pretrain_model_G', f'found no {PCA_FILE} of this SFTMD (looked in '
                 f'{" and ".join(candidates)}): train the SFTMD first (ssr/train.py -opt train_SFTMD.yml writes '
                 f'experiments/<name>/{PCA_FILE}) or copy IKC\'s {PCA_FILE} there')


def translate_ikc_training(opts: Mapping[str, Mapping],
                           files: Mapping[str, str | os.PathLike]) -> tuple[OrderedDict, list[str]]:
    """IKC's three training files (``train_IKC.py -opt_F train_SFTMD.yml -opt_P train_Predictor.yml -opt_C
    train_Corrector.yml``) as one ssr training file: ``IKCModel`` with ``IKCNet`` (the SFTMD of the SFTMD file's
    ``sftmd`` block, frozen), the Predictor file's sets, iterations, validation and checkpoints (as ``train_IKC.py``
    uses them), each part's optimizer and code loss from its own file, the Corrector's ``step`` rounds.

    Raises:
        OptionError: as :func:`translate_ikc`, and for an SFTMD file without a trained SFTMD (``sftmd.path``), files
            whose schedules differ, or no PCA basis beside the SFTMD weights.
    """
    notes: list[str] = []
    nets = {part: _ikc_check_file(opts[part], files[part], part) for part in ('Predictor', 'Corrector')}
    f_opt, f_file = opts['SFTMD'], files['SFTMD']
    block = f_opt.get('sftmd')
    if not isinstance(block, Mapping):
        raise _error(f_file, 'sftmd', 'train_IKC.py loads the trained SFTMD from this block (network_G, '
                     'path.pretrain_model_G)')
    unknown = sorted(set(block) - {'gpu_ids', 'is_train', 'scale', 'datasets', 'model', 'network_G', 'path'})
    if unknown:
        raise _error(f_file, f'sftmd.{unknown[0]}', 'has no meaning in ssr (known: network_G, path, scale, gpu_ids, '
                     'is_train, model, datasets)')
    ignored = [k for k in ('gpu_ids', 'is_train', 'scale', 'datasets', 'model') if k in block]
    if ignored:
        notes.append(f'sftmd.{", sftmd.".join(ignored)}: not used (only its network_G and weights are)')
    sftmd = dict(block.get('network_G') or {})
    if sftmd.get('which_model_G') != 'SFTMD':
        raise _error(f_file, 'sftmd.network_G.which_model_G', f'expected SFTMD, got {sftmd.get("which_model_G")!r}')
    for key in sftmd:
        if key not in IKC_NET_KEYS:
            raise _error(f_file, f'sftmd.network_G.{key}', f'has no meaning for IKC (known: {", ".join(IKC_NET_KEYS)})')
    weights = (block.get('path') or {}).get('pretrain_model_G')
    if not weights:
        raise _error(f_file, 'sftmd.path.pretrain_model_G', 'train_IKC.py trains the Predictor and Corrector '
                     'against a trained SFTMD: give its weights')
    first = files['Predictor']
    for key in ('in_nc', 'code_length'):
        values = {part: net.get(key) for part, net in (('SFTMD', sftmd), *nets.items()) if net.get(key) is not None}
        if len(set(values.values())) > 1:
            raise _error(first, f'network_G.{key}', f'the three IKC files disagree: {values}')
    nf = {part: nets[part].get('nf') for part in nets if nets[part].get('nf') is not None}
    if len(set(nf.values())) > 1:
        raise _error(files['Corrector'], 'network_G.nf', f'Predictor and Corrector widths differ: {nf}')
    p_opt, c_opt = opts['Predictor'], opts['Corrector']
    scale = int(p_opt.get('scale', 4))
    if sftmd.get('upscale') is not None and int(sftmd['upscale']) != scale:
        raise _error(f_file, 'sftmd.network_G.upscale', f'{sftmd["upscale"]} != scale {scale}')
    steps = c_opt.get('step')
    if steps is None:
        raise _error(files['Corrector'], 'step', 'train_IKC.py runs step correction rounds per batch (step: 7)')
    network = {'type': 'IKCNet', 'in_nc': int(sftmd.get('in_nc', 3)),
               'code_len': int(sftmd.get('code_length', p_opt.get('code_length', 10))), 'scale': scale,
               'nb': int(sftmd.get('nb', 16)), 'nf': int(next(iter(nf.values()), 64)), 'steps': int(steps),
               'sftmd_path': weights}
    notes.append(f'SFTMD: sftmd.path.pretrain_model_G -> network_g.sftmd_path (frozen)')
    for part, key in (('Predictor', 'predictor_path'), ('Corrector', 'corrector_path')):
        path = opts[part].get('path') or {}
        if path.get('pretrain_model_G'):
            network[key] = path['pretrain_model_G']
            notes.append(f'{part}: path.pretrain_model_G -> network_g.{key}')
    out = _ikc_train_common(p_opt, first, notes, network)
    train = out['train']
    train['code_opt'] = train.pop('pixel_opt')  # the Predictor's loss is on codes
    notes[:] = [n.replace('pixel_opt', 'code_opt (the Predictor\'s code loss)') if n.startswith('train -> ') else n
                for n in notes]
    c_out: dict = {'val': {}, 'datasets': {}, 'network_g': {}, 'scale': scale}
    _train_sections(c_opt, c_out, files['Corrector'], [], 'IKCNet')
    if c_out['train']['scheduler'] != train['scheduler']:
        raise _error(files['Corrector'], 'train.lr_scheme', f'the Predictor and Corrector files schedule their '
                     f'learning rates differently ({train["scheduler"]} vs {c_out["train"]["scheduler"]}); ssr runs '
                     'one train.scheduler for both optimizers')
    train['optim_c'] = c_out['train']['optim_g']
    train['corrector_code_opt'] = c_out['train']['pixel_opt']
    out['pca_matrix_path'] = _ikc_pca_path(str(weights), f_file)
    notes.append(f'Corrector: train -> optim_c, corrector_code_opt; its niter, val_freq, manual_seed, logger and '
                 f'datasets not used (train_IKC.py runs on the Predictor file\'s); step {steps} -> network_g.steps')
    notes.append(f'PCA basis: {out["pca_matrix_path"]} -> pca_matrix_path')
    return out, notes
