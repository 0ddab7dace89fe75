"""IKC's kernel codes: the PCA basis it fits before training and the codes its networks predict and condition on.

IKC (yuanjunchai/IKC, ``codes/train_SFTMD.py`` and ``codes/utils/util.py``) fits its basis once, before SFTMD is
trained, from 30000 random isotropic kernels: the first L left singular vectors of the *centred* (k*k, N) data
matrix, a (k*k, L) matrix with orthonormal columns saved as ``pca_matrix.pth``. The code of a kernel is its flattened
taps times that matrix, with *no* mean subtracted (``PCAEncoder``); the Predictor and Corrector are trained to
output it and SFTMD is conditioned on it. ssr's :class:`~ssr.ops.kernel_pca.KernelPCA` subtracts a mean, so IKC's
codes are computed here. The code is ssr's own.

Shapes: N kernels, k odd kernel size (taps flattened row-major), L the code length, B images.
"""
from __future__ import annotations

import math
import os

import torch
from torch import Tensor

__all__ = ['fit_ikc_pca', 'ikc_codes', 'read_ikc_pca']


def fit_ikc_pca(kernels: Tensor, code_length: int) -> Tensor:
    """IKC's PCA basis of ``kernels``: the leading ``code_length`` principal directions of the centred kernels.

    Computed in float64 from the (k*k, k*k) scatter matrix (its eigenvectors are the left singular vectors IKC's
    ``torch.svd`` of the centred (k*k, N) matrix gives); each column's sign is fixed (largest-magnitude entry
    positive), so refitting the same kernels gives the same matrix.

    Args:
        kernels: (N, k, k) or (N, k*k), N >= 2.
        code_length: L in [1, k*k].

    Returns:
        (k*k, L) float32 matrix with orthonormal columns, ordered by decreasing variance.

    Raises:
        ValueError: fewer than two kernels or ``code_length`` out of range.
    """
    flat = kernels.reshape(kernels.shape[0], -1).double()
    n, taps = flat.shape
    if n < 2:
        raise ValueError(f'need at least 2 kernels to fit a PCA basis, got {n}')
    if not 1 <= code_length <= taps:
        raise ValueError(f'code_length must be in [1, {taps}] for {taps}-tap kernels, got {code_length}')
    centred = flat - flat.mean(0)
    _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    basis = vectors.flip(1)[:, :code_length]
    signs = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))
    return (basis * signs).float().contiguous()


def ikc_codes(kernels: Tensor, basis: Tensor) -> Tensor:
    """IKC's kernel codes: ``flatten(kernel) @ basis`` (no mean subtracted).

    Args:
        kernels: (B, k, k), (B, 1, k, k) or (B, k*k), one kernel per image.
        basis: (k*k, L) from :func:`fit_ikc_pca` or an IKC ``pca_matrix.pth``.

    Returns:
        (B, L) codes in ``basis``'s dtype, on ``kernels``' device.

    Raises:
        ValueError: the kernels do not have k*k taps.
    """
    flat = kernels.reshape(kernels.shape[0], -1)
    if flat.shape[1] != basis.shape[0]:
        raise ValueError(f'kernels have {flat.shape[1]} taps, the PCA basis {basis.shape[0]} rows')
    return flat.to(basis.dtype) @ basis.to(flat.device)


def read_ikc_pca(path: str | os.PathLike, code_length: int) -> Tensor:
    """An IKC ``pca_matrix.pth`` (a (k*k, L) tensor, as ``train_SFTMD.py`` saves it), checked against the code length.

    Raises:
        ValueError: the file is missing, holds no tensor, or has another shape (the message names the file).
    """
    if not os.path.isfile(path):
        raise ValueError(f'{path}: IKC PCA matrix not found (IKC\'s SFTMD training writes it; give its path)')
    obj = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(obj, Tensor) or obj.dim() != 2:
        raise ValueError(f'{path}: holds a {type(obj).__name__}, not IKC\'s (k*k, L) PCA matrix')
    taps = obj.shape[0]
    if obj.shape[1] != code_length or math.isqrt(taps) ** 2 != taps:
        raise ValueError(f'{path}: PCA matrix of shape {tuple(obj.shape)}, expected (k*k, {code_length}) for '
                         f'code_length {code_length}')
    return obj.float()
