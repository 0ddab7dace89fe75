"""PCA of blur kernels: the kernel codes (B, L, h, w) that networks condition on instead of (B, k*k, h, w) fields.

Kernels are flattened row-major to k*k vectors, as in the kernel field convention (``ssr.ops.sv_blur``). The PCA
matrix is fitted once (``scripts/fit_kernel_pca.py``) and then lives as buffers of the network that uses it, so it
is saved with that network's ``state_dict``.

Shapes: N kernels, k odd kernel size, L number of components (L <= k*k), B, h, w a field's batch and LR size.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ['KernelPCA']

_FILE_KEYS = ('mean', 'components', 'kernel_size')


class KernelPCA(nn.Module):
    """Linear encoder/decoder of kernel fields by principal components.

    ``encode(K) = components @ (K - mean)`` per pixel and ``decode(z) = components.T @ z + mean``. Because every
    training kernel sums to 1, the centred kernels sum to 0, so the components are orthogonal to the all-ones vector
    and a decoded kernel keeps sum 1 (up to float rounding) whatever the code.

    Buffers (in ``state_dict``): ``mean`` (k*k,) and ``components`` (L, k*k) with orthonormal rows, float32.
    Non-persistent: ``explained_variance_ratio`` (L,), NaN until set by :meth:`fit` or :meth:`load`.

    Args:
        kernel_size: odd k >= 1.
        num_components: L in [1, k*k].

    Raises:
        ValueError: for an even or non-positive ``kernel_size`` or an out-of-range ``num_components``.
    """

    def __init__(self, kernel_size: int = 21, num_components: int = 15) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be odd and >= 1, got {kernel_size}')
        kk = kernel_size * kernel_size
        if not 1 <= num_components <= kk:
            raise ValueError(f'num_components must be in [1, k*k = {kk}] for kernel_size {kernel_size}, '
                             f'got {num_components}')
        self.register_buffer('mean', torch.zeros(kk))
        self.register_buffer('components', torch.zeros(num_components, kk))
        self.register_buffer('explained_variance_ratio', torch.full((num_components,), float('nan')), persistent=False)

    @property
    def kernel_size(self) -> int:
        return math.isqrt(self.mean.numel())

    @property
    def num_components(self) -> int:
        return self.components.shape[0]

    @classmethod
    def fit(cls, kernels: Tensor, num_components: int = 15, *, weights: Tensor | None = None) -> KernelPCA:
        """Fits the mean and the top ``num_components`` principal directions (in float64).

        The directions are the leading eigenvectors of the (weighted) k*k x k*k scatter matrix of the centred
        kernels, which are the right singular vectors ``torch.linalg.svd`` would give for the N x k*k data matrix;
        the scatter matrix route costs O(N k^4) once instead of an SVD of a tall matrix.

        Args:
            kernels: (N, k, k) or (N, k*k) kernels, k odd, N >= 2; each normally sums to 1.
            num_components: L in [1, min(k*k, N)].
            weights: optional (N,) positive per-kernel weights of the squared reconstruction error. Uniform
                (plain PCA) by default; ``1 / ||K||^2`` minimises the mean *relative* error instead (narrow kernels
                have large norms and otherwise dominate the fit).

        Returns:
            A fitted :class:`KernelPCA` on the CPU with float32 buffers. Component signs are fixed (largest-magnitude
            entry positive) so that refitting the same data gives the same buffers.

        Raises:
            ValueError: on a bad shape, too few kernels, bad weights or an out-of-range ``num_components``.
        """
        if kernels.dim() == 3 and kernels.shape[1] == kernels.shape[2]:
            kernels = kernels.reshape(kernels.shape[0], -1)
        if kernels.dim() != 2:
            raise ValueError(f'kernels must be (N, k, k) or (N, k*k), got shape {tuple(kernels.shape)}')
        n, kk = kernels.shape
        k = math.isqrt(kk)
        if k * k != kk or k % 2 == 0:
            raise ValueError(f'kernels have {kk} taps (shape {tuple(kernels.shape)}); expected k*k with k odd')
        if n < 2 or num_components > n:
            raise ValueError(f'need N >= max(2, num_components) kernels, got N = {n} for num_components '
                             f'{num_components}')
        pca = cls(kernel_size=k, num_components=num_components)
        x = kernels.detach().to(device='cpu', dtype=torch.float64)
        if weights is None:
            w = torch.ones(n, dtype=torch.float64)
        else:
            w = weights.detach().to(device='cpu', dtype=torch.float64)
            if w.shape != (n,) or not bool((w > 0).all()) or not bool(w.isfinite().all()):
                raise ValueError(f'weights must be ({n},) positive and finite, got shape {tuple(w.shape)}')
        mean = (w[:, None] * x).sum(0) / w.sum()
        centred = (x - mean) * w.sqrt()[:, None]
        eigvals, eigvecs = torch.linalg.eigh(centred.t() @ centred)  # ascending
        eigvals, comps = eigvals.flip(0).clamp_min(0), eigvecs.flip(1).t()[:num_components]
        signs = comps.gather(1, comps.abs().argmax(1, keepdim=True)).sign()
        comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
        pca.mean.copy_(mean)
        pca.components.copy_(comps)
        total = eigvals.sum().clamp_min(torch.finfo(torch.float64).tiny)
        pca.explained_variance_ratio.copy_(eigvals[:num_components] / total)
        return pca

    def _check_field(self, x: Tensor, channels: int, name: str, expected: str) -> None:
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(f'{name} must be {expected} with {channels} channels, got shape {tuple(x.shape)}')

    def encode(self, field: Tensor) -> Tensor:
        """Projects a kernel field onto the components.

        Args:
            field: (B, k*k, h, w) kernel field, any float dtype, on this module's device.

        Returns:
            (B, L, h, w) codes in ``field``'s dtype.
        """
        self._check_field(field, self.mean.numel(), 'field', '(B, k*k, h, w)')
        b, kk, h, w = field.shape
        comps = self.components.to(field.dtype)
        # comps @ (x - mean) without materialising a centred copy of the (possibly large) field.
        codes = torch.matmul(comps, field.reshape(b, kk, h * w)) - (comps @ self.mean.to(field.dtype)).view(-1, 1)
        return codes.view(b, -1, h, w)

    def decode(self, codes: Tensor) -> Tensor:
        """Maps codes back to a kernel field.

        Args:
            codes: (B, L, h, w) codes.

        Returns:
            (B, k*k, h, w) kernel field in ``codes``' dtype (not clamped: taps may be slightly negative).
        """
        self._check_field(codes, self.num_components, 'codes', '(B, L, h, w)')
        b, _, h, w = codes.shape
        field = torch.matmul(self.components.to(codes.dtype).t(), codes.reshape(b, -1, h * w))
        return (field + self.mean.to(codes.dtype).view(-1, 1)).view(b, -1, h, w)

    def forward(self, field: Tensor) -> Tensor:
        """Same as :meth:`encode`."""
        return self.encode(field)

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``{'mean', 'components', 'kernel_size', 'explained_variance_ratio'}`` atomically (temp + rename).

        Args:
            path: target ``.pth`` file; its directory must exist. An existing file is replaced.
        """
        path = Path(path)
        state = {
            'mean': self.mean.detach().cpu().clone(),
            'components': self.components.detach().cpu().clone(),
            'kernel_size': self.kernel_size,
            'explained_variance_ratio': self.explained_variance_ratio.detach().cpu().clone(),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                torch.save(state, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> KernelPCA:
        """Reads a file written by :meth:`save` (``torch.load(weights_only=True)``).

        Args:
            path: ``.pth`` file with keys ``mean`` (k*k,), ``components`` (L, k*k), ``kernel_size`` (int) and,
                optionally, ``explained_variance_ratio`` (L,).

        Returns:
            A :class:`KernelPCA` on the CPU.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if the file cannot be read as a kernel PCA or its keys / shapes are inconsistent.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'kernel PCA file {path} not found; create it with scripts/fit_kernel_pca.py')
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:
            raise ValueError(f'could not read kernel PCA file {path}: {e}') from e
        missing = [key for key in _FILE_KEYS if not isinstance(state, dict) or key not in state]
        if missing:
            raise ValueError(f'kernel PCA file {path} lacks key(s) {missing}; expected {list(_FILE_KEYS)}')
        k, mean, comps = int(state['kernel_size']), state['mean'], state['components']
        if mean.shape != (k * k,) or comps.dim() != 2 or comps.shape[1] != k * k:
            raise ValueError(f'kernel PCA file {path}: mean {tuple(mean.shape)} / components {tuple(comps.shape)} '
                             f'do not match kernel_size {k}')
        pca = cls(kernel_size=k, num_components=comps.shape[0])
        pca.load_state_dict({'mean': mean, 'components': comps})
        ratio = state.get('explained_variance_ratio')
        if ratio is not None and ratio.shape == (comps.shape[0],):
            pca.explained_variance_ratio.copy_(ratio)
        return pca
