"""IKC baseline (Gu et al., "Blind Super-Resolution With Iterative Kernel Correction", CVPR 2019).

Provenance: layer order, names and defaults follow the widely used re-implementation yuanjunchai/IKC
(``codes/models/modules/sftmd_arch.py``; the authors released no code). The code here is ssr's own; module names are
kept so its checkpoints (raw state_dicts, one file per network) load strictly, including SFTMD's unused
``sft_branch`` blocks, which its files contain.

IKC works with a kernel *code* (the PCA projection of one blur kernel per image, length L = 10): the Predictor
estimates it from the LR image, SFTMD super-resolves conditioned on it, and the Corrector refines it from the SR
image; :class:`IKCNet` runs that loop (``steps`` rounds, 7 in IKC's test files).

Notation: B images, (h, w) LR size, s the scale, L the code length; images in [0, 1].
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

__all__ = ['IKCCorrector', 'IKCNet', 'IKCOutput', 'IKCPredictor', 'SFTMD']

_FEATURES = 64  # SFTMD's trunk width (fixed in the reference implementation)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


@ARCH_REGISTRY.register()
class IKCPredictor(nn.Module):
    """IKC's kernel-code predictor (``Predictor``): six 5x5 convs (the fourth with stride 2), global average pool.

    Keys: ``ConvNet.{0,2,4,6,8,10}``.

    Args:
        in_nc: image channels. code_len: L. nf: features (``ndf``). bias: biases of the convs after the first.
    """

    def __init__(self, in_nc: int = 3, code_len: int = 10, nf: int = 64, bias: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_nc, nf, 5, 1, 2), _lrelu()]
        for stride, out in ((1, nf), (1, nf), (2, nf), (1, nf), (1, code_len)):
            layers += [nn.Conv2d(nf, out, 5, stride, 2, bias=bias), _lrelu()]
        self.ConvNet = nn.Sequential(*layers)

    def forward(self, lq: Tensor) -> Tensor:
        """(B, in_nc, h, w) -> (B, L) code."""
        return self.ConvNet(lq).mean((2, 3))


@ARCH_REGISTRY.register()
class IKCCorrector(nn.Module):
    """IKC's code corrector (``Corrector``): features of the SR image, fused with the embedded code, pooled to a
    code update; returns ``code + delta``.

    Keys: ``ConvNet.{0,2,...,12}`` (strides 1, 2, 1, 2, 1, 1, 1), ``code_dense.{0,2}``, ``global_dense.{0,2,4}``.

    Args:
        in_nc: image channels. code_len: L. nf: features. bias: biases of every layer.
    """

    def __init__(self, in_nc: int = 3, code_len: int = 10, nf: int = 64, bias: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, stride in enumerate((1, 2, 1, 2, 1, 1, 1)):
            layers += [nn.Conv2d(in_nc if i == 0 else nf, nf, 5, stride, 2, bias=bias), _lrelu()]
        self.ConvNet = nn.Sequential(*layers)
        self.code_dense = nn.Sequential(nn.Linear(code_len, nf, bias=bias), _lrelu(), nn.Linear(nf, nf, bias=bias),
                                        _lrelu())
        self.global_dense = nn.Sequential(nn.Conv2d(2 * nf, 2 * nf, 1, bias=bias), _lrelu(),
                                          nn.Conv2d(2 * nf, nf, 1, bias=bias), _lrelu(),
                                          nn.Conv2d(nf, code_len, 1, bias=bias))
        self.nf = nf

    def forward(self, sr: Tensor, code: Tensor) -> Tensor:
        """(B, in_nc, H, W) SR image and (B, L) code -> (B, L) corrected code."""
        feat = self.ConvNet(sr)
        embedded = self.code_dense(code).view(code.shape[0], self.nf, 1, 1).expand(-1, -1, *feat.shape[-2:])
        return self.global_dense(torch.cat((feat, embedded), dim=1)).mean((2, 3)) + code


class _SFTLayer(nn.Module):
    """Spatial feature transform by the code map: ``feat * sigmoid(mul(cat)) + add(cat)``."""

    def __init__(self, nf: int, code_len: int) -> None:
        super().__init__()
        self.mul_conv1 = nn.Conv2d(code_len + nf, 32, 3, 1, 1)
        self.mul_leaky = nn.LeakyReLU(0.2)
        self.mul_conv2 = nn.Conv2d(32, nf, 3, 1, 1)
        self.add_conv1 = nn.Conv2d(code_len + nf, 32, 3, 1, 1)
        self.add_leaky = nn.LeakyReLU(0.2)
        self.add_conv2 = nn.Conv2d(32, nf, 3, 1, 1)

    def forward(self, feat: Tensor, code_map: Tensor) -> Tensor:
        cat = torch.cat((feat, code_map), dim=1)
        mul = torch.sigmoid(self.mul_conv2(self.mul_leaky(self.mul_conv1(cat))))
        return feat * mul + self.add_conv2(self.add_leaky(self.add_conv1(cat)))


class _SFTResidualBlock(nn.Module):
    def __init__(self, code_len: int) -> None:
        super().__init__()
        self.sft1 = _SFTLayer(_FEATURES, code_len)
        self.sft2 = _SFTLayer(_FEATURES, code_len)
        self.conv1 = nn.Conv2d(_FEATURES, _FEATURES, 3, 1, 1)
        self.conv2 = nn.Conv2d(_FEATURES, _FEATURES, 3, 1, 1)

    def forward(self, feat: Tensor, code_map: Tensor) -> Tensor:
        out = F.relu(self.sft1(feat, code_map))
        out = F.relu(self.sft2(self.conv1(out), code_map))
        return feat + self.conv2(out)


@ARCH_REGISTRY.register()
class SFTMD(nn.Module):
    """IKC's non-blind SR network: SFT residual blocks conditioned on a per-image kernel code.

    Keys: ``conv1..3``, ``SFT-residual{1..nb}.*``, ``sft.*``, ``conv_mid``, ``upscale.{0,3}`` (x4: two x2 pixel
    shuffles) or ``upscale.0``, ``conv_output``, and ``sft_branch.{0..nb-1}.*``: blocks built with code length 10 that
    the forward never uses, kept (frozen) so that the reference checkpoints load strictly.

    Args:
        in_nc: image channels. code_len: L. scale: s. nb: SFT residual blocks. min, max: output clamp range.
    """

    def __init__(self, in_nc: int = 3, code_len: int = 10, scale: int = 4, nb: int = 16, min: float = 0.0,
                 max: float = 1.0) -> None:
        super().__init__()
        if scale < 1 or nb < 1 or code_len < 1:
            raise ValueError(f'scale, nb and code_len must be >= 1, got {scale}, {nb}, {code_len}')
        self.min, self.max, self.nb = float(min), float(max), nb
        self.conv1 = nn.Conv2d(in_nc, _FEATURES, 3, 1, 1)
        self.relu_conv1 = nn.LeakyReLU(0.2)
        self.conv2 = nn.Conv2d(_FEATURES, _FEATURES, 3, 1, 1)
        self.relu_conv2 = nn.LeakyReLU(0.2)
        self.conv3 = nn.Conv2d(_FEATURES, _FEATURES, 3, 1, 1)
        # unused, as in the reference; frozen, so that optimizers and DDP do not wait for its gradients
        self.sft_branch = nn.Sequential(*(_SFTResidualBlock(10) for _ in range(nb))).requires_grad_(False)
        for i in range(nb):
            self.add_module(f'SFT-residual{i + 1}', _SFTResidualBlock(code_len))
        self.sft = _SFTLayer(_FEATURES, code_len)
        self.conv_mid = nn.Conv2d(_FEATURES, _FEATURES, 3, 1, 1)
        if scale == 4:
            self.upscale = nn.Sequential(nn.Conv2d(_FEATURES, _FEATURES * 4, 3, 1, 1), nn.PixelShuffle(2), _lrelu(),
                                         nn.Conv2d(_FEATURES, _FEATURES * 4, 3, 1, 1), nn.PixelShuffle(2), _lrelu())
        else:
            self.upscale = nn.Sequential(nn.Conv2d(_FEATURES, _FEATURES * scale * scale, 3, 1, 1),
                                         nn.PixelShuffle(scale), _lrelu())
        self.conv_output = nn.Conv2d(_FEATURES, in_nc, 9, 1, 4)

    def forward(self, lq: Tensor, code: Tensor) -> Tensor:
        """(B, in_nc, h, w) LR image and (B, L) code -> (B, in_nc, s*h, s*w) SR image clamped to [min, max]."""
        code_map = code.view(*code.shape, 1, 1).expand(-1, -1, *lq.shape[-2:])
        before = self.conv3(self.relu_conv2(self.conv2(self.relu_conv1(self.conv1(lq)))))
        feat = before
        for i in range(self.nb):
            feat = getattr(self, f'SFT-residual{i + 1}')(feat, code_map)
        out = self.conv_output(self.upscale(self.conv_mid(self.sft(feat + before, code_map))))
        return out.clamp(self.min, self.max)


@dataclass
class IKCOutput:
    """Output of :class:`IKCNet`.

    Attributes:
        sr: (B, in_nc, s*h, s*w) SR image of the last round.
        code: (B, L) kernel code after the last correction.
        iterates: SR image of every round (``steps`` of them), first to last.
    """

    sr: Tensor
    code: Tensor
    iterates: list[Tensor]


def _load_part(module: nn.Module, path: str | os.PathLike, name: str) -> None:
    from ssr.utils.checkpoint import read_state_dict

    state, _ = read_state_dict(path, 'params')  # an IKC raw state_dict or an ssr / BasicSR checkpoint
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f'{path}: does not fit IKCNet\'s {name}: missing {missing[:3]}, unexpected {unexpected[:3]}, '
                         f'wrong shape {wrong[:3]}')
    module.load_state_dict(state, strict=True)


@ARCH_REGISTRY.register()
class IKCNet(nn.Module):
    """IKC's blind SR: code = Predictor(LR); then ``steps`` times: SR = SFTMD(LR, code), code = Corrector(SR, code)
    (IKC's ``test_IKC.py``); the result is the last round's SR.

    Keys: ``Predictor.*``, ``SFTMD.*``, ``Corrector.*``. The three reference checkpoints load into their parts at
    construction (``predictor_path``, ``sftmd_path``, ``corrector_path``: IKC's raw state_dicts or ssr checkpoints
    such as ``IKCModel``'s SFTMD run's ``net_g_latest.pth``, strictly).

    Args:
        in_nc, code_len, scale, nb, nf: as the three networks (reference defaults 3, 10, 4, 16, 64).
        steps: correction rounds, >= 1 (``step`` of IKC's test files: 7).
        predictor_path, sftmd_path, corrector_path: optional weight files of the parts.
    """

    OWN_WEIGHT_KEYS = ('predictor_path', 'sftmd_path', 'corrector_path')  # a test needs all three (or one file)

    def __init__(self, in_nc: int = 3, code_len: int = 10, scale: int = 4, nb: int = 16, nf: int = 64,
                 steps: int = 7, predictor_path: str | os.PathLike | None = None,
                 sftmd_path: str | os.PathLike | None = None,
                 corrector_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f'steps must be >= 1, got {steps}')
        self.steps = int(steps)
        self.Predictor = IKCPredictor(in_nc, code_len, nf)
        self.SFTMD = SFTMD(in_nc, code_len, scale, nb)
        self.Corrector = IKCCorrector(in_nc, code_len, nf)
        for path, part, name in ((predictor_path, self.Predictor, 'Predictor'), (sftmd_path, self.SFTMD, 'SFTMD'),
                                 (corrector_path, self.Corrector, 'Corrector')):
            if path:
                _load_part(part, path, name)

    def forward(self, lq: Tensor) -> IKCOutput:
        """(B, in_nc, h, w) LR image in [0, 1] -> :class:`IKCOutput`."""
        code = self.Predictor(lq)
        iterates = []
        for _ in range(self.steps):
            iterates.append(self.SFTMD(lq, code))
            code = self.Corrector(iterates[-1], code)
        return IKCOutput(sr=iterates[-1], code=code, iterates=iterates)

    def adapt_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """ssr's own IKCNet checkpoints load as they are."""
        return dict(state)
