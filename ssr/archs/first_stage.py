"""First stage of SSR's latent diffusion: image <-> latent, one interface over three kinds.

- ``'autoencoder_kl'``: a diffusers ``AutoencoderKL`` (e.g. the Stable Diffusion VAE, f8) from a local folder;
- ``'vq'``: a diffusers ``VQModel`` (e.g. the LDM-SR x4 first stage, f4) from a local folder;
- ``'pixel_unshuffle'``: :class:`PixelUnshuffleStage`, a parameter-free invertible stage for models trained from
  scratch.

Interface (:class:`FirstStage`): ``encode(img) -> latent``, ``decode(latent) -> img``, ``latent_channels``,
``downscale``. Images are (B, 3, H, W) float in [0, 1] with H, W multiples of ``downscale``; latents are
(B, latent_channels, H / downscale, W / downscale). Learned stages are frozen (``requires_grad=False``, eval mode).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ['FirstStage', 'PixelUnshuffleStage', 'DiffusersFirstStage', 'load_first_stage', 'local_input_path',
           'FIRST_STAGE_KINDS']

FIRST_STAGE_KINDS = ('autoencoder_kl', 'vq', 'pixel_unshuffle')
# sub-folder of a diffusers pipeline folder that holds each kind (SD x4 upscaler: vae/, LDM-SR: vqvae/)
PIPELINE_SUBFOLDERS = {'autoencoder_kl': 'vae', 'vq': 'vqvae'}


def local_input_path(path: str | os.PathLike) -> Path:
    """Where a relative input path (a model folder, an embedding file) is found: the working directory, else the
    SSR root (``$SSR_ROOT``, see :func:`ssr.utils.paths.repo_root`), else the source checkout holding ``ssr/``.

    Returns the path as given (expanded) when it is found nowhere, for the caller's error message.
    """
    from ssr.utils.paths import repo_root

    found = Path(os.path.expanduser(str(path)))
    if found.exists() or found.is_absolute():
        return found
    for root in (repo_root(), Path(__file__).resolve().parents[2]):
        if (root / found).exists():
            return root / found
    return found


class FirstStage(nn.Module):
    """Common interface; subclasses set ``latent_channels`` and ``downscale`` and implement the two maps."""

    latent_channels: int
    downscale: int

    def _check_image(self, img: Tensor) -> None:
        if img.ndim != 4 or img.shape[1] != 3 or img.shape[-2] % self.downscale or img.shape[-1] % self.downscale:
            raise ValueError(f'{type(self).__name__}: expected a (B, 3, H, W) image with H, W multiples of '
                             f'{self.downscale}, got {tuple(img.shape)}')

    def _check_latent(self, z: Tensor) -> None:
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(f'{type(self).__name__}: expected a (B, {self.latent_channels}, h, w) latent, '
                             f'got {tuple(z.shape)}')

    def encode(self, img: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, latent_channels, H / downscale, W / downscale)."""
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        """(B, latent_channels, h, w) -> (B, 3, h * downscale, w * downscale), nominally in [0, 1]."""
        raise NotImplementedError


class PixelUnshuffleStage(FirstStage):
    """Invertible, parameter-free first stage: ``z = pixel_unshuffle(2 * img - 1, factor)``.

    The latent has 3 * factor**2 channels in [-1, 1] (the range of diffusers' image pipelines). ``decode`` is the
    exact inverse ``pixel_shuffle(z, factor) / 2 + 0.5`` without clamping, so ``decode(encode(x))`` returns ``x`` up to
    float rounding of the affine map (bit-exact for dyadic values such as k / 256).

    Args:
        factor: spatial downscale f (4 puts the latent of an x4 HR image on the LR grid).

    Raises:
        ValueError: if ``factor`` < 1.
    """

    def __init__(self, factor: int = 4) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f'PixelUnshuffleStage: factor must be >= 1, got {factor}')
        self.downscale = factor
        self.latent_channels = 3 * factor * factor

    def encode(self, img: Tensor) -> Tensor:
        self._check_image(img)
        return F.pixel_unshuffle(img * 2 - 1, self.downscale)

    def decode(self, z: Tensor) -> Tensor:
        self._check_latent(z)
        return F.pixel_shuffle(z, self.downscale) / 2 + 0.5


class DiffusersFirstStage(FirstStage):
    """A frozen diffusers ``AutoencoderKL`` or ``VQModel`` behind the :class:`FirstStage` interface.

    ``encode`` maps [0, 1] to the VAE's [-1, 1], takes the posterior mode (``AutoencoderKL``; a sample when a
    ``generator`` is given) or the pre-quantisation latent (``VQModel``, quantised again in ``decode``), and multiplies
    by ``scaling_factor``. ``decode`` divides by it and maps back to [0, 1], clamped.

    Args:
        vae: the diffusers model.
        scaling_factor: latent scale; ``None`` = ``vae.config.scaling_factor`` for ``AutoencoderKL`` and 1.0 for
            ``VQModel`` (as diffusers' LDM super-resolution pipeline, which does not scale).
    """

    def __init__(self, vae: nn.Module, scaling_factor: float | None = None) -> None:
        super().__init__()
        from diffusers import AutoencoderKL, VQModel

        if not isinstance(vae, (AutoencoderKL, VQModel)):
            raise ValueError(f'DiffusersFirstStage: expected an AutoencoderKL or VQModel, got {type(vae).__name__}')
        self.vae = vae.eval().requires_grad_(False)
        self.is_vq = isinstance(vae, VQModel)
        cfg = vae.config
        if scaling_factor is None:
            scaling_factor = 1.0 if self.is_vq else float(cfg.scaling_factor)
        self.scaling_factor = scaling_factor
        self.latent_channels = (cfg.vq_embed_dim or cfg.latent_channels) if self.is_vq else cfg.latent_channels
        self.downscale = 2**(len(cfg.block_out_channels) - 1)

    def train(self, mode: bool = True) -> DiffusersFirstStage:
        """Keeps the frozen VAE in eval mode whatever the parent does."""
        super().train(mode)
        self.vae.eval()
        return self

    def encode(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> scaled latent; ``generator`` samples the KL posterior instead of its mode."""
        self._check_image(img)
        x = img * 2 - 1
        if self.is_vq:
            z = self.vae.encode(x).latents
        else:
            dist = self.vae.encode(x).latent_dist
            z = dist.mode() if generator is None else dist.sample(generator)
        return z * self.scaling_factor

    def decode(self, z: Tensor) -> Tensor:
        self._check_latent(z)
        img = self.vae.decode(z / self.scaling_factor).sample
        return (img / 2 + 0.5).clamp(0, 1)


def load_first_stage(kind: str, path: str | Path | None = None, *, factor: int = 4,
                     scaling_factor: float | None = None) -> FirstStage:
    """Builds the first stage named by ``kind``.

    Args:
        kind: one of ``FIRST_STAGE_KINDS``.
        path: local diffusers folder (``config.json`` + weights) for ``'autoencoder_kl'`` / ``'vq'``, or a pipeline
            folder with it as ``vae/`` / ``vqvae/``; ignored for ``'pixel_unshuffle'``. Nothing is downloaded.
            A relative path is looked up as :func:`local_input_path` says.
        factor: downscale of ``'pixel_unshuffle'``.
        scaling_factor: see :class:`DiffusersFirstStage`.

    Returns:
        A :class:`FirstStage`.

    Raises:
        ValueError: on an unknown ``kind``.
        FileNotFoundError: if ``path`` is missing or not a folder for a learned stage.
    """
    if kind not in FIRST_STAGE_KINDS:
        raise ValueError(f'first stage kind {kind!r} not in {FIRST_STAGE_KINDS}')
    if kind == 'pixel_unshuffle':
        return PixelUnshuffleStage(factor)
    from diffusers import AutoencoderKL, VQModel

    folder = None if path is None else local_input_path(path)
    if folder is not None and not (folder / 'config.json').is_file() \
            and (folder / PIPELINE_SUBFOLDERS[kind] / 'config.json').is_file():
        folder = folder / PIPELINE_SUBFOLDERS[kind]
    if folder is None or not folder.is_dir():
        raise FileNotFoundError(f'first stage {kind!r}: no local diffusers folder at path {str(path)!r} (set the '
                                f'first stage `path` option to a folder with config.json and weights, e.g. made by '
                                f'`save_pretrained`, or use kind \'pixel_unshuffle\')')
    cls = AutoencoderKL if kind == 'autoencoder_kl' else VQModel
    return DiffusersFirstStage(cls.from_pretrained(str(folder), local_files_only=True), scaling_factor)
