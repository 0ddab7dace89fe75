"""``ssr.utils.cli``: one-line messages, exit codes and the clean-up after a failed run."""
from __future__ import annotations

import pytest

from ssr.utils.cli import one_line, run_pipeline
from ssr.utils.options import OptionError


def test_one_line_names_the_file_once_and_keeps_two_lines():
    assert one_line(OptionError('a.yml', 'train.total_iter', 'bad'), 'a.yml') == 'error: a.yml: train.total_iter: bad'
    assert one_line(ValueError('x'), 'b.yml') == 'error: b.yml: x'
    text = one_line(RuntimeError('one\ntwo\nthree\nfour'), None)
    assert text.splitlines() == ['error: one', 'two (and 2 more lines; --debug for the traceback)']


def test_failure_removes_new_folders_without_checkpoints_and_restores_archived(tmp_path, capsys):
    (tmp_path / 'experiments' / 'mine').mkdir(parents=True)
    (tmp_path / 'experiments' / 'mine' / 'note.txt').write_text('user data')

    def pipeline():
        exp = tmp_path / 'experiments'
        (exp / 'mine').rename(exp / 'mine_archived_20261203_101010')  # what BasicSR's mkdir_and_rename does
        (exp / 'mine' / 'models').mkdir(parents=True)
        (exp / 'saved' / 'models').mkdir(parents=True)
        (exp / 'saved' / 'models' / 'net_g_5.pth').write_bytes(b'x')
        (tmp_path / 'tb_logger' / 'mine').mkdir(parents=True)
        raise FloatingPointError('non-finite loss at iteration 6')

    assert run_pipeline(pipeline, tmp_path, is_train=True, argv=['-opt', 'o.yml']) == 2
    assert capsys.readouterr().err == 'error: o.yml: non-finite loss at iteration 6\n'
    assert (tmp_path / 'experiments' / 'mine' / 'note.txt').read_text() == 'user data'
    assert sorted(p.name for p in (tmp_path / 'experiments').iterdir()) == ['mine', 'saved']  # 'saved' resumes
    assert not (tmp_path / 'tb_logger' / 'mine').exists()


def test_test_run_failure_removes_partial_results(tmp_path):
    def pipeline():
        (tmp_path / 'results' / 'run' / 'visualization').mkdir(parents=True)
        (tmp_path / 'results' / 'run' / 'visualization' / 'a.png').write_bytes(b'x')
        raise ValueError('image shapes differ')

    assert run_pipeline(pipeline, tmp_path, is_train=False, argv=[]) == 2
    assert not (tmp_path / 'results' / 'run').exists()


def test_ctrl_c_is_one_line_and_130(tmp_path, capsys):
    def pipeline():
        raise KeyboardInterrupt

    assert run_pipeline(pipeline, tmp_path, is_train=True, argv=[]) == 130
    assert capsys.readouterr().err == 'interrupted\n'


def test_debug_re_raises(tmp_path):
    def pipeline():
        raise ValueError('bad')

    with pytest.raises(ValueError, match='bad'):
        run_pipeline(pipeline, tmp_path, is_train=False, argv=['--debug'])


def test_other_errors_keep_their_traceback(tmp_path):
    def pipeline():
        raise TypeError('a bug')

    with pytest.raises(TypeError):
        run_pipeline(pipeline, tmp_path, is_train=False, argv=[])


def test_scripts_turn_ctrl_c_into_one_line(capsys):
    from ssr.utils.cli import run_script

    def main():
        raise KeyboardInterrupt

    assert run_script(main) == 130 and capsys.readouterr().err == 'interrupted\n'
    assert run_script(lambda: 3) == 3


def test_every_script_runs_through_run_script():
    from tests.conftest import REPO

    for path in sorted((REPO / 'scripts').glob('*.py')):
        assert 'raise SystemExit(run_script(main))' in path.read_text(), path.name
