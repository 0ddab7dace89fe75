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


def test_benchmark_prints_one_ratio_per_row(capsys):
    assert load_script('benchmark').main(['--sections', 'degradation', 'networks', '--batch', '2', '--size', '32',
                                          '--crop', '16', '--lr-size', '8', '--rounds', '1', '--threads', '1']) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith('| degradation') or line.startswith('| networks')]
    assert len(rows) == 5, out
    assert all('BasicSR uniform + noise + JPEG' in r for r in rows[:3]) and 'MANet estimator' in rows[3]
    assert all(float(r.split('|')[6]) > 0 for r in rows)  # the ratio column
