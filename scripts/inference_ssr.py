"""Super-resolve any image or folder of images with a trained model (blind DKENet + NBSR, SSR, RealSR, ...).

The model is whatever an option file describes (``model_type``, ``network_*``, ``path.pretrain_network_*``); its
inference path is built once by :func:`ssr.tools.image_inference.load_pipeline` (an ``SSRPipeline`` for SSR, SVKR
or the SR network alone otherwise), then every image goes through it, whole or in tiles.

Inputs (decoded with the policy of :mod:`ssr.data.image_io`):
    - 8-bit RGB / JPEG: SR written as an 8-bit PNG;
    - grayscale: SR of the replicated RGB, written back as one channel (BT.601 luma of the SR);
    - RGBA: RGB through the model, alpha upscaled separately (bicubic, clipped to [0, 1]) and re-attached;
    - 16-bit: SR written as a 16-bit PNG (values in [0, 1] scaled by 65535).
    Every output is a PNG named ``<stem><suffix>.png`` (sub-folders of an input folder are kept).
    Files a folder holds with non-image extensions are ignored (debug log); hidden files are ignored.

Bad files: a file that does not decode (corrupt, or text named ``*.png``), an image with a side under
``MIN_SIDE`` LR pixels, an output name two inputs share, or a model error on one image is logged on stderr with the
path and the reason, and skipped; the run goes on.

Exit code: 0 when every image was written or skipped as already done; otherwise the number of failed images,
capped at 125. A setup failure (option file, weights, CUDA missing, no image in the folder) exits 1 and argparse
misuse (or ``--bf16`` without ``--device cuda``) exits 2; the log says which case it is.

Outputs are written to a temporary file beside the target, then renamed, so no partial file is left. An image
whose requested outputs all exist is skipped with a message unless ``--overwrite``; existing ones are never
rewritten without it.

Tiling (``--tile N``): the LR is cut into N x N tiles overlapping by ``--tile-overlap`` pixels, each tile is
super-resolved on its own (the networks are fully convolutional) and the SR tiles (and the kernel / depth fields)
are blended with Gaussian weights (:mod:`ssr.pipelines.tiling`, the blender of SSR's latent tiles), so seams are
feathered. An image no larger than one tile runs untiled, bit for bit. With ``svkr.depth: midas`` each tile
gets its own relative depth, which may differ in scale between tiles: prefer large tiles there.

Examples:
    python scripts/inference_ssr.py -i photos/ -o results/photos_sr
    python scripts/inference_ssr.py -i big.jpg -o out/ --tile 256 --tile-overlap 16 --save-kernel --device cuda --bf16
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_OPT = 'options/test_blind_demo_x4.yml'
MAX_EXIT = 125  # exit codes above 125 mean "not executable" / "killed by a signal" to shells
logger = logging.getLogger('inference_ssr')


def build_parser() -> argparse.ArgumentParser:
    from ssr.tools.image_inference import MIN_SIDE

    parser = argparse.ArgumentParser(
        description='Super-resolve an image or a folder of images with a trained model chosen by option file. '
                    'Exit code: 0 if all images succeed, else the number that failed (at most 125); 1 for a setup '
                    'failure, 2 for misuse.')
    parser.add_argument('-i', '--input', required=True, help='image file or folder (searched recursively)')
    parser.add_argument('-o', '--output', required=True,
                        help='output folder; SR images are <stem><suffix>.png, sub-folders are kept')
    parser.add_argument('--opt', default=DEFAULT_OPT,
                        help=f'option file of a trained model, relative to the working directory or the '
                             f'repository root (default: {DEFAULT_OPT})')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu', help='where to run (default: cpu)')
    parser.add_argument('--bf16', action='store_true',
                        help='bfloat16 autocast; needs --device cuda (default: off, float32)')
    parser.add_argument('--tile', type=int, default=0,
                        help=f'LR tile side in pixels, 0 = whole image (default: 0); at least {MIN_SIDE}')
    parser.add_argument('--tile-overlap', type=int, default=16,
                        help='LR pixels shared by neighbouring tiles, Gaussian-blended; below --tile (default: 16)')
    parser.add_argument('--save-kernel', action='store_true',
                        help='also write <stem><suffix>_kernel_var.png (per-pixel kernel variance, titled, colour bar '
                             'in HR px²) and <stem><suffix>_kernel.npz (the LR-grid field, key "kernel", float16) '
                             '(default: off)')
    parser.add_argument('--save-depth', action='store_true',
                        help='also write <stem><suffix>_depth.png, the depth as 16-bit PNG, and '
                             '<stem><suffix>_depth_vis.png, a titled figure that says when the depth is a constant map '
                             '(default: off)')
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite existing outputs (default: off, images whose outputs exist are skipped)')
    parser.add_argument('--suffix', default='_SR', help='appended to each output stem (default: _SR)')
    parser.add_argument('--seed', type=int, default=0, help='torch seed, for models that sample (default: 0)')
    parser.add_argument('--quiet', action='store_true',
                        help='warnings and errors only, no progress bar (default: off)')
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import ssr  # noqa: F401  (first: compatibility fixes basicsr needs, and the registries)
    from ssr.tools.image_inference import (MIN_SIDE, Settings, check_output_folder, collect_inputs, load_pipeline,
                                           process_inputs)

    if args.bf16 and args.device != 'cuda':
        parser.error('--bf16 needs --device cuda (bfloat16 autocast on the CPU is slow and not supported here)')
    if args.tile < 0 or (args.tile and args.tile < MIN_SIDE):
        parser.error(f'--tile {args.tile}: use 0 (off) or at least {MIN_SIDE} pixels')
    if args.tile_overlap < 0 or (args.tile and args.tile_overlap >= args.tile):
        parser.error(f'--tile-overlap {args.tile_overlap}: need 0 <= overlap < --tile ({args.tile})')
    source = Path(args.input)
    if not source.exists():
        parser.error(f'--input {str(source)!r} does not exist')
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)

    inputs = collect_inputs(source, logger)
    if not inputs:
        logger.error('%s holds no image file; nothing to do', source)
        return 1
    settings = Settings(tile=args.tile, overlap=args.tile_overlap, bf16=args.bf16, save_kernel=args.save_kernel,
                        save_depth=args.save_depth, overwrite=args.overwrite, suffix=args.suffix)
    import torch

    torch.manual_seed(args.seed)
    try:
        check_output_folder(Path(args.output))
    except ValueError as exc:
        logger.error('%s', exc)
        return 2
    try:
        pipe = load_pipeline(args.opt, args.device)
    except Exception as exc:  # noqa: BLE001  (option, weight and device errors all end the run the same way)
        logger.error('could not build the model from %s: %s', args.opt, exc)
        return 1
    out_dir = Path(args.output)
    progress = not args.quiet and sys.stderr.isatty()
    written, skipped, failed = process_inputs(pipe, inputs, out_dir, settings, logger, progress)
    logger.info('%d written, %d skipped (outputs exist), %d failed -> %s', written, skipped, len(failed), out_dir)
    if failed:
        logger.error('%d of %d images failed: %s', len(failed), len(inputs), ', '.join(map(str, failed)))
    return min(len(failed), MAX_EXIT)


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
