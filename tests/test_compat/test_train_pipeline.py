"""basicsr.train / basicsr.test run with ssr's option parser and resume exactly on any device."""
from __future__ import annotations

import pytest

from ssr.compat import train_pipeline
from ssr.utils.checkpoint import atomic_torch_save


def test_pipelines_use_the_replacements():
    import basicsr.test
    import basicsr.train

    from ssr.utils.options import parse_options

    train_pipeline.apply()  # a second application wraps nothing twice
    assert basicsr.train.parse_options is parse_options and basicsr.test.parse_options is parse_options
    assert basicsr.train.load_resume_state is train_pipeline.load_resume_state
    assert basicsr.train.copy_opt_file is train_pipeline.copy_opt_file
    assert basicsr.train.EnlargedSampler is train_pipeline.ResumableEnlargedSampler
    wrapped = basicsr.train.create_train_val_dataloader
    assert wrapped.ssr_wrapped and wrapped.__code__ is train_pipeline.wrap_create_train_val_dataloader(
        None).__code__


class _Indexed:
    """A dataset of 5 items that records the epochs it is told."""

    def __init__(self):
        self.epochs = []

    def __len__(self):
        return 5

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


def test_sampler_order_is_basicsr_and_skip_applies_to_one_epoch():
    from basicsr.data.data_sampler import EnlargedSampler

    dataset = _Indexed()
    sampler, reference = train_pipeline.ResumableEnlargedSampler(dataset, 1, 0, 2), EnlargedSampler(dataset, 1, 0, 2)
    sampler.set_epoch(3)
    reference.set_epoch(3)
    assert dataset.epochs == [3]
    sampler.skip = 4
    assert len(sampler) == 6
    assert list(sampler) == list(reference)[4:]
    assert len(sampler) == 10 and list(sampler) == list(reference)


def test_resume_state_found_under_root_on_cpu(tmp_path, monkeypatch):
    states = tmp_path / 'root' / 'experiments' / 'exp' / 'training_states'
    states.mkdir(parents=True)
    for it in (5, 40, 9):
        atomic_torch_save({'epoch': 0, 'iter': it, 'optimizers': [], 'schedulers': []}, states / f'{it}.state')
    monkeypatch.chdir(tmp_path)  # not the root: basicsr would look in ./experiments
    opt = {'auto_resume': True, 'name': 'exp',
           'path': {'training_states': str(states), 'models': str(states.parent / 'models'), 'resume_state': None}}
    state = train_pipeline.load_resume_state(opt)
    assert state['iter'] == 40
    assert opt['path']['resume_state'] == str(states / '40.state')


# ssr's parser, installed as basicsr.train.parse_options, accepts the spellings of BasicSR, MANet and torch launchers
@pytest.mark.parametrize('argv', [['-opt', 'x.yml'], ['--opt', 'x.yml']], ids=['basicsr', 'manet'])
def test_opt_flag_spellings(argv):
    from ssr.utils.options import build_parser

    assert build_parser().parse_args(argv).opt == 'x.yml'


@pytest.mark.parametrize('argv', [['--local-rank=3'], ['--local_rank', '3']], ids=['torch2', 'torch1'])
def test_local_rank_spellings(argv):
    from ssr.utils.options import build_parser

    assert build_parser().parse_args(['-opt', 'x.yml', *argv]).local_rank == 3


def test_local_rank_from_environment(monkeypatch):
    from ssr.utils.options import build_parser

    monkeypatch.setenv('LOCAL_RANK', '5')
    assert build_parser().parse_args(['-opt', 'x.yml']).local_rank == 5
