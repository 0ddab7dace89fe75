"""scripts/make_figures.py: each figure is a valid PNG of the expected size; refuses to overwrite."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ssr.utils.visualize import kernel_variance_map
from tests.conftest import PHOTOS, REPO, load_script, photo, tiny_blind_weights, write_options

figures = load_script('make_figures')
BAR = 18  # caption bar height of ssr.utils.visualize.label


@pytest.fixture(scope='module')
def testset(tmp_path_factory):
    root = tmp_path_factory.mktemp('fig')
    (root / 'hr').mkdir()
    for name in PHOTOS[:2]:
        cv2.imwrite(str(root / 'hr' / f'{name}.png'), photo(name, 48))
    assert load_script('generate_sv_testset').main(['-i', str(root / 'hr'), '-o', str(root / 'sv'), '--kernel-size',
                                                    '11', '--quiet']) == 0
    return root / 'sv'


def read(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8 and img.ndim == 3
    return img


def test_kernel_heatmap_and_depth(testset, tmp_path):
    name = PHOTOS[0]
    field = testset / 'kernel' / f'{name}.npz'
    assert figures.main(['kernel-heatmap', '-i', str(field), '--height', '100', '-o', str(tmp_path / 'k.png')]) == 0
    k = read(tmp_path / 'k.png')
    assert 100 <= k.shape[0] <= 200 and k.shape[1] > k.shape[0]  # map, title and colour bar
    # a fixed scale (--vmin / --vmax) changes the colours, not the layout
    assert figures.main(['kernel-heatmap', '-i', str(field), '--height', '100', '--vmin', '0', '--vmax', '50',
                         '-o', str(tmp_path / 'k2.png')]) == 0
    k2 = read(tmp_path / 'k2.png')
    assert k2.shape == k.shape and not np.array_equal(k2, k)
    assert figures.main(['depth', '-i', str(testset / 'depth' / f'{name}.png'), '--height', '100',
                         '-o', str(tmp_path / 'd.png')]) == 0
    assert 100 <= read(tmp_path / 'd.png').shape[0] <= 200
    assert figures.main(['depth', '-i', str(testset / 'depth' / f'{name}.png'), '-o', str(tmp_path / 'd.png')]) == 1


def test_constant_depth_is_said_in_the_title(tmp_path):
    from ssr.tools.figures import depth_figure

    flat = np.full((20, 20), 0.5, dtype=np.float32)
    np.save(tmp_path / 'flat.npy', flat)
    ramp = np.tile(np.linspace(0, 1, 20, dtype=np.float32), (20, 1))
    np.save(tmp_path / 'ramp.npy', ramp)
    a, b = depth_figure(tmp_path / 'flat.npy', 96), depth_figure(tmp_path / 'ramp.npy', 96)
    # same layout; the constant map's longer title (", constant 0.500") draws more dark pixels in the title band
    assert a.shape == b.shape
    assert (a[:15] < 128).sum() > (b[:15] < 128).sum()


def test_crops(testset, tmp_path):
    hr = testset / 'HR'
    args = ['crops', '--image', f'a={hr / (PHOTOS[0] + ".png")}', '--image', f'b={hr / (PHOTOS[1] + ".png")}',
            '--box', '4', '8', '16', '10', '--zoom', '3', '-o', str(tmp_path / 'c.png')]
    assert figures.main(args) == 0
    assert read(tmp_path / 'c.png').shape == (30 + BAR, 96, 3)
    assert figures.main(args[:-2] + ['--box', '40', '40', '16', '16', '-o', str(tmp_path / 'x.png')]) == 1


def test_svkr_strip(testset, tmp_path):
    paths = tiny_blind_weights(tmp_path)
    opt = write_options(tmp_path / 'o.yml', {'_base_': str(REPO / 'tests/data/test_blind_x4.yml'), 'num_gpu': 0,
                                             'svkr': {'iterations': 2}, 'path': paths})
    assert figures.main(['svkr-strip', '--opt', str(opt), '--testset', str(testset), '--name', PHOTOS[1],
                         '--height', '40', '-o', str(tmp_path / 's.png')]) == 0
    img = read(tmp_path / 's.png')
    assert 200 <= img.shape[0] <= 400 and 500 <= img.shape[1] <= 800  # 2 rows x (T + 1 + true) panels of 96 px
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 100  # drawn, not blank


def strip_iterates(count):
    from ssr.ops.kernels import gaussian_kernels

    sigma = torch.linspace(0.5, 3.0, 16)
    kernel = gaussian_kernels(sigma, sigma, 0.0, 11, 4).reshape(1, 4, 4, 121).permute(0, 3, 1, 2)
    depth = torch.linspace(0, 1, 16).reshape(1, 1, 16, 1).expand(1, 1, 16, 16)
    return [{'depth': depth, 'kernel': kernel, 'sr': depth} for _ in range(count)]


def test_svkr_strip_has_a_column_per_iterate_and_one_for_the_truth():
    from ssr.tools.figures import svkr_strip

    iterates = strip_iterates(2)
    narrow = svkr_strip(iterates, panel_px=96)
    wide = svkr_strip(iterates, true_depth=iterates[0]['depth'][0], true_kernel=iterates[0]['kernel'][0],
                      title='t', panel_px=96)
    assert narrow.dtype == np.uint8 and narrow.shape[2] == 3
    assert wide.shape[1] - narrow.shape[1] == 96 and wide.shape[0] > narrow.shape[0]  # one more column, a title


def test_svkr_strip_without_iterates_names_the_option():
    from ssr.tools.figures import svkr_strip

    with pytest.raises(ValueError, match='save_iterates'):
        svkr_strip([])


def test_variance_of_known_gaussians():
    from ssr.ops.kernels import gaussian_kernels

    k = gaussian_kernels(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.5]), 0.0, 21, 4)
    field = k.reshape(2, 441, 1, 1).expand(2, 441, 3, 3)
    var = kernel_variance_map(field)
    torch.testing.assert_close(var[:, 0, 0], torch.tensor([2.0, 6.25]), atol=0.05, rtol=0)
