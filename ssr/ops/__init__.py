"""ssr.ops: the ground floor of ssr — pure tensor code, importable without basicsr, diffusers or a registry.

Every function takes and returns tensors (images float32 in [0, 1], NCHW; kernel fields ``(B, k*k, h, w)`` on the
LR grid; depth ``(B, 1, H, W)`` in [0, 1], near = large) and imports only torch / numpy / cv2:

- :mod:`~ssr.ops.kernels`: Gaussian / generalised / plateau / motion / delta kernels, mixed sampling, moments;
- :mod:`~ssr.ops.kernel_field`: per-pixel kernel fields (uniform, smooth random, depth-driven defocus);
- :mod:`~ssr.ops.sv_blur`: the spatially variant blur + s-fold subsampling (paper Eq. 1) and its exact adjoint;
- :mod:`~ssr.ops.gaussian_field_blur`: a Gaussian kernel field built and applied in one pass (a native CPU kernel
  from :mod:`~ssr.ops.native`, compiled on first use, with the torch path as fallback);
- :mod:`~ssr.ops.noise`, :mod:`~ssr.ops.jpeg`: Gaussian / Poisson noise, JPEG round trips;
- :mod:`~ssr.ops.kernel_pca`: the kernel PCA codes (``KernelPCA``);
- :mod:`~ssr.ops.synthetic_depth`, :mod:`~ssr.ops.depth_utils`: synthetic depth maps, normalisation, resizing;
- :mod:`~ssr.ops.color_correction`: AdaIN / wavelet colour fixes;
- :mod:`~ssr.ops.consistency`: the kernel-consistent projection (CG with a discrepancy stop) and the MAD noise
  estimate.

Higher floors (archs, data, losses, pipelines, models) import from here, never the other way round.
"""
from ssr.ops.color_correction import adain_color_fix, apply_color_fix, wavelet_color_fix
from ssr.ops.consistency import consistent_projection, estimate_noise_sigma
from ssr.ops.depth_utils import depth_dropout, depth_to_lr_grid, normalize_depth
from ssr.ops.jpeg import jpeg_compress, sample_jpeg_quality
from ssr.ops.kernel_field import kernel_field_from_params, uniform_kernel_field
from ssr.ops.kernel_pca import KernelPCA
from ssr.ops.kernels import gaussian_kernels, isotropic_gaussian_kernels, random_mixed_kernels
from ssr.ops.noise import apply_noise, sample_noise_params
from ssr.ops.sv_blur import sv_blur_downsample, sv_blur_downsample_adjoint
from ssr.ops.synthetic_depth import synthetic_depth

__all__ = ['KernelPCA', 'adain_color_fix', 'apply_color_fix', 'apply_noise', 'consistent_projection', 'depth_dropout',
           'depth_to_lr_grid', 'estimate_noise_sigma', 'gaussian_kernels', 'isotropic_gaussian_kernels',
           'jpeg_compress', 'kernel_field_from_params', 'normalize_depth', 'random_mixed_kernels',
           'sample_jpeg_quality', 'sample_noise_params', 'sv_blur_downsample', 'sv_blur_downsample_adjoint',
           'synthetic_depth', 'uniform_kernel_field', 'wavelet_color_fix']
