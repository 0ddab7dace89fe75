"""AMFUNet on a pretrained diffusers UNet (``pretrained_unet``): tiny random LDM-SR (UNet2DModel) and SD-x4-upscaler
(UNet2DConditionModel) folders written by ``save_pretrained`` load through the option; AMF starts as the identity for
every norm; ``freeze_base`` trains AMF and the encoders only; LoRA; the tiny twin of the SD x4 recipe; bad inputs."""
from __future__ import annotations

import copy
import importlib.util
import json

import pytest
import torch
from diffusers import UNet2DConditionModel, UNet2DModel
from safetensors.torch import load_file, save_file

from ssr.archs.amf_unet_arch import AMFUNet
from ssr.utils.options import load_options
from tests.conftest import REPO
from tests.test_archs import tiny_diffusers as td

ENCODERS = {'amf_hidden': 8, 'kernel_in_ch': 9, 'lr_encoder_channels': (8, 8), 'depth_encoder_channels': (4, 4),
            'kernel_encoder_channels': (4, 4)}
NOISE_LEVEL = 5
HAS_PEFT = importlib.util.find_spec('peft') is not None


@pytest.fixture(scope='module')
def folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp('pretrained')
    return {'sd': td.write_sdx4(root / 'sdx4'), 'ldm': td.write_ldm_sr(root / 'ldm_sr')}


def build(folders, kind: str, **overrides) -> AMFUNet:
    torch.manual_seed(0)
    args = {'pretrained_unet': str(folders[kind] / 'unet'), **ENCODERS}
    if kind == 'sd':
        args.update(noise_level=NOISE_LEVEL, prompt_embedding=str(folders['sd'] / 'prompt_embedding.pt'))
    return AMFUNet(**{**args, **overrides})


def inputs(channels: int, batch: int = 2, size: int = 16) -> dict:
    g = torch.Generator().manual_seed(0)
    return {'z_t': torch.randn(batch, channels, size, size, generator=g), 't': torch.tensor([10, 500])[:batch],
            'z_lr': torch.randn(batch, channels, size, size, generator=g),
            'kernel': torch.softmax(torch.randn(batch, 9, size, size, generator=g), dim=1),
            'depth': torch.rand(batch, 1, 4 * size, 4 * size, generator=g),
            'lr': torch.rand(batch, 3, size, size, generator=g)}


def diffusers_output(folders, kind: str, x: dict, train: bool, embedding: torch.Tensor | None = None) -> torch.Tensor:
    """The pretrained UNet's own forward, loaded by diffusers itself, on ``concat(z_t, 2 * lr - 1)`` as diffusers'
    LDMSuperResolutionPipeline / StableDiffusionUpscalePipeline call it."""
    cls = UNet2DConditionModel if kind == 'sd' else UNet2DModel
    unet = cls.from_pretrained(folders[kind] / 'unet', local_files_only=True).train(train)
    sample = torch.cat([x['z_t'], 2 * x['lr'] - 1], dim=1)
    if kind == 'ldm':
        return unet(sample, x['t']).sample
    if embedding is None:
        embedding = td.prompt_embedding()
    batch = sample.shape[0]
    return unet(sample, x['t'], encoder_hidden_states=embedding.expand(batch, -1, -1),
                class_labels=torch.full((batch,), NOISE_LEVEL)).sample


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
@pytest.mark.parametrize('norm', ['batch', 'group', 'none'])
@pytest.mark.parametrize('kind', ['sd', 'ldm'])
def test_at_init_it_is_the_pretrained_unet(folders, kind, norm, train):
    net = build(folders, kind, amf_norm=norm, freeze_base=True).train(train)
    x = inputs(net.config.latent_channels)
    with torch.no_grad():
        expected = diffusers_output(folders, kind, x, train)
        out = net(**x).sample
    assert expected.abs().max() > 0.1  # a real output, not a zero-initialised head
    assert (out - expected).abs().max() < 1e-5


@pytest.mark.parametrize('kind', ['sd', 'ldm'])
def test_the_folder_decides_the_unet_and_its_weights_load(folders, kind):
    net = build(folders, kind)
    cfg = json.loads((folders[kind] / 'unet' / 'config.json').read_text())
    assert net.config.block_out_channels == cfg['block_out_channels']
    assert net.config.latent_channels == cfg['out_channels'] and net.config.lr_input == 'pixels'
    assert type(net.unet).__name__ == cfg['_class_name']
    weights = load_file(str(folders[kind] / 'unet' / 'diffusion_pytorch_model.safetensors'))
    own = {k.removeprefix('unet.'): v for k, v in net.state_dict().items() if k.startswith('unet.')}
    assert own.keys() == weights.keys()  # diffusers' key layout under the prefix unet.
    assert all(torch.equal(own[k], weights[k]) for k in weights)


def test_a_pipeline_folder_and_a_bin_file_load_too(folders, tmp_path):
    folder = tmp_path / 'bin' / 'unet'
    td.ldm_sr_unet().save_pretrained(folder, safe_serialization=False)
    assert (folder / 'diffusion_pytorch_model.bin').is_file()
    net = AMFUNet(pretrained_unet=str(folder.parent), **ENCODERS)  # the pipeline folder: its unet/ is used
    torch.testing.assert_close(net.unet.conv_in.weight, td.ldm_sr_unet().conv_in.weight, rtol=0, atol=0)


def test_zero_prompt_embedding_by_default(folders):
    net = build(folders, 'sd', prompt_embedding=None)
    assert net.prompt_embeds.shape == (1, 1, td.CROSS_DIM) and not net.prompt_embeds.any()
    assert 'prompt_embeds' not in net.state_dict()  # read from its file, never saved
    x = inputs(4)
    with torch.no_grad():
        expected = diffusers_output(folders, 'sd', x, False, torch.zeros(1, 1, td.CROSS_DIM))
        assert (net.eval()(**x).sample - expected).abs().max() < 1e-5
        assert (build(folders, 'sd').eval()(**x).sample - expected).abs().max() > 1e-3  # the file's embedding acts


def test_frozen_base_trains_amf_and_encoders_only_and_leaves_the_identity(folders):
    net = build(folders, 'sd', freeze_base=True, amf_norm='batch').train()
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(('amf.', 'kernel_encoder.', 'depth_encoder.', 'lr_encoder.'))
                             for n in trainable)
    assert {n for n, _ in net.named_parameters()} - trainable == {n for n, _ in net.named_parameters()
                                                                  if n.startswith('unet.')}
    assert any(n.endswith('norm_gate') for n in trainable)
    x = inputs(4)
    with torch.no_grad():
        before = net.eval()(**x).sample
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    unet_before = copy.deepcopy(net.unet.state_dict())
    for _ in range(2):  # step 1 moves the gates (the output convs get no gradient through a zero gate), step 2 both
        net.train()
        out = net(**x)
        (out.sample - torch.randn_like(out.sample)).square().mean().backward()
        opt.step()
        opt.zero_grad()
    assert all(torch.equal(v, net.unet.state_dict()[k]) for k, v in unet_before.items())
    with torch.no_grad():
        assert (net.eval()(**x).sample - before).abs().max() > 1e-4


def test_precomputed_features_carry_the_lr_input(folders):
    net = build(folders, 'sd').eval()
    x = inputs(4)
    with torch.no_grad():
        features = net.encode_conditions(x['kernel'], x['depth'], x['lr'], (16, 16))
        assert len(features) == 4 and features[3][0].shape == (2, 3, 16, 16)
        torch.testing.assert_close(features[3][0], 2 * x['lr'] - 1)
        out = net(x['z_t'], x['t'], x['z_lr'], features=features)
        torch.testing.assert_close(out.sample, net(**x).sample, rtol=0, atol=0)
        assert len(out.features) == 3  # Eq. 5's L1 terms: kernel, depth, LR features only
        with pytest.raises(ValueError, match='features must be the 4 entries of encode_conditions'):
            net(x['z_t'], x['t'], x['z_lr'], features=features[:3])


def test_save_pretrained_round_trip(folders, tmp_path):
    net = build(folders, 'sd', freeze_base=True).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    net.save_pretrained(tmp_path)
    loaded = AMFUNet.from_pretrained(tmp_path).eval()
    x = inputs(4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**x).sample, net(**x).sample, rtol=0, atol=0)


@pytest.mark.skipif(not HAS_PEFT, reason='peft is not installed')
def test_lora_starts_at_zero_and_trains_with_a_frozen_base(folders):
    net = build(folders, 'sd', freeze_base=True, lora_rank=2).eval()
    x = inputs(4)
    with torch.no_grad():
        assert (net(**x).sample - diffusers_output(folders, 'sd', x, False)).abs().max() < 1e-5
    lora = [n for n, p in net.named_parameters() if 'lora_' in n]
    assert lora and all(p.requires_grad for n, p in net.named_parameters() if 'lora_' in n)
    assert not any(p.requires_grad for n, p in net.unet.named_parameters() if 'lora_' not in n)


@pytest.mark.skipif(HAS_PEFT, reason='peft is installed: the option works')
def test_lora_without_peft_says_to_install_it(folders):
    with pytest.raises(ImportError, match=r'lora_rank needs the peft package: pip install peft'):
        build(folders, 'sd', lora_rank=2)


def test_bad_options(folders, tmp_path):
    sd = folders['sd']
    with pytest.raises(FileNotFoundError, match=r"network_g.pretrained_unet: '.*nowhere' does not exist"):
        AMFUNet(pretrained_unet=str(tmp_path / 'nowhere'), **ENCODERS)
    with pytest.raises(FileNotFoundError, match='has no config.json'):
        AMFUNet(pretrained_unet=str(tmp_path), **ENCODERS)
    with pytest.raises(ValueError, match=r"describes a 'AutoencoderKL'; AMFUNet walks"):
        AMFUNet(pretrained_unet=str(sd / 'vae'), **ENCODERS)
    with pytest.raises(ValueError, match=r'block_out_channels = \[32, 64\] differs from the pretrained UNet'):
        build(folders, 'sd', block_out_channels=(32, 64))
    with pytest.raises(ValueError, match=r'takes 7 input channels, not 4 latent \+ C_lr = 4 LR latent'):
        build(folders, 'sd', lr_input='latent')
    with pytest.raises(ValueError, match='prompt_embedding is for a UNet2DConditionModel'):
        build(folders, 'ldm', prompt_embedding=str(sd / 'prompt_embedding.pt'))
    torch.save(torch.zeros(1, 3, td.CROSS_DIM + 1), tmp_path / 'wide.pt')
    with pytest.raises(ValueError, match=rf'must hold one \(1, L, {td.CROSS_DIM}\).*got \(1, 3, 9\)'):
        build(folders, 'sd', prompt_embedding=str(tmp_path / 'wide.pt'))
    with pytest.raises(ValueError, match="lr_input 'rgb' not in"):
        build(folders, 'sd', lr_input='rgb')


def test_weights_that_do_not_match_the_config_raise_naming_the_file(folders, tmp_path):
    folder = tmp_path / 'broken'
    td.sdx4_unet().save_pretrained(folder)
    weights = folder / 'diffusion_pytorch_model.safetensors'
    state = load_file(str(weights))
    state.pop('conv_in.weight')
    save_file(state, str(weights))
    with pytest.raises(RuntimeError, match=r'broken/diffusion_pytorch_model.safetensors does not match '
                                           r'UNet2DConditionModel:\n  missing: conv_in.weight'):
        AMFUNet(pretrained_unet=str(folder), **ENCODERS)
    (weights).unlink()
    with pytest.raises(FileNotFoundError, match='holds none of'):
        AMFUNet(pretrained_unet=str(folder), **ENCODERS)


def test_the_committed_tiny_sdx4_folder_is_what_tiny_diffusers_builds():
    committed = load_file(str(td.FIXTURE / 'unet' / 'diffusion_pytorch_model.safetensors'))
    built = td.sdx4_unet().state_dict()
    assert committed.keys() == built.keys() and all(torch.equal(committed[k], built[k]) for k in built)
    vae = load_file(str(td.FIXTURE / 'vae' / 'diffusion_pytorch_model.safetensors'))
    assert all(torch.equal(vae[k], v) for k, v in td.kl_vae().state_dict().items())
    torch.testing.assert_close(torch.load(td.FIXTURE / 'prompt_embedding.pt', weights_only=True), td.prompt_embedding())


def test_the_tiny_sdx4_twin_trains_a_step_and_samples(tmp_path):
    """The recipe's tiny twin through SSRModel: the optimizer holds exactly the trainable parameters, a training step
    leaves the frozen UNet as loaded, and the pipeline samples an SR image at the HR size."""
    from ssr.models.ssr_model import SSRModel
    from tests.test_models.test_ssr_model import batch

    opt = load_options(REPO / 'tests' / 'data' / 'train_ssr_sdx4_x4.yml', is_train=True, root=tmp_path)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, datasets={})
    opt['network_g']['kernel_in_ch'] = 25  # the 5 x 5 kernels of test_ssr_model.batch
    opt['train']['ema_decay'] = 0
    torch.manual_seed(0)
    model = SSRModel(opt)
    net = model.get_bare_model(model.net_g)
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert {id(p) for g in model.optimizer_g.param_groups for p in g['params']} == {id(p) for p in trainable}
    assert len(trainable) < len(list(net.parameters()))
    unet_before = copy.deepcopy(net.unet.state_dict())
    data = batch(size=8)
    model.feed_data(data)
    model.optimize_parameters(current_iter=1)
    assert all(torch.equal(v, net.unet.state_dict()[k]) for k, v in unet_before.items())
    with torch.no_grad():
        sr = model.pipeline.sample(data['lq'], data['kernel'], data['depth'],
                                   generator=torch.Generator().manual_seed(0))
    assert sr.shape == data['gt'].shape and torch.isfinite(sr).all()
