"""scripts/export_lite_weights.py: fp16 DKENet export and the NBSR delta that rebuilds the network exactly."""
from __future__ import annotations

import torch

from ssr.utils.checkpoint import atomic_torch_save
from tests.conftest import load_script

export = load_script('export_lite_weights')


def test_nbsr_delta_round_trip_and_refuses_a_changed_trunk(tmp_path):
    from basicsr.archs.rrdbnet_arch import RRDBNet

    from ssr.archs.nbsr_arch import NBSR

    cfg = dict(num_feat=8, num_block=1, num_grow_ch=4, kernel_size=7, pca_components=4, sft_hidden_ch=4)
    torch.manual_seed(0)
    atomic_torch_save({'params': RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4).state_dict()},
                      tmp_path / 'trunk.pth')
    net = NBSR(**cfg, trunk_path=str(tmp_path / 'trunk.pth'))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith('sft.'):
                p.normal_(0, 0.05)
    atomic_torch_save({'params': net.state_dict()}, tmp_path / 'nbsr.pth')
    out = tmp_path / 'lite' / 'delta.pth'
    out.parent.mkdir()
    assert export.main(['--nbsr', str(tmp_path / 'nbsr.pth'), '--trunk', str(tmp_path / 'trunk.pth'),
                        '-o', str(out)]) == 0
    delta = torch.load(out, weights_only=True)['params']
    assert all(k.startswith(('sft.', 'pca.')) for k in delta)
    rebuilt = NBSR(**cfg, trunk_path=str(tmp_path / 'trunk.pth'))
    rebuilt.load_state_dict(rebuilt.adapt_state_dict(delta))
    lq, kernel = torch.rand(1, 3, 6, 6), torch.softmax(torch.randn(1, 49, 6, 6), 1)
    torch.testing.assert_close(rebuilt(lq, kernel), net(lq, kernel), atol=2e-3, rtol=0)  # fp16 SFT weights
    assert (out.parent / 'MANIFEST.jsonl').read_text().count('delta.pth') == 1

    with torch.no_grad():
        net.conv_first.weight.add_(1)
    atomic_torch_save({'params': net.state_dict()}, tmp_path / 'tuned.pth')
    assert export.main(['--nbsr', str(tmp_path / 'tuned.pth'), '--trunk', str(tmp_path / 'trunk.pth'),
                        '-o', str(tmp_path / 'x.pth')]) == 1
    assert not (tmp_path / 'x.pth').exists()


def test_dkenet_export_is_fp16(tmp_path):
    from ssr.archs.dkenet_arch import DKENet

    net = DKENet(num_feat=8, kernel_size=7)
    atomic_torch_save({'params': net.state_dict()}, tmp_path / 'd.pth')
    assert export.main(['--dkenet', str(tmp_path / 'd.pth'), '-o', str(tmp_path / 'lite.pth')]) == 0
    state = torch.load(tmp_path / 'lite.pth', weights_only=True)['params']
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    fresh = DKENet(num_feat=8, kernel_size=7)
    fresh.load_state_dict(state)  # fp16 values load into the fp32 network
    assert export.main(['--dkenet', str(tmp_path / 'd.pth'), '-o', str(tmp_path / 'lite.pth')]) == 1


def test_ssr_export_reads_the_ema_key_keeps_integer_buffers_and_replaces_its_manifest_line(tmp_path):
    from ssr.archs.amf_unet_arch import AMFUNet

    kwargs = dict(latent_channels=48, block_out_channels=[8, 16], layers_per_block=1, norm_num_groups=4,
                  attention_head_dim=8, amf_hidden=8, kernel_in_ch=25, lr_encoder_channels=[8, 8],
                  depth_encoder_channels=[4, 4], kernel_encoder_channels=[4, 4])
    net = AMFUNet(**kwargs)
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    atomic_torch_save({'params': net.state_dict(), 'params_ema': ema}, tmp_path / 's.pth')
    for _ in range(2):
        assert export.main(['--ssr', str(tmp_path / 's.pth'), '--param-key', 'params_ema', '-o',
                            str(tmp_path / 'ssr.pth'), '--overwrite']) == 0
    state = torch.load(tmp_path / 'ssr.pth', weights_only=True)['params']
    ints = [k for k, v in state.items() if not v.is_floating_point()]
    assert ints and all(state[k].dtype == ema[k].dtype for k in ints)  # BatchNorm num_batches_tracked
    fresh = AMFUNet(**kwargs)
    fresh.load_state_dict(state)
    key = next(k for k, v in ema.items() if v.is_floating_point())
    torch.testing.assert_close(fresh.state_dict()[key], ema[key], rtol=1e-3, atol=1e-3)
    assert (tmp_path / 'MANIFEST.jsonl').read_text().count('"ssr.pth"') == 1
