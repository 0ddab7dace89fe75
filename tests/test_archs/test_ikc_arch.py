"""IKC baseline: tiny-config arch checks, the reference key layout (yuanjunchai/IKC) and the correction loop."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ssr.archs.ikc_arch import SFTMD, IKCCorrector, IKCNet, IKCPredictor
from tests.test_archs.arch_testing import ArchTesterMixin

FIXTURE = Path(__file__).resolve().parents[1] / 'data' / 'official_keys' / 'ikc_x4.json'


def official_keys(name: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in json.loads(FIXTURE.read_text())[name].items()}


class TestIKCPredictor(ArchTesterMixin):
    arch = 'IKCPredictor'
    config = {'code_len': 4, 'nf': 8}

    def inputs(self):
        return {'lq': torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0))}

    def check_output(self, out, inputs):
        assert out.shape == (2, 4)


class TestIKCCorrector(ArchTesterMixin):
    arch = 'IKCCorrector'
    config = {'code_len': 4, 'nf': 8}

    def inputs(self):
        gen = torch.Generator().manual_seed(1)
        return {'sr': torch.rand(2, 3, 24, 20, generator=gen), 'code': torch.randn(2, 4, generator=gen)}

    def check_output(self, out, inputs):
        assert out.shape == (2, 4)


class TestSFTMD(ArchTesterMixin):
    arch = 'SFTMD'
    config = {'code_len': 4, 'scale': 4, 'nb': 1}

    def inputs(self):
        gen = torch.Generator().manual_seed(2)
        return {'lq': torch.rand(1, 3, 6, 5, generator=gen), 'code': torch.randn(1, 4, generator=gen)}

    def check_output(self, out, inputs):
        assert out.shape == (1, 3, 24, 20) and out.min() >= 0 and out.max() <= 1


class TestIKCNet(ArchTesterMixin):
    arch = 'IKCNet'
    config = {'code_len': 4, 'scale': 2, 'nb': 1, 'nf': 8, 'steps': 2}

    def inputs(self):
        return {'lq': torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))}

    def check_output(self, out, inputs):
        assert out.sr.shape == (1, 3, 16, 16) and out.code.shape == (1, 4) and len(out.iterates) == 2
        assert out.sr is out.iterates[-1]


@pytest.mark.parametrize('name, cls', [('Predictor', IKCPredictor), ('Corrector', IKCCorrector), ('SFTMD', SFTMD)])
def test_reference_key_layout_and_strict_load(name, cls):
    net = cls()
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == official_keys(name)
    gen = torch.Generator().manual_seed(4)
    state = {k: 0.02 * torch.randn(shape, generator=gen) for k, shape in official_keys(name).items()}
    net.load_state_dict(state, strict=True)


def test_ikcnet_runs_the_correction_loop_of_its_parts(tmp_path):
    torch.manual_seed(0)
    parts = {'predictor': IKCPredictor(code_len=4, nf=8), 'sftmd': SFTMD(code_len=4, scale=2, nb=1),
             'corrector': IKCCorrector(code_len=4, nf=8)}
    for name, net in parts.items():  # raw state_dicts, as the reference saves them (DataParallel prefix included)
        torch.save({f'module.{k}': v for k, v in net.state_dict().items()}, tmp_path / f'{name}.pth')
    ikc = IKCNet(code_len=4, scale=2, nb=1, nf=8, steps=3, **{f'{n}_path': str(tmp_path / f'{n}.pth') for n in parts})
    lq = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = ikc(lq)
        code = parts['predictor'](lq)  # test_IKC.py: SR with the current code, then correct the code
        for step in range(3):
            sr = parts['sftmd'](lq, code)
            torch.testing.assert_close(out.iterates[step], sr, rtol=0, atol=0)
            code = parts['corrector'](sr, code)
    torch.testing.assert_close(out.code, code, rtol=0, atol=0)


def test_ikcnet_rejects_a_part_file_of_another_network(tmp_path):
    torch.save(IKCPredictor(code_len=4, nf=8).state_dict(), tmp_path / 'p.pth')
    with pytest.raises(ValueError, match="does not fit IKCNet's Corrector"):
        IKCNet(code_len=4, nf=8, nb=1, corrector_path=str(tmp_path / 'p.pth'))
    with pytest.raises(ValueError, match='steps must be >= 1'):
        IKCNet(steps=0)
