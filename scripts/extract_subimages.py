"""Cut the HR images of a folder into overlapping sub-images (``ssr.data.subimages``).

Example::

    python scripts/extract_subimages.py -i datasets/DIV2K/DIV2K_train_HR -o datasets/DIV2K/DIV2K_train_HR_sub \
        --crop-size 480 --step 240 --thresh-size 0 --workers 8

Policy:
    - Windows of ``crop_size`` start every ``step`` pixels along each axis; when the last window leaves more than
      ``thresh_size`` pixels uncovered, one more window is added flush with the border (as BasicSR does).
    - An axis shorter than ``crop_size`` gets one window covering the whole axis, so an image smaller than the crop
      gives one sub-image of the whole image (``--small-images whole``, default); ``--small-images skip`` skips such
      images with a warning instead.
    - Nothing is mod-cropped: datasets crop to a multiple of the scale when they read.
    - Output is always 8-bit, 3-channel BGR PNG: grayscale is replicated, an alpha channel is dropped, and 16-bit
      samples are mapped to 8 bits (``round(v / 257)``, i.e. 0..65535 -> 0..255).
    - ``--max-side N`` first shrinks images whose longer side exceeds N (``cv2.INTER_AREA``). JPEG photos such as
      desktop wallpapers carry compression artefacts at full size; shrink them (by 2-4x) before using them as
      ground truth.
    - Sub-images are named ``<stem>_s001.png``, ``<stem>_s002.png``, ... in row-major window order.
    - A file that does not decode is reported (logging error with its path) and skipped; the others are still
      written and the exit code is 1.
    - The output folder is built as ``<output>.tmp`` beside the target and renamed when done.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, '') and str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make ssr importable

from ssr.data.subimages import SMALL_IMAGE_POLICIES, check_settings, extract_subimages  # noqa: E402

logger = logging.getLogger('ssr.scripts.extract_subimages')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Cut HR images into overlapping sub-images (8-bit BGR PNG).')
    parser.add_argument('-i', '--input', type=Path, required=True, help='folder of HR images (not recursive)')
    parser.add_argument('-o', '--output', type=Path, required=True, help='output folder for <stem>_sNNN.png files')
    parser.add_argument('--crop-size', type=int, default=480, help='sub-image size in pixels (default: 480)')
    parser.add_argument('--step', type=int, default=240, help='distance between sub-images in pixels (default: 240)')
    parser.add_argument('--thresh-size', type=int, default=0,
                        help='a border remainder larger than this many pixels gets an extra border-flush '
                        'sub-image (default: 0)')
    parser.add_argument('--compression', type=int, default=3, help='PNG compression level 0..9 (default: 3)')
    parser.add_argument('--max-side', type=int, default=None,
                        help='first shrink images whose longer side exceeds this many pixels, INTER_AREA '
                        '(default: none; use it for JPEG wallpapers)')
    parser.add_argument('--small-images', choices=SMALL_IMAGE_POLICIES, default='whole',
                        help='images smaller than the crop: one sub-image of the whole image, or skip with a '
                        'warning (default: whole)')
    parser.add_argument('--workers', type=int, default=2, help='worker processes, 0 = none (default: 2)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder (default: off)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar (default: off)')
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_settings(args.crop_size, args.step, args.thresh_size, args.compression, args.max_side,
                       args.small_images, args.workers)
    except ValueError as e:
        parser.error(str(e))  # misuse: exit code 2
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    try:
        result = extract_subimages(
            args.input, args.output, crop_size=args.crop_size, step=args.step, thresh_size=args.thresh_size,
            compression=args.compression, max_side=args.max_side, small_images=args.small_images,
            workers=args.workers, overwrite=args.overwrite, progress=not args.quiet and sys.stderr.isatty())
    except (OSError, ValueError) as e:
        logger.error('%s', e)
        return 1
    total = sum(result.counts.values())
    logger.info('wrote %d sub-images from %d images to %s', total, len(result.counts), args.output)
    if result.failed:
        logger.error('%d file(s) could not be read and were skipped: %s', len(result.failed), ', '.join(result.failed))
        return 1
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
