"""ssr.tools.benchmark: pairs are timed interleaved, the ratio is the median of per-round ratios."""
from __future__ import annotations

import pytest

from ssr.tools.benchmark import BenchmarkSettings, Pair, build_pairs, format_table, measure_pairs


def test_pairs_run_interleaved_with_alternating_order(monkeypatch):
    calls = []
    pair = Pair('s', 'ours', lambda: calls.append('o'), 'peer', lambda: calls.append('p'), target=1.5)
    # a fake timer: each ssr call lasts 1 s, each peer call 2 s
    monkeypatch.setattr('ssr.tools.benchmark._timed', lambda fn, device: (fn(), 1.0 if calls[-1] == 'o' else 2.0)[1])
    rows = measure_pairs([pair], 'cpu', rounds=4, warmup=1)
    assert calls == ['o', 'p', 'o', 'p', 'p', 'o', 'o', 'p', 'p', 'o']
    assert rows[0]['ours_s'] == 1.0 and rows[0]['peer_s'] == 2.0 and rows[0]['ratio'] == 0.5
    table = format_table(rows, 'header')
    assert '| s | ours | 1000.0 | peer | 2000.0 | 0.50 | <= 1.5: met |' in table


def test_unknown_section_is_an_error():
    with pytest.raises(ValueError, match=r"unknown benchmark section\(s\) \['GPU'\]"):
        build_pairs(BenchmarkSettings(sections=['GPU']))
