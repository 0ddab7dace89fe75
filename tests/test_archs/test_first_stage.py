"""First stages: exact pixel-unshuffle round trip, loading diffusers VAEs from a local folder, clear errors."""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, VQModel

from ssr.archs.first_stage import DiffusersFirstStage, PixelUnshuffleStage, load_first_stage

TINY_VAE = {'in_channels': 3, 'out_channels': 3, 'block_out_channels': (8, 8), 'layers_per_block': 1,
            'norm_num_groups': 2, 'latent_channels': 4}


def test_pixel_unshuffle_round_trip_is_exact_on_dyadic_values():
    stage = load_first_stage('pixel_unshuffle', factor=4)
    img = torch.randint(0, 257, (2, 3, 16, 12), generator=torch.Generator().manual_seed(0)) / 256
    z = stage.encode(img)
    assert z.shape == (2, 48, 4, 3) and stage.latent_channels == 48 and stage.downscale == 4
    assert z.min() >= -1 and z.max() <= 1
    torch.testing.assert_close(stage.decode(z), img, rtol=0, atol=0)


def test_pixel_unshuffle_round_trip_on_any_float_is_within_rounding():
    stage = PixelUnshuffleStage(2)
    img = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(stage.decode(stage.encode(img)), img, rtol=0, atol=6e-8)


def test_pixel_unshuffle_latent_is_the_rearranged_image():
    img = torch.rand(1, 3, 4, 4)
    z = PixelUnshuffleStage(2).encode(img)
    torch.testing.assert_close(z[0, 0], 2 * img[0, 0, ::2, ::2] - 1)  # channel 0 = (c=0, dy=0, dx=0)


@pytest.mark.parametrize('cls, kind', [(AutoencoderKL, 'autoencoder_kl'), (VQModel, 'vq')], ids=['kl', 'vq'])
def test_load_from_a_local_diffusers_folder(tmp_path, cls, kind):
    torch.manual_seed(0)
    kwargs = {**TINY_VAE}
    if cls is AutoencoderKL:
        kwargs |= {'down_block_types': ('DownEncoderBlock2D',) * 2, 'up_block_types': ('UpDecoderBlock2D',) * 2}
    else:
        kwargs |= {'down_block_types': ('DownEncoderBlock2D',) * 2, 'up_block_types': ('UpDecoderBlock2D',) * 2,
                   'num_vq_embeddings': 16}
    vae = cls(**kwargs)
    vae.save_pretrained(tmp_path / 'vae')
    stage = load_first_stage(kind, tmp_path / 'vae')
    assert isinstance(stage, DiffusersFirstStage) and stage.downscale == 2 and stage.latent_channels == 4
    assert not any(p.requires_grad for p in stage.parameters())
    img = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        z = stage.encode(img)
        out = stage.decode(z)
    assert z.shape == (1, 4, 8, 8) and out.shape == img.shape and 0 <= out.min() and out.max() <= 1
    with torch.no_grad():  # the loaded weights are the saved ones
        x = img * 2 - 1
        ref = vae.encode(x).latents if kind == 'vq' else vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
    torch.testing.assert_close(z, ref)


@pytest.mark.parametrize('kind, writer, sub', [('autoencoder_kl', 'write_sdx4', 'vae'),
                                               ('vq', 'write_ldm_sr', 'vqvae')], ids=['sdx4_vae', 'ldm_sr_vqvae'])
def test_a_pipeline_folder_gives_its_first_stage(tmp_path, monkeypatch, kind, writer, sub):
    from tests.test_archs import tiny_diffusers

    getattr(tiny_diffusers, writer)(tmp_path / 'pipe')
    stage = load_first_stage(kind, tmp_path / 'pipe')  # the pipeline folder: its vae/ or vqvae/
    assert stage.downscale == 4 and stage.latent_channels == (4 if kind == 'autoencoder_kl' else 3)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('SSR_ROOT', str(tmp_path / 'elsewhere'))
    relative = load_first_stage(kind, f'pipe/{sub}')  # relative to the working directory
    torch.testing.assert_close(relative.vae.encoder.conv_in.weight, stage.vae.encoder.conv_in.weight)
    checkout = load_first_stage('autoencoder_kl', 'tests/data/tiny_sdx4')  # else the source checkout
    assert checkout.latent_channels == 4


def test_missing_folder_names_the_path_and_the_option(tmp_path):
    missing = tmp_path / 'no_vae'
    with pytest.raises(FileNotFoundError, match=f"{missing}.*`path` option"):
        load_first_stage('autoencoder_kl', missing)


@pytest.mark.parametrize('call, match', [
    (lambda: load_first_stage('vqgan'), r"'vqgan' not in \('autoencoder_kl', 'vq', 'pixel_unshuffle'\)"),
    (lambda: PixelUnshuffleStage(0), 'factor must be >= 1, got 0'),
    (lambda: PixelUnshuffleStage(4).encode(torch.zeros(1, 3, 10, 8)), r'multiples of 4, got \(1, 3, 10, 8\)'),
    (lambda: PixelUnshuffleStage(4).decode(torch.zeros(1, 12, 2, 2)), r'expected a \(B, 48, h, w\) latent'),
    (lambda: DiffusersFirstStage(torch.nn.Conv2d(3, 3, 1)), 'expected an AutoencoderKL or VQModel, got Conv2d'),
], ids=['kind', 'factor', 'image_size', 'latent_channels', 'not_a_vae'])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
