"""Fitting the kernel PCA (DESIGN.md §3 "Kernel codes") on a sample of Gaussian blur kernels.

The file :meth:`~ssr.ops.kernel_pca.KernelPCA.save` writes holds ``{'mean', 'components', 'kernel_size',
'explained_variance_ratio'}``. Kernels are anisotropic Gaussians with sigma1, sigma2 ~ U[sigma range] (standard
deviations in HR pixels), theta ~ U[0, pi), a fraction of them isotropic, all centred at (s - 1) / 2. CLI:
``scripts/fit_kernel_pca.py``.
"""
from __future__ import annotations


import torch
from torch import Tensor

from ssr.ops.kernel_pca import KernelPCA
from ssr.ops.kernels import sample_gaussian_kernels

__all__ = ['WEIGHTINGS', 'relative_reconstruction_error', 'fit_kernel_pca']

WEIGHTINGS = ('none', 'inverse-norm')


def relative_reconstruction_error(pca: KernelPCA, kernels: Tensor) -> Tensor:
    """(N,) ||K - decode(encode(K))|| / ||K|| for (N, k, k) kernels, computed in float64."""
    x = kernels.reshape(1, kernels.shape[0], -1).permute(0, 2, 1).unsqueeze(-1).double()  # (1, k*k, N, 1) field
    return ((pca.decode(pca.encode(x)) - x).norm(dim=1) / x.norm(dim=1)).flatten()


def fit_kernel_pca(*, num_components: int, num_samples: int, num_holdout: int, kernel_size: int = 21, scale: int = 4,
                   sigma_range: tuple[float, float] = (0.2, 4.0), iso_prob: float = 0.2, weighting: str = 'none',
                   seed: int = 0, device: torch.device | str = 'cpu') -> tuple[KernelPCA, Tensor]:
    """Samples training and held-out kernels and fits the PCA.

    Args:
        num_components: L.
        num_samples: training kernels.
        num_holdout: held-out kernels for the reconstruction error.
        kernel_size: k, odd.
        scale: s; kernels are centred at (s - 1) / 2.
        sigma_range: range of both standard deviations, HR pixels.
        iso_prob: fraction of isotropic kernels.
        weighting: ``'none'`` (plain PCA, least squared error) or ``'inverse-norm'`` (weights 1 / ||K||^2, which
            minimises the mean relative error instead).
        seed: seed of the kernel sampler.
        device: where the kernels are built (the fit runs on the CPU).

    Returns:
        The fitted PCA and the held-out relative errors (num_holdout,).

    Raises:
        ValueError: an unknown ``weighting``.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f'weighting {weighting!r} not in {WEIGHTINGS}')
    generator = torch.Generator(device=device).manual_seed(seed)
    kernels = sample_gaussian_kernels(num_samples + num_holdout, kernel_size, scale, tuple(sigma_range), iso_prob,
                                      generator, device).cpu()
    train, held_out = kernels[:num_samples], kernels[num_samples:]
    weights = train.flatten(1).norm(dim=1).pow(-2) if weighting == 'inverse-norm' else None
    pca = KernelPCA.fit(train, num_components, weights=weights)
    return pca, relative_reconstruction_error(pca, held_out)
