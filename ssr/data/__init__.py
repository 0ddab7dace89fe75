"""ssr data: the degradation engine (pure tensor code) and the registered datasets (``*_dataset.py``).

The engine's entry points are re-exported here: ``from ssr.data import gaussian_kernels, sv_blur_downsample``.
"""
from os import path as osp

from ssr.data.degradation import SVDegradation
from ssr.data.kernel_field import kernel_field_from_params, uniform_kernel_field
from ssr.data.kernel_pca import KernelPCA
from ssr.data.kernels import gaussian_kernels, isotropic_gaussian_kernels, random_mixed_kernels
from ssr.data.sv_blur import sv_blur_downsample, sv_blur_downsample_adjoint
from ssr.utils.registry_scan import import_modules

__all__ = ['SVDegradation', 'KernelPCA', 'gaussian_kernels', 'isotropic_gaussian_kernels', 'random_mixed_kernels',
           'kernel_field_from_params', 'uniform_kernel_field', 'sv_blur_downsample', 'sv_blur_downsample_adjoint']

_modules = import_modules(__name__, osp.dirname(osp.abspath(__file__)), '_dataset')
