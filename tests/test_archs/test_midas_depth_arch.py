"""MiDaS / DPT depth wrapper: official key layout, key maps, backbone numerics against timm, the wrapper's contract.

Big variants are built on the ``meta`` device where only keys and shapes matter (instant, no memory); numerics use
tiny timm configs wrapped by the same adapters, checked against timm's own forward with forward hooks; the wrapper's
contract uses the real MiDaS small (21 M parameters, fast). Real big variants run once each in ``slow`` tests.
"""
from __future__ import annotations

import gzip
import json
import re
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
import timm
import torch
from timm.layers import HybridEmbed, StdConv2dSame
from timm.models.beit import Beit
from timm.models.resnetv2 import ResNetV2
from timm.models.swin_transformer_v2 import SwinTransformerV2
from timm.models.vision_transformer import VisionTransformer
from torch.nn import functional as F

import ssr  # noqa: F401
from ssr.archs.dpt import MidasDepthNet
from ssr.archs.midas_backbones import BeitBackbone, EfficientNetLiteBackbone, Swin2Backbone, ViTBackbone
from ssr.archs.midas_checkpoint import (SWIN_LEGACY_SENTINEL, midas_beit_to_ssr, midas_swin_to_ssr, ssr_to_midas_beit,
                                        ssr_to_midas_swin, ssr_to_midas_timm1, unwrap_state_dict)
from ssr.archs.midas_depth_arch import MIDAS_VARIANTS, MiDaSDepth, build_midas_net, midas_input_size
from ssr.utils.checkpoint import load_state_dict_strict
from tests.conftest import photo
from tests.test_archs.arch_testing import ArchTesterMixin, checkpoint_model

KEYS_JSON = Path(__file__).resolve().parents[1] / 'data' / 'midas_keys' / 'midas_official_keys.json.gz'
SHARED_KEYS = Path(__file__).resolve().parents[3] / 'shared' / 'reference' / 'midas_keys'
SHARED_FILES = {
    'dpt_hybrid_384': 'dpt_hybrid_384.txt',
    'dpt_large_384': 'dpt_large_384.txt',
    'dpt_beit_large_512': 'dpt_beit_large_512_as_built_by_timm1.txt',
    'dpt_swin2_tiny_256': 'dpt_swin2_tiny_256_as_built_by_timm1.txt',
}
VARIANTS = tuple(MIDAS_VARIANTS)
BIG_VARIANTS = ('dpt_hybrid_384', 'dpt_large_384', 'dpt_beit_large_512', 'dpt_swin2_tiny_256')
SMALL = 'midas_v21_small_256'


def to_official(variant: str, sd: dict, buffers: dict) -> dict:
    """The inverse key map of ``variant`` (ssr -> official file layout)."""
    family = MIDAS_VARIANTS[variant].family
    if family == 'beit':
        return ssr_to_midas_beit(sd, buffers)
    if family == 'swin2':
        return ssr_to_midas_swin(sd, buffers)
    return ssr_to_midas_timm1(sd)


def shapes(sd: dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in sd.items()}


def meta_net(variant: str) -> MidasDepthNet:
    with torch.device('meta'):
        return build_midas_net(variant)


# ---------------------------------------------------------------- tiny timm models behind the real adapters


def tiny_vit(img_size=(64, 64), seed=0) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(img_size=img_size, patch_size=16, embed_dim=32, depth=4, num_heads=2, num_classes=0)


def tiny_beit(img_size=(64, 64), seed=0) -> Beit:
    torch.manual_seed(seed)
    model = Beit(img_size=img_size, patch_size=16, embed_dim=32, depth=4, num_heads=2, use_abs_pos_emb=False,
                 use_rel_pos_bias=True, init_values=0.5, num_classes=0)
    with torch.no_grad():  # timm initialises the tables to zero, which would hide any indexing error
        for block in model.blocks:
            block.attn.relative_position_bias_table.normal_(0, 1)
    return model.eval()


def tiny_dpt(kind: str, seed: int) -> MidasDepthNet:
    backbone = (ViTBackbone(tiny_vit(seed=seed), hooks=(0, 1, 2, 3), features=(8, 16, 32, 32)) if kind == 'vit'
                else BeitBackbone(tiny_beit(seed=seed), hooks=(0, 1, 2, 3), features=(8, 16, 32, 32)))
    return MidasDepthNet(backbone, features=16).eval()


def timm_block_outputs(model, blocks, x: torch.Tensor, forward) -> list[torch.Tensor]:
    """Outputs of ``blocks`` during timm's own ``forward(x)``, through forward hooks (the official mechanism)."""
    taken, handles = {}, [b.register_forward_hook(lambda m, i, o, n=n: taken.__setitem__(n, o))
                          for n, b in enumerate(blocks)]
    try:
        with torch.no_grad():
            forward(x)
    finally:
        for h in handles:
            h.remove()
    return [taken[n] for n in range(len(blocks))]


# ---------------------------------------------------------------- keys and shapes of the official checkpoints


def load_key_fixture() -> dict[str, dict[str, tuple[int, ...]]]:
    data = json.loads(gzip.decompress(KEYS_JSON.read_bytes()))
    return {v: {k: tuple(s) for k, s in entry['keys'].items()} for v, entry in data.items()}


@pytest.mark.parametrize('variant', BIG_VARIANTS)
def test_state_dict_equals_official_keys(variant):
    assert shapes(meta_net(variant).state_dict()) == load_key_fixture()[variant]


@pytest.mark.skipif(not SHARED_KEYS.is_dir(), reason=f'{SHARED_KEYS} absent (the tests/data copy is checked instead)')
@pytest.mark.parametrize('variant', BIG_VARIANTS)
def test_state_dict_equals_shared_reference_list(variant):
    listed = {}
    for line in (SHARED_KEYS / SHARED_FILES[variant]).read_text().splitlines():
        key, shape = line.split(' ', 1)
        listed[key] = tuple(int(s) for s in re.findall(r'\d+', shape))
    assert shapes(meta_net(variant).state_dict()) == listed
    assert load_key_fixture()[variant] == listed  # the tests/data copy is still the shared list


def test_small_matches_documented_facts():
    net = meta_net(SMALL)
    sd = shapes(net.state_dict())
    assert sd['pretrained.layer1.0.weight'] == (32, 3, 3, 3)
    assert sd['pretrained.layer1.3.0.conv_dw.weight'] == (32, 1, 3, 3)
    assert {k.split('.')[1] for k in sd if k.startswith('pretrained.')} == {'layer1', 'layer2', 'layer3', 'layer4'}
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(21.3e6, rel=0.01)


def test_swin2_stage_outputs_are_the_official_hooks():
    # official hooks for swin2t16_256 are [1, 1, 5, 1]: the last block of each stage, i.e. the stage outputs
    assert [len(stage.blocks) - 1 for stage in meta_net('dpt_swin2_tiny_256').pretrained.model.layers] == [1, 1, 5, 1]


# ---------------------------------------------------------------- key maps


@pytest.mark.parametrize('official, expected', [
    ('pretrained.model.layers.0.downsample.reduction.weight', 'pretrained.model.layers.1.downsample.reduction.weight'),
    ('pretrained.model.layers.2.downsample.norm.bias', 'pretrained.model.layers.3.downsample.norm.bias'),
    ('pretrained.model.head.weight', 'pretrained.model.head.fc.weight'),
    ('pretrained.model.layers.1.blocks.0.attn.qkv.weight', 'pretrained.model.layers.1.blocks.0.attn.qkv.weight'),
    ('scratch.output_conv.0.weight', 'scratch.output_conv.0.weight'),
    ('pretrained.model.layers.0.blocks.1.attn_mask', None),
    ('pretrained.model.layers.3.blocks.0.attn.relative_position_index', None),
    ('pretrained.model.layers.3.blocks.0.attn.relative_coords_table', None),
], ids=['downsample0', 'downsample2', 'head', 'block', 'decoder', 'mask', 'index', 'coords'])
def test_swin_legacy_map(official, expected):
    sd = {SWIN_LEGACY_SENTINEL: torch.zeros(1), official: torch.ones(1)}
    mapped = midas_swin_to_ssr(sd)
    assert set(mapped) == {'pretrained.model.layers.1.downsample.reduction.weight'} | ({expected} - {None})


def test_swin_map_leaves_timm1_layout_alone():
    sd = {'pretrained.model.layers.1.downsample.reduction.weight': torch.zeros(1),
          'pretrained.model.head.fc.weight': torch.zeros(1)}
    assert midas_swin_to_ssr(sd) == sd


def test_beit_map_drops_only_position_index():
    sd = {'pretrained.model.blocks.3.attn.relative_position_index': torch.zeros(1),
          'pretrained.model.blocks.3.attn.relative_position_bias_table': torch.zeros(1)}
    assert list(midas_beit_to_ssr(sd)) == ['pretrained.model.blocks.3.attn.relative_position_bias_table']


def test_unwrap_state_dict_containers_and_module_prefix():
    weight = torch.zeros(1)
    assert unwrap_state_dict({'model': {'module.scratch.x': weight}, 'optimizer': {}}) == {'scratch.x': weight}
    assert unwrap_state_dict({'state_dict': {'scratch.x': weight}}) == {'scratch.x': weight}
    with pytest.raises(ValueError, match='state_dict of tensors'):
        unwrap_state_dict({'scratch.x': 3})


@pytest.mark.parametrize('variant', VARIANTS)
def test_official_layout_maps_to_identical_tensors(variant):
    with torch.device('meta'):
        net = MiDaSDepth(variant, random_weights=True)
    own = net.model.state_dict()
    official = to_official(variant, own, dict(net.model.named_buffers()))
    family = MIDAS_VARIANTS[variant].family
    if family == 'beit':
        assert sum(k.endswith('attn.relative_position_index') for k in official) == 24
    if family == 'swin2':
        assert {SWIN_LEGACY_SENTINEL, 'pretrained.model.head.weight'} <= set(official)
        assert 'pretrained.model.layers.3.downsample.reduction.weight' not in official
        assert any(k.endswith('attn_mask') for k in official)
        assert any(k.endswith('relative_coords_table') for k in official)
    mapped = net.adapt_state_dict(official)
    assert list(mapped) == list(net.state_dict())
    assert all(mapped[f'model.{k}'] is v for k, v in own.items())
    load_state_dict_strict(net, mapped, source='fabricated official file')


# ---------------------------------------------------------------- backbone numerics against timm's own forward


def reassembled(backbone, tokens: list[torch.Tensor], grid: tuple[int, int]) -> list[torch.Tensor]:
    return [getattr(backbone, f'act_postprocess{i}')(t, grid) for i, t in enumerate(tokens, start=1)]


def test_vit_features_equal_timm_forward_with_hooks():
    model = tiny_vit().eval()
    backbone = ViTBackbone(model, hooks=(0, 1, 2, 3), features=(8, 16, 32, 32))
    x = torch.randn(2, 3, 64, 64)
    tokens = timm_block_outputs(model, model.blocks, x, model.forward_features)
    with torch.no_grad():
        for got, want in zip(backbone(x), reassembled(backbone, tokens, (4, 4))):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_vit_other_size_uses_bilinear_position_embedding():
    # golden: timm's ViT built for (64, 96) with the official rule applied to its position table by hand
    base = tiny_vit().eval()
    backbone = ViTBackbone(base, hooks=(0, 1, 2, 3), features=(8, 16, 32, 32))
    wide = tiny_vit(img_size=(64, 96)).eval()
    state = base.state_dict()
    grid = state['pos_embed'][:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(4, 6), mode='bilinear', align_corners=False).permute(0, 2, 3, 1).reshape(1, 24, -1)
    state['pos_embed'] = torch.cat((state['pos_embed'][:, :1], grid), dim=1)
    wide.load_state_dict(state)
    x = torch.randn(1, 3, 64, 96)
    tokens = timm_block_outputs(wide, wide.blocks, x, wide.forward_features)
    with torch.no_grad():
        for got, want in zip(backbone(x), reassembled(backbone, tokens, (4, 6))):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def tiny_hybrid() -> VisionTransformer:
    """R50+ViT as timm's ``vit_base_r50_s16_384`` builds it (StdConv 'same' ResNetV2 in a HybridEmbed), one block
    per ResNet stage and a narrow transformer."""
    torch.manual_seed(0)
    resnet = ResNetV2(layers=(1, 1, 1), num_classes=0, global_pool='', preact=False, stem_type='same',
                      conv_layer=partial(StdConv2dSame, eps=1e-8))
    return VisionTransformer(img_size=64, patch_size=1, embed_dim=32, depth=4, num_heads=2, num_classes=0,
                             embed_layer=partial(HybridEmbed, backbone=resnet)).eval()


def test_hybrid_features_equal_timm_forward_with_hooks():
    model = tiny_hybrid()
    backbone = ViTBackbone(model, hooks=(0, 1, 2, 3), features=(256, 512, 32, 32))
    x = torch.randn(1, 3, 64, 64)
    hooked = [*model.patch_embed.backbone.stages[:2], *model.blocks[2:]]
    stage1, stage2, tok3, tok4 = timm_block_outputs(model, hooked, x, model.forward_features)
    with torch.no_grad():
        got = backbone(x)
        want = [stage1, stage2, backbone.act_postprocess3(tok3, (4, 4)), backbone.act_postprocess4(tok4, (4, 4))]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


@pytest.mark.parametrize('img_size', [(64, 64), (64, 96)], ids=['native', 'non_square'])
def test_beit_features_equal_timm_forward_with_hooks(img_size):
    # golden: timm's BEiT built for img_size, its tables resized from the 64x64 model's by the official rule
    base = tiny_beit()
    backbone = BeitBackbone(base, hooks=(0, 1, 2, 3), features=(8, 16, 32, 32))
    target = tiny_beit(img_size=img_size)
    grid = (img_size[0] // 16, img_size[1] // 16)
    state = base.state_dict()
    for key in [k for k in state if k.endswith('relative_position_bias_table')]:
        table = state[key]
        body = table[:-3].reshape(1, 7, 7, -1).permute(0, 3, 1, 2)
        body = F.interpolate(body, size=(2 * grid[0] - 1, 2 * grid[1] - 1), mode='bilinear', align_corners=False)
        state[key] = torch.cat((body.permute(0, 2, 3, 1).reshape(-1, table.shape[1]), table[-3:]))
    target.load_state_dict(state)
    x = torch.randn(2, 3, *img_size)
    tokens = timm_block_outputs(target, target.blocks, x, target.forward_features)
    with torch.no_grad():
        for got, want in zip(backbone(x), reassembled(backbone, tokens, grid)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_swin2_features_equal_timm_stage_outputs():
    torch.manual_seed(0)
    model = SwinTransformerV2(img_size=64, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4,
                              num_classes=0, drop_path_rate=0.0).eval()
    backbone = Swin2Backbone(model)
    x = torch.randn(1, 3, 64, 64)
    last_blocks = [stage.blocks[-1] for stage in model.layers]
    nhwc = timm_block_outputs(model, last_blocks, x, model.forward_features)
    with torch.no_grad():
        for got, want in zip(backbone(x), nhwc):
            torch.testing.assert_close(got, want.permute(0, 3, 1, 2), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r'img_size \(64, 64\)'):
        backbone.check_input_size(torch.zeros(1, 3, 96, 64))


def test_efficientnet_levels_equal_timm_stage_outputs():
    torch.manual_seed(0)
    model = timm.create_model('tf_efficientnet_lite3', pretrained=False, exportable=True).eval()
    backbone = EfficientNetLiteBackbone(model)
    x = torch.randn(1, 3, 96, 64)
    want = timm_block_outputs(model, [model.blocks[i] for i in (1, 2, 4, 6)], x, model.forward_features)
    with torch.no_grad():
        for got, ref in zip(backbone(x), want):
            torch.testing.assert_close(got, ref, rtol=0, atol=0)


@pytest.mark.parametrize('kind', ['vit', 'beit'])
def test_two_instances_keep_their_own_features(kind):
    net_a, net_b = tiny_dpt(kind, seed=0), tiny_dpt(kind, seed=1)
    x_a, x_b = torch.randn(1, 3, 64, 96), torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        alone_a = [f.clone() for f in net_a.forward_features(x_a)]
        depth_a = net_a(x_a)
        feats_a, feats_b = net_a.forward_features(x_a), net_b.forward_features(x_b)
        mixed_a, mixed_b = net_a(x_a), net_b(x_b)
        fresh_b = tiny_dpt(kind, seed=1)(x_b)
    for got, want in zip(feats_a, alone_a):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert [f.shape[0] for f in feats_b] == [2] * 4
    torch.testing.assert_close(mixed_a, depth_a, rtol=0, atol=0)
    torch.testing.assert_close(mixed_b, fresh_b, rtol=0, atol=0)


def test_bare_network_checks_input_size():
    net = tiny_dpt('vit', seed=0)
    with pytest.raises(ValueError, match=r'\(70, 64\) must be a multiple of 32'):
        net(torch.zeros(1, 3, 70, 64))
    assert net(torch.zeros(1, 3, 64, 96)).shape == (1, 64, 96)


# ---------------------------------------------------------------- resizing and normalisation (official transforms)


@pytest.mark.parametrize('size, net_size, method, expected', [
    ((480, 640), 384, 'minimal', (384, 512)),  # height scale 0.8 is closer to 1 than 0.6
    ((100, 1000), 384, 'minimal', (32, 384)),  # 38.4 rounds to 32
    ((384, 400), 384, 'minimal', (384, 384)),  # 400 / 32 = 12.5 rounds half to even, as np.round
    ((480, 640), 256, 'upper_bound', (192, 256)),
    ((300, 200), 256, 'upper_bound', (256, 160)),
    ((45, 70), 256, 'square', (256, 256)),
], ids=['minimal', 'minimal_thin', 'minimal_half_even', 'upper_landscape', 'upper_portrait', 'square'])
def test_midas_input_size(size, net_size, method, expected):
    assert midas_input_size(*size, net_size=net_size, method=method) == expected


def test_midas_input_size_rejects_unknown_method():
    with pytest.raises(ValueError, match="'lower_bound' not in"):
        midas_input_size(10, 10, net_size=256, method='lower_bound')


@pytest.fixture(scope='module')
def small() -> MiDaSDepth:
    torch.manual_seed(0)
    return MiDaSDepth(SMALL, random_weights=True)


def test_preprocess_matches_opencv_pipeline(small):
    rgb = photo('astronaut', 300)[:, 50:250, ::-1].astype(np.float32) / 255  # 300 x 200 RGB
    want = cv2.resize(rgb, (160, 256), interpolation=cv2.INTER_CUBIC)
    want = (want - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    got = small.preprocess(torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None])
    assert got.shape == (1, 3, 256, 160)
    torch.testing.assert_close(got[0], torch.from_numpy(want.transpose(2, 0, 1)), rtol=0, atol=2e-3)


# ---------------------------------------------------------------- the wrapper


@pytest.mark.parametrize('kwargs, match', [
    ({}, r'weights_path .*midas_v21_small_256\.pt'),
    ({'weights_path': 'x.pt', 'random_weights': True}, 'not both'),
    ({'variant': 'dpt_tiny', 'random_weights': True}, "'dpt_tiny' not in"),
    ({'input_size': 48, 'random_weights': True}, 'input_size .* got 48'),
    ({'input_size': 0, 'random_weights': True}, 'input_size .* got 0'),
], ids=['no_weights', 'both', 'variant', 'input_size_48', 'input_size_0'])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MiDaSDepth(**{'variant': SMALL, **kwargs})


def test_output_for_odd_input_size(small):
    img = torch.rand(2, 3, 45, 70)
    with torch.no_grad():
        depth = small(img)
    assert depth.shape == (2, 1, 45, 70)
    assert depth.min() >= 0 and depth.max() <= 1 and depth.amax(dim=(1, 2, 3)).eq(1).all()


def test_raw_output_is_non_negative(small):
    small.normalize = False
    try:
        with torch.no_grad():
            depth = small(torch.rand(1, 3, 45, 70))
    finally:
        small.normalize = True
    assert depth.shape == (1, 1, 45, 70) and depth.min() >= 0


def test_stays_frozen_and_in_eval(small):
    small.train()
    assert not any(m.training for m in small.modules())
    assert not any(p.requires_grad for p in small.parameters())
    assert small.feature_info == [{'num_chs': 1, 'reduction': 1, 'module': 'model'}]


@pytest.mark.parametrize('variant', [SMALL, 'dpt_swin2_tiny_256'])
def test_official_file_loads_strictly(variant, tmp_path):
    torch.manual_seed(0)
    source = MiDaSDepth(variant, random_weights=True)
    official = to_official(variant, source.model.state_dict(), dict(source.model.named_buffers()))
    path = tmp_path / MIDAS_VARIANTS[variant].file_name
    torch.save({'model': {f'module.{k}': v for k, v in official.items()}, 'optimizer': {}}, path)
    torch.manual_seed(1)
    net = MiDaSDepth(variant, weights_path=str(path))
    loaded = net.state_dict()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def test_weights_path_accepts_ssr_checkpoint(small, tmp_path):
    path = tmp_path / 'net_d.pth'
    torch.save({'params': {k: v + 1 if v.is_floating_point() else v for k, v in small.state_dict().items()}}, path)
    net = MiDaSDepth(SMALL, weights_path=str(path))
    torch.testing.assert_close(net.model.scratch.layer1_rn.weight, small.model.scratch.layer1_rn.weight + 1)


def test_mismatched_file_lists_every_problem(small, tmp_path):
    official = dict(small.model.state_dict())
    del official['scratch.layer1_rn.weight']
    official['scratch.extra.weight'] = torch.zeros(1)
    official['scratch.output_conv.4.bias'] = torch.zeros(2)
    path = tmp_path / 'other.pt'
    torch.save(official, path)
    with pytest.raises(RuntimeError, match=r'(?s)missing: model\.scratch\.layer1_rn\.weight.*unexpected: '
                                           r'model\.scratch\.extra\.weight.*wrong shape: model\.scratch\.output_conv'
                                           r'\.4\.bias.*midas_v21_small_256\.pt'):
        small.load_weights(str(path))


@pytest.mark.parametrize('content, error, match', [
    (None, FileNotFoundError, r'absent\.pt.*midas_v21_small_256\.pt'),
    (b'not a checkpoint', RuntimeError, r'cannot read MiDaS weights .*absent\.pt'),
], ids=['missing', 'unreadable'])
def test_bad_weight_files(small, tmp_path, content, error, match):
    path = tmp_path / 'absent.pt'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=match):
        small.load_weights(str(path))


def test_load_network_accepts_official_layout(small, tmp_path):
    path = tmp_path / 'midas_v21_small_256.pt'
    torch.save({k: v + 1 for k, v in small.model.state_dict().items() if v.is_floating_point()}
               | {k: v for k, v in small.model.state_dict().items() if not v.is_floating_point()}, path)
    torch.manual_seed(2)
    net = MiDaSDepth(SMALL, random_weights=True)
    checkpoint_model(tmp_path).load_network(net, str(path))
    torch.testing.assert_close(net.model.scratch.layer1_rn.weight, small.model.scratch.layer1_rn.weight + 1)


class TestMiDaSDepthSmallArch(ArchTesterMixin):
    arch = 'MiDaSDepth'
    config = {'variant': SMALL, 'random_weights': True}
    trainable_all = False

    def inputs(self) -> dict:
        return {'img': torch.rand(1, 3, 40, 56)}

    def check_output(self, out, inputs: dict) -> None:
        assert out.shape == (1, 1, 40, 56)

    def test_backward_reaches_every_parameter(self):
        """MiDaSDepth is frozen: the mixin's check becomes 'no parameter trains, and the output has no graph'."""
        net = self.build().train()
        out = net(**self.inputs())
        assert not any(p.requires_grad for p in net.parameters())
        assert not out.requires_grad


@pytest.mark.slow
@pytest.mark.parametrize('variant', BIG_VARIANTS)
def test_big_variant_runs_on_odd_input(variant):
    torch.manual_seed(0)
    net = MiDaSDepth(variant, random_weights=True, input_size=64, normalize=False)
    with torch.no_grad():
        depth = net(torch.rand(1, 3, 45, 70))
    assert depth.shape == (1, 1, 45, 70) and torch.isfinite(depth).all() and depth.min() >= 0
