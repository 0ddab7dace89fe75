"""scripts/benchmark_ssr_vs_ldm.py runs at the tiniest size and prints one row per model and part (figures not
asserted)."""
from __future__ import annotations

import re

from tests.conftest import load_script


def test_benchmark_ssr_prints_every_part(capsys):
    bench = load_script('benchmark_ssr_vs_ldm')
    assert bench.main(['--unet-size', 'tiny', '--lr-size', '8', '--steps', '1', '--repeats', '1', '--threads', '1']) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if re.match(r'\| (SSR|LDM-SR UNet) \|', line)]
    parts = [(r.split(' | ')[0][2:], r.split(' | ')[5]) for r in rows]
    assert parts == [('SSR', p) for p in bench.SSR_PARTS] + [('LDM-SR UNet', p) for p in bench.BASELINE_PARTS]
    assert all(' | 1 | 1 | fp32 | ' in r for r in rows)


def test_benchmark_ssr_rejects_a_bad_lr_size():
    assert load_script('benchmark_ssr_vs_ldm').main(['--unet-size', 'tiny', '--lr-size', '12']) == 1
