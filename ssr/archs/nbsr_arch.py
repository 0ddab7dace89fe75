"""NBSR: the RRDB-based non-blind SR network of SSR's SVKR loop (paper §3.2, Algorithm 1), conditioned on kernels.

NBSR *is* BasicSR's ``RRDBNet`` (a subclass, so the trunk keeps exactly its parameter names: ``conv_first``,
``body.{i}.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``) plus:

- ``pca``: a :class:`~ssr.ops.kernel_pca.KernelPCA` whose buffers turn the kernel field (B, k*k, h, w) into codes
  (B, L, h, w); saved with the weights.
- ``sft.{i}``: SFT layers conditioned on the codes (and a constant noise-level map), applied at the LR feature
  level: ``sft.{i}`` before RRDB block i for i < num_block, and ``sft.{num_block}`` on the trunk output after
  ``conv_body`` (before the long skip). As in SFTMD / MANet, each block of the trunk sees the degradation.

The SFT layers are zero-initialised, so at step 0 NBSR computes exactly what the plain RRDBNet with the same trunk
weights computes, for any kernel; a pretrained RRDBNet checkpoint (e.g. RealSR-DF2K converted by
``scripts/convert_realsr_ncnn.py``) therefore loads into the trunk and keeps its behaviour (see
:meth:`NBSR.adapt_state_dict`).

Notation: B batch, h x w LR size, s scale, k kernel size, L PCA components, C = num_feat.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn
from torch.nn import functional as F

from ssr.archs.sft import SFTLayer
from ssr.ops.kernel_pca import KernelPCA
from ssr.ops.kernels import sample_gaussian_kernels

__all__ = ['NBSR', 'default_kernel_pca']

_SCALES = (2, 4)
_OWN_PREFIXES = ('sft.', 'pca.')
# Built-in PCA sample (the same distribution as scripts/fit_kernel_pca.py's defaults).
_PCA_SAMPLES = 4000
_PCA_SEED = 0
_PCA_SIGMA_RANGE = (0.2, 4.0)  # standard deviations, HR pixels
_PCA_ISO_PROB = 0.2


def default_kernel_pca(kernel_size: int = 21, scale: int = 4, num_components: int = 15) -> KernelPCA:
    """Fits a kernel PCA deterministically on a fixed-seed sample of anisotropic Gaussian kernels.

    Sample: 4000 kernels from ``torch.Generator().manual_seed(0)``; sigma1, sigma2 ~ U[0.2, 4.0] (standard
    deviations, HR pixels), theta ~ U[0, pi), 20% isotropic (sigma2 = sigma1), centred at (s - 1) / 2
    (:func:`ssr.ops.kernels.gaussian_kernels`), built in float64.

    Args:
        kernel_size: k, odd.
        scale: s, sets the kernel centre.
        num_components: L.

    Returns:
        A fitted :class:`KernelPCA` on the CPU (a new module each call; the fit is cached per argument tuple).
    """
    mean, components, ratio = _default_pca_buffers(kernel_size, scale, num_components)
    pca = KernelPCA(kernel_size, num_components)
    pca.load_state_dict({'mean': mean, 'components': components})  # copies: the cached tensors stay untouched
    pca.explained_variance_ratio.copy_(ratio)
    return pca


@lru_cache(maxsize=8)
def _default_pca_buffers(kernel_size: int, scale: int, num_components: int) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(_PCA_SEED)
    kernels = sample_gaussian_kernels(_PCA_SAMPLES, kernel_size, scale, _PCA_SIGMA_RANGE, _PCA_ISO_PROB, generator)
    pca = KernelPCA.fit(kernels, num_components)
    return pca.mean.clone(), pca.components.clone(), pca.explained_variance_ratio.clone()


@ARCH_REGISTRY.register()
class NBSR(RRDBNet):
    """RRDBNet with per-pixel kernel (and noise-level) conditioning through zero-initialised SFT layers.

    Args:
        num_in_ch: image channels in (3 for RGB).
        num_out_ch: image channels out.
        scale: s, 4 or 2 (2 uses RRDBNet's pixel-unshuffle input; the codes are then area-resized to h/2 x w/2).
        num_feat: C, trunk channels.
        num_block: RRDB blocks.
        num_grow_ch: growth channels of the dense blocks.
        kernel_size: k, odd size of the input kernels.
        pca_components: L, kernel code length.
        pca_path: file written by ``scripts/fit_kernel_pca.py``; None fits :func:`default_kernel_pca` instead. Either
            way the PCA is a buffer, overwritten by a checkpoint that holds ``pca.*``.
        use_noise_level: add the noise standard deviation as one more condition channel.
        sft_hidden_ch: hidden width of the SFT layers.
        trunk_path: a BasicSR RRDBNet checkpoint (e.g. the converted RealSR weights) loaded strictly into the trunk
            at construction. A network built this way also accepts a *delta* checkpoint holding only ``sft.*`` and
            ``pca.*`` (see :meth:`adapt_state_dict`), so trained NBSR weights can ship without the trunk.

    Raises:
        ValueError: on an unsupported scale, a bad size, or a PCA file whose k / L differ from the options.
        FileNotFoundError: if ``pca_path`` does not exist.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32, kernel_size: int = 21, pca_components: int = 15,
                 pca_path: str | None = None, use_noise_level: bool = True, sft_hidden_ch: int = 32,
                 trunk_path: str | None = None) -> None:
        if scale not in _SCALES:
            raise ValueError(f'NBSR: scale must be one of {_SCALES}, got {scale}')
        for name, value in (('num_feat', num_feat), ('num_block', num_block), ('num_grow_ch', num_grow_ch),
                            ('sft_hidden_ch', sft_hidden_ch)):
            if value < 1:
                raise ValueError(f'NBSR: {name} must be >= 1, got {value}')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'NBSR: kernel_size must be odd and >= 1, got {kernel_size}')
        if not 1 <= pca_components <= kernel_size * kernel_size:
            raise ValueError(f'NBSR: pca_components must be in [1, k*k = {kernel_size**2}], got {pca_components}')
        super().__init__(num_in_ch, num_out_ch, scale=scale, num_feat=num_feat, num_block=num_block,
                         num_grow_ch=num_grow_ch)
        self.kernel_size, self.use_noise_level = kernel_size, use_noise_level

        if pca_path is None:
            self.pca = default_kernel_pca(kernel_size, scale, pca_components)
        else:
            self.pca = KernelPCA.load(pca_path)
            if (self.pca.kernel_size, self.pca.num_components) != (kernel_size, pca_components):
                raise ValueError(f'NBSR: pca_path {pca_path} holds k={self.pca.kernel_size}, '
                                 f'L={self.pca.num_components}; the options ask for kernel_size={kernel_size}, '
                                 f'pca_components={pca_components}')
        cond_ch = pca_components + int(use_noise_level)
        self.sft = nn.ModuleList(
            SFTLayer(feat_ch=num_feat, cond_ch=cond_ch, hidden_ch=sft_hidden_ch, zero_init=True)
            for _ in range(num_block + 1))
        self.trunk_path = trunk_path
        if trunk_path is not None:
            from ssr.utils.checkpoint import load_state_dict_strict, read_state_dict

            state, _ = read_state_dict(trunk_path, 'params')
            load_state_dict_strict(self, self.adapt_state_dict(state), source=f'trunk_path {trunk_path}')
        # Initialisation: the trunk keeps RRDBNet's own (PyTorch defaults, dense-block convs x0.1); the SFT layers
        # are zero-initialised above (identity), so that NBSR == RRDBNet at step 0 for any kernel.

    def _condition(self, lq: Tensor, kernel: Tensor, noise_level: Tensor | None) -> Tensor:
        """(B, L [+ 1], h, w) condition: kernel codes, then the noise std broadcast as a constant map."""
        b, _, h, w = lq.shape
        kk = self.kernel_size * self.kernel_size
        if kernel.dim() != 4 or tuple(kernel.shape) != (b, kk, h, w):
            raise ValueError(f'NBSR: kernel must be (B, k*k, h, w) = {(b, kk, h, w)} for lq {tuple(lq.shape)}, '
                             f'got {tuple(kernel.shape)}')
        if self.scale == 2 and (h % 2 or w % 2):
            raise ValueError(f'NBSR: scale 2 pixel-unshuffles the input, so h and w must be even; got {(h, w)}')
        cond = self.pca.encode(kernel.to(lq.dtype))
        if not self.use_noise_level:
            return cond
        if noise_level is None:
            noise_level = lq.new_zeros(b)
        noise_level = torch.as_tensor(noise_level, dtype=lq.dtype, device=lq.device).reshape(-1)
        if noise_level.numel() != b:
            raise ValueError(f'NBSR: noise_level must be (B,) = ({b},), got shape {tuple(noise_level.shape)}')
        return torch.cat((cond, noise_level.view(b, 1, 1, 1).expand(b, 1, h, w)), dim=1)

    def forward(self, lq: Tensor, kernel: Tensor, noise_level: Tensor | None = None) -> Tensor:
        """Super-resolves ``lq`` knowing its per-pixel kernels.

        Args:
            lq: (B, num_in_ch, h, w) LR image, RGB in [0, 1]; h, w even when s = 2.
            kernel: (B, k*k, h, w) kernel field on the LR grid, each pixel's taps summing to 1.
            noise_level: (B,) noise std in [0, 1] units; None means noise-free (0). Ignored without
                ``use_noise_level``.

        Returns:
            (B, num_out_ch, s*h, s*w) SR image (not clamped).

        Raises:
            ValueError: on shape mismatches.
        """
        # 1. Condition and trunk input (same as RRDBNet: pixel-unshuffle for s = 2).
        cond = self._condition(lq, kernel, noise_level)
        feat = F.pixel_unshuffle(lq, 2) if self.scale == 2 else lq
        feat = self.conv_first(feat)

        # 2. Modulated trunk: SFT before every RRDB block and on the trunk output.
        body = feat
        for sft, block in zip(self.sft, self.body):
            body = block(sft(body, cond))
        feat = feat + self.sft[-1](self.conv_body(body), cond)

        # 3. Upsampling, as RRDBNet.
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode='nearest')))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode='nearest')))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))

    def adapt_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Accepts a plain BasicSR ``RRDBNet`` state_dict as the trunk, keeping this network's SFT and PCA.

        A state holding only ``sft.`` / ``pca.`` keys is a delta: with ``trunk_path`` set, the trunk entries come from
        this network (loaded from ``trunk_path``). Any other state with an ``sft.`` / ``pca.`` key is a full NBSR
        checkpoint and is returned unchanged (the caller's strict load checks it). Otherwise its keys and shapes must match the trunk exactly; the ``sft.*`` / ``pca.*``
        entries are then filled from this network's current values.

        Args:
            state: state_dict read from a checkpoint (container and ``module.`` already stripped).

        Returns:
            A state_dict with every key of this network.

        Raises:
            ValueError: for an RRDBNet layout that does not match the trunk; the message lists the missing and
                unexpected trunk keys and the wrong shapes.
        """
        own = self.state_dict()
        if state and all(key.startswith(_OWN_PREFIXES) for key in state):
            if self.trunk_path is None:
                raise ValueError('NBSR: the checkpoint holds only sft./pca. keys (a delta without the trunk); build the '
                                 'network with trunk_path pointing at the RRDBNet checkpoint it was trained on')
            get_root_logger().info(f'NBSR: SFT / PCA delta on the trunk of {self.trunk_path}.')
            return {**{k: v for k, v in own.items() if not k.startswith(_OWN_PREFIXES)}, **state}
        if any(key.startswith(_OWN_PREFIXES) for key in state):
            return state
        trunk = {key: value for key, value in own.items() if not key.startswith(_OWN_PREFIXES)}
        missing = sorted(set(trunk) - set(state))
        unexpected = sorted(set(state) - set(trunk))
        wrong = sorted(f'{key}: checkpoint {tuple(state[key].shape)} vs trunk {tuple(trunk[key].shape)}'
                       for key in set(trunk) & set(state) if tuple(state[key].shape) != tuple(trunk[key].shape))
        if missing or unexpected or wrong:
            lines = ['NBSR: the checkpoint has no sft./pca. keys but does not match the RRDBNet trunk '
                     f'(num_feat={self.conv_first.out_channels}, num_block={len(self.body)}, scale={self.scale}):']
            for title, keys in (('missing', missing), ('unexpected', unexpected), ('wrong shape', wrong)):
                if keys:
                    shown = ', '.join(keys[:20]) + (f' ... ({len(keys)} in all)' if len(keys) > 20 else '')
                    lines.append(f'  {title}: {shown}')
            raise ValueError('\n'.join(lines))
        get_root_logger().info(f'NBSR: trunk loaded from an RRDBNet checkpoint ({len(trunk)} tensors); the SFT '
                               'layers and the kernel PCA keep their current values.')
        adapted = dict(state)
        adapted.update({key: value.detach().clone() for key, value in own.items() if key.startswith(_OWN_PREFIXES)})
        return adapted

    @staticmethod
    def delta_state_dict(state: dict[str, Tensor], trunk: dict[str, Tensor]) -> dict[str, Tensor]:
        """The inverse of :meth:`adapt_state_dict`'s delta branch: the ``sft.*`` / ``pca.*`` entries of a full NBSR
        state_dict whose trunk equals ``trunk`` bit for bit, SFT weights in float16 and the PCA in its own dtype.

        A network built with ``trunk_path`` pointing at ``trunk``'s file rebuilds ``state`` from the delta (up to the
        float16 rounding of the SFT weights).

        Args:
            state: a full NBSR state_dict.
            trunk: the BasicSR ``RRDBNet`` state_dict the NBSR was trained on.

        Returns:
            ``{key: tensor}`` for the ``sft.`` / ``pca.`` keys of ``state`` only.

        Raises:
            ValueError: a trunk key is missing, extra or different (the trunk was fine-tuned: export it whole).
        """
        rest = {k: v for k, v in state.items() if not k.startswith(_OWN_PREFIXES)}
        if set(rest) != set(trunk):
            raise ValueError(f'trunk keys differ: missing {sorted(set(trunk) - set(rest))[:5]}, '
                             f'extra {sorted(set(rest) - set(trunk))[:5]}')
        changed = [k for k in rest if not torch.equal(rest[k], trunk[k])]
        if changed:
            raise ValueError(f'the NBSR trunk differs from --trunk in {len(changed)} tensors (e.g. {changed[0]}): it '
                             'was fine-tuned, so a delta cannot rebuild it; export the whole checkpoint instead')
        return {k: (v if k.startswith('pca.') else v.half()) for k, v in state.items() if k.startswith(_OWN_PREFIXES)}
