"""scripts/benchmark_components.py: one table of every component and the end-to-end run of an SSR option file (tiny
twin)."""
from __future__ import annotations

from tests.conftest import REPO, load_script, write_options

benchmark = load_script('benchmark_components')


def test_prints_every_component_and_end_to_end(capsys):
    opt = str(REPO / 'tests/data/test_ssr_lite_x4.yml')
    assert benchmark.main(['--opt', opt, '--lr-size', '8', '--repeats', '1', '--threads', '1']) == 0
    out = capsys.readouterr().out
    for row in ('| degradation (training, HR 32 px) |', '| DKENet |', '| NBSR |', '| SVKR (T = 0, depth none) |',
                '| AMFUNet, one step |', '| sampling (dpmsolver++, 3 steps, from noise) |', '| end to end (SSRModel.test) |',
                '| consistency step (10 CG iterations, weight 0.001), per corrected sampler step |'):
        assert row in out, out
    ms = {line.split('|')[1].strip(): float(line.split('|')[2]) for line in out.splitlines()
          if line.startswith('| ') and 'component' not in line}
    assert all(v >= 0 for v in ms.values()) and ms['end to end (SSRModel.test)'] > ms['DKENet'] > 0
    assert ms['consistency step (10 CG iterations, weight 0.001), per corrected sampler step'] > 0


def test_consistency_row_reads_the_options(capsys, tmp_path):
    opt = write_options(tmp_path / 'c.yml', {'_base_': str(REPO / 'tests/data/test_ssr_lite_consistent_x4.yml'),
                                             'sampler': {'consistency': {'iters': 3, 'weight': 0.01}}})
    assert benchmark.main(['--opt', str(opt), '--lr-size', '8', '--repeats', '1', '--threads', '1']) == 0
    assert '| consistency step (3 CG iterations, weight 0.01), per corrected sampler step |' in capsys.readouterr().out


def test_rejects_an_option_file_without_svkr(capsys):
    assert benchmark.main(['--opt', str(REPO / 'tests/data/test_ssr_x4_oracle.yml'), '--lr-size', '8']) == 2
    assert 'conditions.source: svkr' in capsys.readouterr().err
