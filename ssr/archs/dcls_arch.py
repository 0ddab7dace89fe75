"""DCLS baseline (Luo et al., "Deep Constrained Least Squares for Blind Image Super-Resolution", CVPR 2022).

Provenance: layer order, names and hyper-parameters follow the official definitions in megvii-research/DCLS-SR
(``codes/config/DCLS/models/modules/dcls_arch.py``, ``.../module_util.py``, ``codes/utils/dcls_utils.py``,
commit 3314f42e5ffa60962406a9764838fb0c490d1e28; Apache-2.0). The code here is ssr's own; module names are kept so
official checkpoints (raw state_dicts with ``Estimator.*`` and ``Restorer.*``) load strictly. The official
deconvolution calls ``torch.rfft`` (removed in torch 1.8) and ``.cuda()``; here it uses ``torch.fft`` on the inputs'
device, in float32.

Notation (every docstring of this module):

=========  ===========================================================================================================
symbol     meaning
=========  ===========================================================================================================
B          batch size
h, w       LR height and width (>= 7); s = ``upscale``
k          kernel size (11, 21 or 31 with the official filter chains)
C'         deconvolution channels, nf // reduction
Y, X       a feature map and its deconvolution; K, P the kernel's and the gradient filter's transfer functions
=========  ===========================================================================================================

Degradation convention (differs from ssr's, DESIGN.md §3): DCLS blurs the HR image with one *centred* kernel
(Gaussian centre at index k // 2, sigmas as std; ``F.conv2d`` with reflect padding), then downsamples with MATLAB
bicubic ``imresize(1/s)``. Its estimator does not predict that HR kernel: it is trained (``CorrectionLoss`` in
``models/modules/loss.py``) towards the *reformulated* kernel, the LR-space kernel k_LR with
``LR_blurred = k_LR * bicubic(HR)`` found by FFT division (``normkernel_to_downkernel``), averaged over colour channels,
masked and sparsified; one (B, 1, k, k) kernel per image, centred at k // 2. That is what the restorer deconvolves the
LR features with. Neither is an ssr kernel field (per-LR-pixel HR-space kernels centred at (s - 1) / 2 followed by
plain subsampling), so no conversion is offered.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import default_init_weights
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

__all__ = ['FILTER_STRUCTURES', 'DCLSNet', 'DCLSOutput', 'clsq_deconvolution', 'dcls_official_to_ssr', 'psf_to_otf']

# Filter chains of the kernel estimator per kernel size (official DCLS.__init__); their sizes shrink a
# (2k - 1)-wide delta response to k: sum(f - 1) = k - 1.
FILTER_STRUCTURES: dict[int, tuple[int, ...]] = {11: (7, 3, 3, 1), 21: (11, 7, 5, 1), 31: (11, 9, 7, 5, 3)}
# Channels between the estimator's generated filters (official G_chan).
_KERNEL_CHANNELS = 16
# Residual blocks of the restorer's feature extractor (fixed in the official Restorer).
_FEATURE_BLOCKS = 3
# Smallest LR side: the gradient-filter branch applies three unpadded 3x3 convs.
_MIN_SIZE = 7


# ---------------------------------------------------------------------------------------------------------------------
# Constrained least squares deconvolution (pure functions)
# ---------------------------------------------------------------------------------------------------------------------
def psf_to_otf(psf: Tensor, size: tuple[int, int]) -> Tensor:
    """Optical transfer function of a centred PSF on an (H, W) periodic grid (MATLAB ``psf2otf``).

    Args:
        psf: (..., p, q) filters, p and q odd; tap [p // 2, q // 2] is the origin.
        size: (H, W), H >= p, W >= q.

    Returns:
        (..., H, W // 2 + 1) complex ``rfft2`` of the zero-padded PSF rolled so that its centre tap sits at (0, 0).
    """
    p, q = psf.shape[-2:]
    if p % 2 == 0 or q % 2 == 0 or p > size[0] or q > size[1]:
        raise ValueError(f'psf must be odd-sized and fit in {size}, got {(p, q)}')
    padded = F.pad(psf, (0, size[1] - q, 0, size[0] - p))
    return torch.fft.rfft2(torch.roll(padded, shifts=(-(p // 2), -(q // 2)), dims=(-2, -1)))


def clsq_deconvolution(feat: Tensor, kernel: Tensor, grad_filter: Tensor) -> Tensor:
    """Constrained least squares deconvolution per channel, periodic boundary (DCLS paper Eq. 8).

    ``X = conj(K) Y / (|K|^2 + |P|^2)``: the minimiser of ``||k * x - y||^2 + ||p * x||^2`` for circular convolution
    ``*``. No regulariser weight and no epsilon (as the official code): where |K|^2 + |P|^2 = 0 the result is not
    finite. Computed in float32 and returned in ``feat``'s dtype.

    Args:
        feat: (B, C, H, W) blurred features y.
        kernel: (B, 1 or C, p, p) blur kernels k, p odd <= H, W; usually sum 1.
        grad_filter: (B, C, q, q) regularising filters p, q odd.

    Returns:
        (B, C, H, W) deconvolved features x.
    """
    size = feat.shape[-2:]
    k_f = psf_to_otf(kernel.float(), size)
    p_f = psf_to_otf(grad_filter.float(), size)
    denominator = k_f.real.square() + k_f.imag.square() + p_f.real.square() + p_f.imag.square()
    x_f = k_f.conj() * torch.fft.rfft2(feat.float()) / denominator
    return torch.fft.irfft2(x_f, s=size).to(feat.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# Official checkpoint layout (the names match; only the DataParallel prefix goes)
# ---------------------------------------------------------------------------------------------------------------------
_FROM_OFFICIAL = ((re.compile(r'^module\.'), ''), )


def dcls_official_to_ssr(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An official DCLS ``.pth`` state_dict -> :class:`DCLSNet` keys (identical names, ``module.`` stripped)."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _FROM_OFFICIAL:
            key = pattern.sub(repl, key, count=1)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Blocks (official names)
# ---------------------------------------------------------------------------------------------------------------------
class _ResidualBlock(nn.Module):
    """``x + conv2(LeakyReLU_0.1(conv1(x)))`` (DCLS ``ResidualBlock_noBN``)."""

    def __init__(self, *, num_feat: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.relu = nn.LeakyReLU(0.1, inplace=True)
        # Small residual branches at start (official initialize_weights(..., 0.1)).
        default_init_weights([self.conv1, self.conv2], 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class _CALayer(nn.Module):
    """Channel attention: ``x * sigmoid(conv(relu(conv(avgpool(x)))))``."""

    def __init__(self, *, channels: int, reduction: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(self.avg_pool(x))


class _DPCAB(nn.Module):
    """Dual-path block: path a (nf1, the deconvolved features) is updated from both paths, path b (nf2) from itself."""

    def __init__(self, *, nf1: int, nf2: int, ca_reduction: int) -> None:
        super().__init__()
        self.body1 = nn.Sequential(
            nn.Conv2d(nf1, nf1, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(nf1, nf1, 3, padding=1))
        self.body2 = nn.Sequential(
            nn.Conv2d(nf2, nf2, 3, padding=1), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(nf2, nf2, 3, padding=1))
        self.CA_body1 = nn.Sequential(
            nn.LeakyReLU(0.1), nn.Conv2d(nf1 + nf2, nf1, 3, padding=1),
            _CALayer(channels=nf1, reduction=ca_reduction))
        self.CA_body2 = _CALayer(channels=nf2, reduction=ca_reduction)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        f1, f2 = self.body1(a), self.body2(b)
        return a + self.CA_body1(torch.cat((f1, f2), dim=1)), b + self.CA_body2(f2)


class _DPCAG(nn.Module):
    """A group of DPCABs whose output is *doubled*.

    The official group adds its input back (``y[0] = x[0] + y[0]``), but its blocks update the Python list they are
    given in place and return it, so ``x`` and ``y`` are the same list and the "skip" doubles the blocks' output.
    Pretrained weights depend on this, so it is kept.
    """

    def __init__(self, *, nf1: int, nf2: int, nb: int, ca_reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*[_DPCAB(nf1=nf1, nf2=nf2, ca_reduction=ca_reduction) for _ in range(nb)])

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        for block in self.body:
            a, b = block(a, b)
        return 2 * a, 2 * b


class _CLS(nn.Module):
    """Reduce features, predict a zero-mean 3x3 gradient filter per channel, deconvolve with the kernel, expand."""

    def __init__(self, *, nf: int, reduction: int) -> None:
        super().__init__()
        nf2 = nf // reduction
        self.reduce_feature = nn.Conv2d(nf, nf2, 1)
        self.grad_filter = nn.Sequential(
            nn.Conv2d(nf2, nf2, 3), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(nf2, nf2, 3), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(nf2, nf2, 3), nn.AdaptiveAvgPool2d((3, 3)),
            nn.Conv2d(nf2, nf2, 1))
        self.expand_feature = nn.Conv2d(nf2, nf, 1)

    def forward(self, x: Tensor, kernel: Tensor) -> Tensor:
        """(B, nf, h, w) features and (B, 1, k, k) kernels -> (B, nf, h, w)."""
        feat = self.reduce_feature(x)
        grad = torch.exp(self.grad_filter(feat))
        grad = grad - grad.mean(dim=(2, 3), keepdim=True)
        k = kernel.shape[-1]
        # Replicate padding by k keeps the periodic wrap-around of the FFT away from the image.
        padded = F.pad(feat, (k, k, k, k), mode='replicate')
        clear = clsq_deconvolution(padded, kernel, grad)[..., k:-k, k:-k]
        return self.expand_feature(clear)


class _KernelEstimator(nn.Module):
    """Official ``Estimator``: CNN -> latent -> a chain of generated filters applied to a delta -> one kernel."""

    def __init__(self, *, in_nc: int, nf: int, latent: int, num_blocks: int, kernel_size: int,
                 filter_structures: Sequence[int]) -> None:
        super().__init__()
        self.kernel_size, self.filter_structures = kernel_size, tuple(filter_structures)
        self.head = nn.Sequential(nn.Conv2d(in_nc, nf, 7, padding=3))
        self.body = nn.Sequential(nn.Sequential(*[_ResidualBlock(num_feat=nf) for _ in range(num_blocks)]))
        self.tail = nn.Sequential(
            nn.Conv2d(nf, nf, 3), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(nf, nf, 3),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Conv2d(nf, latent, 1), nn.Flatten())
        n = len(self.filter_structures)
        self.dec = nn.ModuleList([
            nn.Linear(latent, _KERNEL_CHANNELS * (in_nc if i in (0, n - 1) else _KERNEL_CHANNELS) * f**2)
            for i, f in enumerate(self.filter_structures)])
        # Every conv and linear layer at plain Kaiming (the official ``self.apply(initialize_weights)`` re-initialises
        # the residual blocks too, overriding their 0.1 scale).
        default_init_weights(self, 1)

    def forward(self, lq: Tensor) -> Tensor:
        """(B, C, h, w) LR -> (B, 1, k, k) kernels summing to 1 (not necessarily non-negative)."""
        b, c = lq.shape[:2]
        feat = self.head(lq)
        latent = self.tail(self.body(feat) + feat)
        n, g = len(self.filter_structures), _KERNEL_CHANNELS
        # Filter i maps c_in -> c_out channels per image, with c_in/c_out = C at the ends of the chain and G inside.
        shapes = [(g if i < n - 1 else c, c if i == 0 else g) for i in range(n)]
        response = torch.ones(1, b * c, 1, 1, dtype=lq.dtype, device=lq.device)
        for i, (dec, f, (c_out, c_in)) in enumerate(zip(self.dec, self.filter_structures, shapes)):
            weight = dec(latent).reshape(b * c_out, c_in, f, f)
            response = F.conv2d(response, weight, padding=self.kernel_size - 1 if i == 0 else 0, groups=b)
        kernel = response.reshape(b, c, self.kernel_size, self.kernel_size).flip(2, 3).mean(dim=1, keepdim=True)
        return kernel / kernel.sum(dim=(2, 3), keepdim=True)


class _Restorer(nn.Module):
    """Official ``Restorer``: features -> (CLS deconvolution path, plain path) -> DPCA groups -> fusion -> upscale."""

    def __init__(self, *, in_nc: int, nf: int, nb: int, ng: int, scale: int, reduction: int,
                 ca_reduction: int) -> None:
        super().__init__()
        nf2 = nf // reduction
        self.conv_first = nn.Conv2d(in_nc, nf, 3, padding=1)
        self.feature_block = nn.Sequential(*[_ResidualBlock(num_feat=nf) for _ in range(_FEATURE_BLOCKS)])
        self.head1 = nn.Conv2d(nf, nf2, 3, padding=1)
        self.head2 = _CLS(nf=nf, reduction=reduction)
        self.body = nn.Sequential(*[_DPCAG(nf1=nf, nf2=nf2, nb=nb, ca_reduction=ca_reduction) for _ in range(ng)])
        self.fusion = nn.Conv2d(nf + nf2, nf, 3, padding=1)
        if scale == 1:
            self.upscale = nn.Conv2d(nf, in_nc, 3, padding=1)
        elif scale == 4:  # two x2 stages, as officially
            self.upscale = nn.Sequential(
                nn.Conv2d(nf, nf * 4, 3, padding=1), nn.PixelShuffle(2),
                nn.Conv2d(nf, nf * 4, 3, padding=1), nn.PixelShuffle(2),
                nn.Conv2d(nf, in_nc, 3, padding=1))
        else:
            self.upscale = nn.Sequential(
                nn.Conv2d(nf, nf * scale**2, 3, padding=1), nn.PixelShuffle(scale), nn.Conv2d(nf, in_nc, 3, padding=1))

    def forward(self, lq: Tensor, kernel: Tensor) -> Tensor:
        """(B, C, h, w) LR and (B, 1, k, k) kernels -> (B, C, s*h, s*w) in [0, 1]."""
        feat = self.conv_first(lq)
        shallow = self.feature_block(feat)
        a, b = self.head2(shallow, kernel), self.head1(shallow)
        for group in self.body:
            a, b = group(a, b)
        out = self.upscale(self.fusion(torch.cat((b, a), dim=1)) + feat)
        return out.clamp(0, 1)


# ---------------------------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class DCLSOutput:
    """Output of :class:`DCLSNet`.

    Attributes:
        sr: (B, in_nc, s*h, s*w) SR image clamped to [0, 1].
        kernel: (B, 1, k, k) estimated reformulated (LR-space) kernel per image, centred at k // 2, summing to 1
            (module docstring); differentiable w.r.t. the estimator only.
    """

    sr: Tensor
    kernel: Tensor


@ARCH_REGISTRY.register()
class DCLSNet(nn.Module):
    """DCLS blind SR: a kernel estimator and a restorer that deconvolves LR features with the estimated kernel.

    Keys: ``Estimator.{head,body,tail,dec}.*`` and ``Restorer.{conv_first,feature_block,head1,head2,body,fusion,
    upscale}.*``, as in official checkpoints (loaded through :meth:`adapt_state_dict`). The defaults are the released
    x4 setting-1 configuration (``train_setting1_x4.yml``: nb 10, input_para 256, k 21); the official class defaults
    are nb 16, input_para 128; setting 2 x4 uses kernel_size 31.

    Args:
        nf: features of the restorer and the estimator.
        nb: DPCA blocks per group.
        ng: DPCA groups.
        in_nc: image channels (input and output).
        reduction: nf // reduction channels in the deconvolution path and the second DPCA path.
        upscale: s >= 1.
        input_para: length of the estimator's latent code.
        kernel_size: k; 11, 21, 31 have official filter chains, others need ``filter_structures``.
        filter_structures: filter sizes of the estimator's chain, sum(f - 1) = k - 1; default from
            :data:`FILTER_STRUCTURES`.
        estimator_blocks: residual blocks in the estimator body (3 officially).
        ca_reduction: channel-attention reduction inside the DPCA blocks (4 officially, independent of
            ``reduction``).

    Raises:
        ValueError: for an even ``kernel_size``, a kernel size without a filter chain, a chain whose sizes do not
            shrink to k, ``upscale < 1``, a size < 1, or ``nf // reduction < ca_reduction``.
    """

    def __init__(self, nf: int = 64, nb: int = 10, ng: int = 5, in_nc: int = 3, reduction: int = 4, upscale: int = 4,
                 input_para: int = 256, kernel_size: int = 21, filter_structures: Sequence[int] | None = None,
                 estimator_blocks: int = 3, ca_reduction: int = 4) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be odd and >= 1, got {kernel_size}')
        if filter_structures is None:
            if kernel_size not in FILTER_STRUCTURES:
                raise ValueError(f'kernel_size {kernel_size} has no default filter chain (known: '
                                 f'{sorted(FILTER_STRUCTURES)}); pass filter_structures')
            filter_structures = FILTER_STRUCTURES[kernel_size]
        if len(filter_structures) < 2 or min(filter_structures) < 1 or \
                sum(f - 1 for f in filter_structures) != kernel_size - 1:
            raise ValueError(f'filter_structures {tuple(filter_structures)} must hold >= 2 sizes >= 1 with '
                             f'sum(f - 1) = kernel_size - 1 = {kernel_size - 1}')
        if upscale < 1:
            raise ValueError(f'upscale must be >= 1, got {upscale}')
        if min(nf, nb, ng, in_nc, input_para, estimator_blocks) < 1:
            raise ValueError(f'nf, nb, ng, in_nc, input_para, estimator_blocks must be >= 1, got '
                             f'{(nf, nb, ng, in_nc, input_para, estimator_blocks)}')
        if reduction < 1 or nf // reduction < ca_reduction or ca_reduction < 1:
            raise ValueError(f'nf // reduction = {nf} // {reduction} must be >= ca_reduction = {ca_reduction} >= 1 '
                             '(channel attention needs one hidden channel)')
        self.kernel_size, self.scale = kernel_size, upscale
        # Capitalised attribute names are the official checkpoint prefixes.
        self.Estimator = _KernelEstimator(in_nc=in_nc, nf=nf, latent=input_para, num_blocks=estimator_blocks,
                                          kernel_size=kernel_size, filter_structures=filter_structures)
        self.Restorer = _Restorer(in_nc=in_nc, nf=nf, nb=nb, ng=ng, scale=upscale, reduction=reduction,
                                  ca_reduction=ca_reduction)

    def forward(self, lq: Tensor) -> DCLSOutput:
        """Estimates the kernel of ``lq`` (B, in_nc, h, w) in [0, 1], h, w >= 7, and super-resolves it.

        The restorer receives the kernel detached (as officially): the estimator learns only from a kernel loss.
        """
        if min(lq.shape[-2:]) < _MIN_SIZE:
            raise ValueError(f'DCLSNet needs LR sides >= {_MIN_SIZE}, got {tuple(lq.shape[-2:])}')
        kernel = self.Estimator(lq)
        return DCLSOutput(sr=self.Restorer(lq, kernel.detach()), kernel=kernel)

    def adapt_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Accepts official DCLS files; see :func:`dcls_official_to_ssr`."""
        return dcls_official_to_ssr(state)
