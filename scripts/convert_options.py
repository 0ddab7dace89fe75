"""Translate an MMSR-style option file (MANet, DCLS) into an ssr / BasicSR one (``ssr.utils.mmsr_options``).

``ssr/test.py -opt`` already runs MMSR files as they are (translating them at load); this writes the translation
for users who want to keep and edit it. Every mapped key is listed on stderr.

A file with a ``datasets.train`` set is translated as a training file (MANet stages 1-3, DCLS), any other as a test
file.

IKC tests and trains with three files (``test_IKC.py`` / ``train_IKC.py -opt_F -opt_P -opt_C``); ``--ikc`` merges
them into one ssr file: a test file that runs ``IKCNet`` (``ssr.archs.ikc_arch``), or, for the training files, an
``IKCModel`` file that trains its Predictor and Corrector against the trained SFTMD (``train_SFTMD.yml`` itself runs
as it is with ``ssr/train.py -opt``).

Example:
    python scripts/convert_options.py MANet/codes/options/test/test_stage3.yml options/test_manet_mine.yml
    python scripts/convert_options.py MANet/codes/options/train/train_stage3.yml options/train_manet_mine.yml
    python scripts/convert_options.py --ikc IKC/codes/options/test/test_SFTMD.yml \\
        IKC/codes/options/test/test_Predictor.yml IKC/codes/options/test/test_Corrector.yml options/test_ikc_mine.yml
    python scripts/convert_options.py --ikc IKC/codes/options/train/train_SFTMD.yml \
        IKC/codes/options/train/train_Predictor.yml IKC/codes/options/train/train_Corrector.yml options/train_ikc.yml
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('input', nargs='?', help='MMSR-style test or training option file (network_G.which_model_G, '
                   'path.pretrain_model_G, ...)')
    p.add_argument('output', help='ssr option file to write')
    p.add_argument('--ikc', nargs=3, metavar=('SFTMD', 'PREDICTOR', 'CORRECTOR'),
                   help="IKC's three test or training files (test_IKC.py's / train_IKC.py's -opt_F, -opt_P, -opt_C), "
                        'merged into one ssr file (IKCNet); give no INPUT with it')
    p.add_argument('--overwrite', action='store_true', help='replace an existing output')
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.input is None) == (args.ikc is None):
        parser.error('give one MMSR file (INPUT OUTPUT) or IKC\'s three with --ikc SFTMD PREDICTOR CORRECTOR OUTPUT')
    import yaml

    from ssr.utils.mmsr_options import is_mmsr, translate_ikc, translate_mmsr
    from ssr.utils.options import load_yaml

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        print(f'error: {out} exists; pass --overwrite to replace it', file=sys.stderr)
        return 1
    try:
        if args.ikc:
            files = dict(zip(('SFTMD', 'Predictor', 'Corrector'), args.ikc))
            translated, notes = translate_ikc({part: load_yaml(f) for part, f in files.items()}, files)
            source = ', '.join(args.ikc)
        else:
            opt = load_yaml(args.input)
            if not is_mmsr(opt):
                raise ValueError(f'{args.input}: not an MMSR-style file (no network_G.which_model_G, gpu_ids or '
                                 'path.pretrain_model_G); ssr runs it as it is')
            is_train = 'train' in (opt.get('datasets') or {})
            translated, notes = translate_mmsr(opt, args.input, is_train=is_train)
            source = args.input
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    for note in notes:
        print(f'[convert_options] {note}', file=sys.stderr)
    plain = yaml.safe_dump(_plain(translated), sort_keys=False)
    tmp = out.with_name(f'.{out.name}.tmp')
    tmp.write_text(f'# translated from {source} by scripts/convert_options.py\n{plain}')
    os.replace(tmp, out)
    return 0


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
