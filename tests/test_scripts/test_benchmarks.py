"""Benchmark scripts run and print their tables (tiny sizes; the figures themselves are not asserted)."""
from __future__ import annotations

from tests.conftest import load_script


def test_benchmark_archs_prints_a_row(capsys):
    assert load_script('benchmark_archs').main(['--lr-size', '8', '--repeats', '1', '--only', 'DKENet',
                                                'MiDaS midas_v21_small_256']) == 0
    out = capsys.readouterr().out
    assert '| DKENet | 1.26 | 8² LR |' in out
    assert '| MiDaS midas_v21_small_256 | 21.32 | 256² image |' in out


def test_benchmark_degradation_prints_both_tables(capsys):
    assert load_script('benchmark_degradation').main(['--device', 'cpu', '--batch', '2', '--size', '32',
                                                      '--repeats', '1', '--peak-size', '64']) == 0
    out = capsys.readouterr().out
    assert 'patches/s' in out and 'polyphase' in out and 'MiB' in out
