"""Fit the kernel PCA (DESIGN.md §3 "Kernel codes") on sampled Gaussian blur kernels and save it
(``ssr.utils.kernel_pca_fit``).

Example::

    python scripts/fit_kernel_pca.py --output experiments/pretrained_models/kernel_pca_k21_x4_L15.pth

The file holds ``{'mean', 'components', 'kernel_size', 'explained_variance_ratio'}`` and is read with
``ssr.ops.kernel_pca.KernelPCA.load``. Kernels are anisotropic Gaussians with sigma1, sigma2 ~ U[sigma range]
(standard deviations in HR pixels), theta ~ U[0, pi), a fraction of them isotropic, all centred at (s - 1) / 2.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ssr.utils.kernel_pca_fit import WEIGHTINGS, fit_kernel_pca

logger = logging.getLogger('fit_kernel_pca')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Fit a PCA of sampled Gaussian blur kernels and save it as .pth.')
    parser.add_argument('-o', '--output', type=Path, required=True, help='Output .pth file (required).')
    parser.add_argument('--kernel-size', type=int, default=21, help='Odd kernel size k, pixels. Default: 21.')
    parser.add_argument('--scale', type=int, default=4, help='SR scale s; kernels are centred at (s - 1) / 2. '
                        'Default: 4.')
    parser.add_argument('--num-components', type=int, default=15, help='Number of components L. Default: 15.')
    parser.add_argument('--num-samples', type=int, default=30000, help='Training kernels. Default: 30000.')
    parser.add_argument('--num-holdout', type=int, default=2000,
                        help='Held-out kernels for the reported reconstruction error. Default: 2000.')
    parser.add_argument('--sigma-range', type=float, nargs=2, default=(0.2, 4.0), metavar=('LOW', 'HIGH'),
                        help='Range of both standard deviations, HR pixels. Default: 0.2 4.0.')
    parser.add_argument('--iso-prob', type=float, default=0.2,
                        help='Fraction of isotropic kernels (sigma2 = sigma1). Default: 0.2.')
    parser.add_argument('--weighting', choices=WEIGHTINGS, default='none',
                        help="'none': plain PCA (least squared error); 'inverse-norm': weights 1 / ||K||^2, which "
                        'minimises the mean relative error instead. Default: none.')
    parser.add_argument('--seed', type=int, default=0, help='Seed of the kernel sampler. Default: 0.')
    parser.add_argument('--device', default='cpu', help='Device used to build the kernels. Default: cpu.')
    parser.add_argument('--overwrite', action='store_true', help='Replace an existing output file. Default: off.')
    return parser


def _check_args(args: argparse.Namespace) -> str | None:
    """Returns a message for the first invalid argument, or None."""
    low, high = args.sigma_range
    if args.kernel_size < 3 or args.kernel_size % 2 == 0:
        return f'--kernel-size must be odd and >= 3, got {args.kernel_size}'
    if not 1 <= args.num_components <= min(args.kernel_size**2, args.num_samples):
        return f'--num-components must be in [1, min(k*k, --num-samples)], got {args.num_components}'
    if args.num_holdout < 1:
        return f'--num-holdout must be >= 1, got {args.num_holdout}'
    if not 0 < low <= high:
        return f'--sigma-range must satisfy 0 < LOW <= HIGH, got {low} {high}'
    if not 0 <= args.iso_prob <= 1:
        return f'--iso-prob must be in [0, 1], got {args.iso_prob}'
    return None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = _check_args(args)
    if problem:
        parser.error(problem)
    if args.output.exists() and not args.overwrite:
        logger.error('%s exists; pass --overwrite to replace it or choose another --output', args.output)
        return 1
    try:
        pca, errors = fit_kernel_pca(num_components=args.num_components, num_samples=args.num_samples,
                                     num_holdout=args.num_holdout, kernel_size=args.kernel_size, scale=args.scale,
                                     sigma_range=tuple(args.sigma_range), iso_prob=args.iso_prob,
                                     weighting=args.weighting, seed=args.seed, device=args.device)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        pca.save(args.output)
    except (OSError, RuntimeError, ValueError) as e:
        logger.error('fitting or writing the kernel PCA failed: %s', e)
        return 1
    ratio = pca.explained_variance_ratio
    print(f'kernel PCA: k={args.kernel_size}, s={args.scale}, L={args.num_components}, '
          f'{args.num_samples} training kernels, sigma in [{args.sigma_range[0]}, {args.sigma_range[1]}] std')
    print(f'explained variance: {ratio.sum().item():.4%} (first components: '
          f"{', '.join(f'{r:.3f}' for r in ratio[:5].tolist())})")
    print(f'held-out relative error ||K - K_hat|| / ||K|| over {errors.numel()} kernels: '
          f'mean {errors.mean().item():.3%}, median {errors.median().item():.3%}, max {errors.max().item():.3%}')
    print(f'saved {args.output}')
    return 0


if __name__ == '__main__':
    from ssr.utils.cli import run_script

    raise SystemExit(run_script(main))
