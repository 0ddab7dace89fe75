"""Build an HR training LMDB from photographs available offline (``ssr.data.offline_corpus``; see
``docs/prepare_datasets.md``).

Example::

    python scripts/prepare_offline_corpus.py --shared-datasets ../shared/datasets -o datasets/offline

Sources:
    - ``<shared-datasets>/T91`` and ``<shared-datasets>/BSD200`` (Set5 / Set14 stay for validation);
    - Debian packages of photographs (``--debian-packages``), fetched with ``apt-get download`` and unpacked with
      ``dpkg -x`` into ``--workdir``; a package that apt cannot fetch is skipped with a warning. Only ``.jpg``,
      ``.jpeg`` and ``.png`` files are used; Plasma's ``screenshot.*`` previews are left out, and of the same
      wallpaper at several resolutions (``5120x2880.png``, ``1080x1920.png``) only the largest is kept. For
      ``opencv-doc`` only ``examples/data`` (sample photographs) is used, not the HTML figures.

Steps: every image is shrunk so that its longer side is at most ``--max-side`` (the wallpapers are JPEG-compressed
at 4-5K; shrinking by 2-4x hides the artefacts, so they can serve as ground truth), cut into sub-images
(``ssr.data.subimages``) and packed into ``<output>/train_hr_sub.lmdb`` (``ssr.data.basicsr_lmdb``).
``<output>/manifest.json`` maps every source file (``<source>/<relative path>``) to its number of sub-images.
Exit code 1 when a source file could not be read (the others are still packed).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ssr.data.offline_corpus import DEFAULT_PACKAGES, LMDB_NAME, MANIFEST_NAME, prepare_offline_corpus
from ssr.data.subimages import SMALL_IMAGE_POLICIES, check_settings

logger = logging.getLogger('ssr.scripts.prepare_offline_corpus')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Build an HR training LMDB from offline photographs '
                                     '(T91, BSD200 and Debian wallpaper / sample-image packages).')
    parser.add_argument('--shared-datasets', type=Path, required=True, help='folder holding T91/ and BSD200/')
    parser.add_argument('-o', '--output', type=Path, required=True,
                        help=f'output folder for {LMDB_NAME} and {MANIFEST_NAME}')
    parser.add_argument('--debian-packages', nargs='*', default=list(DEFAULT_PACKAGES), metavar='PKG',
                        help=f'Debian packages to fetch with apt-get download; none: pass the flag alone '
                        f'(default: {" ".join(DEFAULT_PACKAGES)})')
    parser.add_argument('--workdir', type=Path, default=None,
                        help='cache for .deb files and unpacked packages (default: <output>/work)')
    parser.add_argument('--max-side', type=int, default=1024,
                        help='shrink images whose longer side exceeds this many pixels (default: 1024)')
    parser.add_argument('--crop-size', type=int, default=256, help='sub-image size in pixels (default: 256)')
    parser.add_argument('--step', type=int, default=128, help='distance between sub-images in pixels (default: 128)')
    parser.add_argument('--small-images', choices=SMALL_IMAGE_POLICIES, default='whole',
                        help='images smaller than the crop: one whole-image sub-image, or skip (default: whole)')
    parser.add_argument('--workers', type=int, default=2, help='worker processes, 0 = none (default: 2)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing LMDB / manifest (default: off)')
    parser.add_argument('--quiet', action='store_true', help='no progress bars (default: off)')
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_settings(args.crop_size, args.step, 0, 3, args.max_side, args.small_images, args.workers)
    except ValueError as e:
        parser.error(str(e))  # misuse: exit code 2
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    try:
        manifest = prepare_offline_corpus(
            args.shared_datasets, args.output, packages=tuple(args.debian_packages), workdir=args.workdir,
            max_side=args.max_side, crop_size=args.crop_size, step=args.step, small_images=args.small_images,
            workers=args.workers, overwrite=args.overwrite, progress=not args.quiet and sys.stderr.isatty())
    except (OSError, ValueError) as e:
        logger.error('%s', e)
        return 1
    logger.info('%d sub-images from %d files in %s', manifest['total_subimages'], len(manifest['counts']),
                args.output / LMDB_NAME)
    if manifest['failed']:
        logger.error('%d file(s) could not be read: %s', len(manifest['failed']), ', '.join(manifest['failed']))
        return 1
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
