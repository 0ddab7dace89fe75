"""Pack a folder of images (or depth maps) into a BasicSR-format LMDB (``ssr.data.basicsr_lmdb``).

Example::

    python scripts/create_lmdb.py -i datasets/DIV2K/DIV2K_train_HR_sub -o datasets/DIV2K/DIV2K_train_HR_sub.lmdb
    python scripts/create_lmdb.py --depth -i datasets/DIV2K/depth_sub -o datasets/DIV2K/depth_sub.lmdb

Layout (what BasicSR's ``FileClient('lmdb')`` and ``paths_from_lmdb`` read)::

    <output>.lmdb/
        data.mdb, lock.mdb     key -> PNG bytes
        meta_info.txt          one line per key: ``<key>.png (h,w,c) <compression>``

Keys are the file paths relative to the input folder, in POSIX form, without their extension
(``sub/0001_s001.png`` -> ``sub/0001_s001``): ASCII without whitespace, unique, dots kept. Images are stored as read;
with ``--depth`` depth maps are stored as 16-bit PNG, 0..65535 <-> 0..1 (16-bit PNG unchanged, 8-bit PNG ``* 257``,
float ``.npy`` in [0, 1] rounded). A file that does not decode stops the run, leaves nothing behind, exit code 1.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import lmdb

if __package__ in (None, '') and str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make ssr importable

import ssr  # noqa: E402,F401  (compatibility fixes before basicsr is imported)
from ssr.data.basicsr_lmdb import create_lmdb  # noqa: E402

logger = logging.getLogger('ssr.scripts.create_lmdb')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Pack a folder of images or depth maps into a BasicSR LMDB.')
    parser.add_argument('-i', '--input', type=Path, required=True, help='folder of images / depth maps (recursive)')
    parser.add_argument('-o', '--output', type=Path, required=True, help='LMDB folder to create, ending in .lmdb')
    parser.add_argument('--depth', action='store_true',
                        help='input holds depth maps (16-/8-bit PNG or float .npy in [0, 1]); stored as 16-bit PNG, '
                        '0..65535 <-> 0..1 (default: off)')
    parser.add_argument('--compression', type=int, default=1,
                        help='PNG compression level 0..9 of the stored bytes (default: 1, as BasicSR)')
    parser.add_argument('--map-size', type=int, default=None,
                        help='LMDB map size in bytes (default: an upper bound derived from the image sizes)')
    parser.add_argument('--batch', type=int, default=5000, help='entries per LMDB transaction (default: 5000)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output LMDB (default: off)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar (default: off)')
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output.suffix != '.lmdb':
        parser.error(f'--output {args.output} must end with .lmdb (BasicSR checks the suffix)')
    if not 0 <= args.compression <= 9:
        parser.error(f'--compression {args.compression} not in 0..9')
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    try:
        n = create_lmdb(args.input, args.output, depth=args.depth, compression=args.compression,
                        map_size=args.map_size, batch=args.batch, overwrite=args.overwrite,
                        progress=not args.quiet and sys.stderr.isatty())
    except (OSError, ValueError) as e:
        logger.error('%s', e)
        return 1
    except lmdb.Error as e:
        logger.error('LMDB error while writing %s: %s (a MapFullError needs a larger --map-size)', args.output, e)
        return 1
    logger.info('wrote %d entries to %s', n, args.output)
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
