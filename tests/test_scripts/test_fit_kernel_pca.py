"""scripts/fit_kernel_pca.py: writes a loadable PCA file, refuses to overwrite, rejects bad arguments."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from ssr.ops.kernel_pca import KernelPCA
from tests.conftest import load_script


@pytest.fixture(scope='module')
def script():
    return load_script('fit_kernel_pca')


def small_args(output: Path) -> list[str]:
    return ['--num-samples', '600', '--num-holdout', '100', '--output', str(output)]


def test_writes_a_loadable_file_and_reports(script, tmp_path, capsys):
    out = tmp_path / 'sub' / 'pca.pth'
    assert script.main(small_args(out)) == 0
    pca = KernelPCA.load(out)
    assert pca.kernel_size == 21 and pca.num_components == 15
    printed = capsys.readouterr().out
    assert 'explained variance' in printed and 'held-out relative error' in printed


def test_refuses_to_overwrite_without_flag(script, tmp_path, caplog):
    out = tmp_path / 'pca.pth'
    out.write_bytes(b'keep me')
    with caplog.at_level(logging.ERROR):
        assert script.main(small_args(out)) == 1
    assert out.read_bytes() == b'keep me'
    assert 'pass --overwrite' in caplog.text


def test_overwrite_replaces_the_file(script, tmp_path):
    out = tmp_path / 'pca.pth'
    out.write_bytes(b'old')
    assert script.main(small_args(out) + ['--overwrite', '--num-components', '8', '--kernel-size', '15']) == 0
    pca = KernelPCA.load(out)
    assert (pca.kernel_size, pca.num_components) == (15, 8)


@pytest.mark.parametrize('extra', [['--kernel-size', '20'], ['--sigma-range', '2', '1'], ['--num-components', '0'],
                                   ['--weighting', 'sqrt']],
                         ids=['even-kernel', 'reversed-sigma', 'zero-components', 'bad-choice'])
def test_bad_arguments_exit_2(script, tmp_path, extra):
    with pytest.raises(SystemExit) as exc:
        script.main(small_args(tmp_path / 'pca.pth') + extra)
    assert exc.value.code == 2


def test_saved_buffers_are_float32(script, tmp_path):
    out = tmp_path / 'pca.pth'
    assert script.main(small_args(out)) == 0
    pca = KernelPCA.load(out)
    assert pca.mean.dtype == pca.components.dtype == pca.explained_variance_ratio.dtype == torch.float32
