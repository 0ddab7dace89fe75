"""Tiny random diffusers models in the layouts of LDM-SR (``UNet2DModel`` + ``VQModel``) and of the Stable Diffusion x4
upscaler (``UNet2DConditionModel`` + ``AutoencoderKL``), written with ``save_pretrained`` for the loading tests.

``python -m tests.test_archs.tiny_diffusers`` rewrites ``tests/data/tiny_sdx4/``, the folder the tiny twin of
``options/train_ssr_sdx4_x4.yml`` reads (a test checks that the committed files are what this module builds).
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel, VQModel

CROSS_DIM = 8
NUM_CLASS_EMBEDS = 32  # the SD x4 upscaler has 1000 (its noise levels); the tiny one keeps noise_level < 32
FIXTURE = Path(__file__).resolve().parents[1] / 'data' / 'tiny_sdx4'


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere (diffusers zero-initialises some output convs, which would hide wiring errors)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def ldm_sr_unet(seed: int = 0) -> UNet2DModel:
    """LDM-SR layout: 3 latent + 3 LR pixel channels in, 3 out."""
    torch.manual_seed(seed)
    return _perturbed(UNet2DModel(
        in_channels=6, out_channels=3, block_out_channels=(8, 16), down_block_types=('DownBlock2D', 'AttnDownBlock2D'),
        up_block_types=('AttnUpBlock2D', 'UpBlock2D'), layers_per_block=1, norm_num_groups=4, attention_head_dim=4),
        seed)


def sdx4_unet(seed: int = 0) -> UNet2DConditionModel:
    """SD x4 upscaler layout: 4 latent + 3 LR pixel channels in, 4 out, class embedding of the noise level,
    cross-attention (linear projections, the first attention block cross-attention only, as the upscaler)."""
    torch.manual_seed(seed)
    return _perturbed(UNet2DConditionModel(
        in_channels=7, out_channels=4, block_out_channels=(8, 16),
        down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'),
        up_block_types=('CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'), layers_per_block=1, norm_num_groups=4,
        attention_head_dim=4, cross_attention_dim=CROSS_DIM, num_class_embeds=NUM_CLASS_EMBEDS,
        only_cross_attention=(True, False), use_linear_projection=True), seed)


def vq_model(seed: int = 0) -> VQModel:
    """f4 VQ first stage with 3 latent channels (LDM-SR's layout)."""
    torch.manual_seed(seed)
    return _perturbed(VQModel(
        in_channels=3, out_channels=3, block_out_channels=(8, 8, 8), layers_per_block=1, latent_channels=3,
        num_vq_embeddings=16, vq_embed_dim=3, norm_num_groups=4,
        down_block_types=('DownEncoderBlock2D',) * 3, up_block_types=('UpDecoderBlock2D',) * 3), seed)


def kl_vae(seed: int = 0) -> AutoencoderKL:
    """f4 KL first stage with 4 latent channels (the SD x4 upscaler's layout)."""
    torch.manual_seed(seed)
    return _perturbed(AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 8, 8), layers_per_block=1, latent_channels=4,
        norm_num_groups=4, down_block_types=('DownEncoderBlock2D',) * 3,
        up_block_types=('UpDecoderBlock2D',) * 3, scaling_factor=0.08333), seed)


def prompt_embedding(seed: int = 0, length: int = 5) -> torch.Tensor:
    """A (1, L, CROSS_DIM) stand-in for the empty-prompt text embedding."""
    return torch.randn(1, length, CROSS_DIM, generator=torch.Generator().manual_seed(seed))


def write_sdx4(folder: Path) -> Path:
    """``folder/{unet,vae}/`` and ``folder/prompt_embedding.pt``, as a user's SD x4 upscaler folder is laid out."""
    sdx4_unet().save_pretrained(folder / 'unet')
    kl_vae().save_pretrained(folder / 'vae')
    torch.save(prompt_embedding(), folder / 'prompt_embedding.pt')
    return folder


def write_ldm_sr(folder: Path) -> Path:
    """``folder/{unet,vqvae}/``, as diffusers' LDM super-resolution pipeline folder."""
    ldm_sr_unet().save_pretrained(folder / 'unet')
    vq_model().save_pretrained(folder / 'vqvae')
    return folder


if __name__ == '__main__':
    print(write_sdx4(FIXTURE))
