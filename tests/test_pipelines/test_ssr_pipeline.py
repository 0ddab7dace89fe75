"""SSRPipeline: built from an option file it gives SSRModel.test's output for the same weights and seed; shapes and
ranges of SSROutput; the pixel-tile blender; the floor rule (no import of ssr.models)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from basicsr.archs import build_network
from basicsr.models import build_model

from ssr.pipelines import SSRPipeline, SSRPipelineConfig, tiled_fields
from ssr.pipelines.tiling import GaussianBlender
from ssr.utils.checkpoint import atomic_torch_save
from ssr.utils.options import inference_options, load_yaml
from tests.conftest import REPO, write_options
from tests.test_models.test_ssr_model import batch, tiny_opt

TWIN = REPO / 'tests/data/test_ssr_lite_x4.yml'  # tiny AMFUNet / DKENet / NBSR, conditions from SVKR, k = 11


def _save_weights(opt: dict, root: Path, keys: tuple[str, ...]) -> dict[str, str]:
    """Seeded random weights of ``network_<key>`` written as BasicSR checkpoints; the ``path`` entries naming them."""
    paths = {}
    for i, key in enumerate(keys):
        torch.manual_seed(10 + i)
        net = build_network(dict(opt[f'network_{key}']))
        atomic_torch_save({'params': net.state_dict()}, root / f'{key}.pth')
        paths[f'pretrain_network_{key}'] = str(root / f'{key}.pth')
    return paths


@pytest.fixture(scope='module')
def option_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('ssr_pipeline')
    paths = _save_weights(load_yaml(TWIN), root, ('g', 'e', 'sr'))
    return write_options(root / 'tiny_ssr.yml', {'_base_': str(TWIN), 'path': paths})


def _model_output(opt: dict, data: dict) -> torch.Tensor:
    torch.manual_seed(123)  # a different global RNG state than the pipeline's: only the weights and sampler.seed count
    model = build_model(opt)
    model.feed_data(data)
    model.test()
    return model.output


def test_from_option_file_equals_ssr_model_test(option_file):
    lq = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    pipe = SSRPipeline.from_option_file(option_file)
    out = pipe(lq)
    expected = _model_output(inference_options(option_file), {'lq': lq})
    assert torch.equal(out.sr, expected)
    assert out.sr.shape == out.blind_sr.shape == (1, 3, 32, 32) and 0 <= out.sr.min() and out.sr.max() <= 1
    assert out.kernel.shape == (1, 121, 8, 8)
    torch.testing.assert_close(out.kernel.sum(1), torch.ones(1, 8, 8))
    assert out.depth.shape[:2] == (1, 1) and torch.all(out.depth == 0.5)  # svkr.depth: none, a constant map


def test_data_conditions_equal_ssr_model_test(tmp_path):
    """conditions.source: data: the call takes the kernel and depth that SSRModel reads from the batch."""
    opt = tiny_opt(is_train=False)
    opt['path'].update(_save_weights(opt, tmp_path, ('g', )))
    data = {k: v for k, v in batch(seed=2, size=6).items() if k != 'gt'}  # LR 6 px: padded for the UNet
    out = SSRPipeline.from_options(opt)(data['lq'], data['kernel'], data['depth'])
    assert out.blind_sr is None and out.kernel is data['kernel']
    assert torch.equal(out.sr, _model_output(opt, data))


def test_data_conditions_need_kernel_and_depth():
    opt = tiny_opt(is_train=False)
    with pytest.raises(ValueError, match='conditions.source: data needs the kernel field and the depth map'):
        SSRPipeline.from_options(opt)(torch.rand(1, 3, 8, 8))


def test_svkr_conditions_need_the_networks():
    opt = tiny_opt(is_train=False, conditions={'source': 'svkr'}, network_e={'type': 'DKENet'},
                   network_sr={'type': 'NBSR'})
    config = SSRPipelineConfig.from_options(opt)
    unet = build_network(dict(opt['network_g']))
    with pytest.raises(ValueError, match='needs the estimator and the non-blind SR network'):
        SSRPipeline(unet, config.build_first_stage(), config)


def test_pixel_tiles_of_a_pointwise_model_blend_back_exactly():
    x = torch.rand(1, 3, 37, 29, generator=torch.Generator().manual_seed(0))

    def run(tile):
        return {'sr': torch.nn.functional.interpolate(tile, scale_factor=4), 'kernel': tile[:, :2] + 1, 'none': None}

    whole, tiled = run(x), tiled_fields(run, x, tile=13, overlap=5)
    torch.testing.assert_close(tiled['sr'], whole['sr'], rtol=0, atol=1e-6)
    torch.testing.assert_close(tiled['kernel'], whole['kernel'], rtol=0, atol=1e-6)
    assert tiled['none'] is None


def test_blender_rejects_a_field_off_the_tile_grid():
    blender = GaussianBlender(8, 8)
    blender.add(torch.zeros(1, 1, 8, 8), 0, 0, 4, 4)  # 2x grid
    with pytest.raises(ValueError, match='does not match the 2x grid'):
        blender.add(torch.zeros(1, 1, 12, 12), 4, 4, 4, 4)


def test_pipelines_do_not_import_models_or_scripts():
    """The floor rule: ssr.pipelines sits below ssr.models and the scripts."""
    for path in sorted((REPO / 'ssr/pipelines').glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ''] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith(('ssr.models', 'ssr.tools', 'scripts')) for n in names), (path.name, names)
