"""SVKRConfig: one parser for the svkr block, reading SSRModel's old spelling (inside conditions) the same way."""
from __future__ import annotations

import logging

import pytest

from ssr.pipelines.svkr import SVKRConfig
from ssr.utils.options import OptionError

NEW = {'conditions': {'source': 'svkr'}, 'svkr': {'iterations': 1, 'gamma': 0.5, 'depth': 'file'}}
OLD = {'conditions': {'source': 'svkr', 'iterations': 1, 'gamma': 0.5, 'depth': 'file'}}


def test_both_spellings_give_the_same_config():
    assert SVKRConfig.from_options(NEW) == SVKRConfig.from_options(OLD) == SVKRConfig(1, 0.5, 'file', False)


@pytest.mark.parametrize('opt, expected', [
    ({}, SVKRConfig(3, 0.9, 'none', False)),
    ({'network_d': {'type': 'MiDaSDepth'}}, SVKRConfig(3, 0.9, 'midas', False)),
    ({'svkr': None}, SVKRConfig(3, 0.9, 'none', False)),
    ({'svkr': {'save_iterates': True, 'gamma': 1}}, SVKRConfig(3, 1.0, 'none', True)),
    ({'svkr': {'init': 'lr'}}, SVKRConfig(3, 0.9, 'none', False, 'lr')),
    ({'conditions': {'init': 'lr'}}, SVKRConfig(3, 0.9, 'none', False, 'lr')),
], ids=['defaults', 'midas_with_network_d', 'empty_block', 'int_gamma', 'init_lr', 'init_lr_old_spelling'])
def test_defaults(opt, expected):
    assert SVKRConfig.from_options(opt) == expected


def test_default_init_is_nbsr():
    assert SVKRConfig.from_options({}).init == SVKRConfig().init == 'nbsr'


def test_old_spelling_overrides_the_new_one_with_a_warning(caplog):
    """A user file in the old spelling written on top of a shipped file (new spelling) keeps its meaning."""
    opt = {'svkr': {'iterations': 0, 'depth': 'none'}, 'conditions': {'source': 'svkr', 'depth': 'midas'},
           'network_d': {'type': 'MiDaSDepth'}}
    with caplog.at_level(logging.WARNING):
        config = SVKRConfig.from_options(opt, where='user.yml')
    assert config == SVKRConfig(0, 0.9, 'midas', False)
    assert "user.yml: conditions.depth: 'midas' (old spelling) overrides svkr.depth: 'none'" in caplog.text


@pytest.mark.parametrize('opt, message', [
    # unknown keys, in either spelling
    ({'svkr': {'iteration': 3}}, "opt.yml: svkr.iteration: unknown key (did you mean 'iterations'?); svkr takes "
                                 "['depth', 'gamma', 'init', 'iterations', 'save_iterates']"),
    ({'svkr': {'initial': 'lr'}}, "opt.yml: svkr.initial: unknown key (did you mean 'init'?)"),
    ({'svkr': {'zzz': 1}}, "opt.yml: svkr.zzz: unknown key; svkr takes ['depth',"),
    ({'conditions': {'source': 'svkr', 'gama': 0.9}}, "opt.yml: conditions.gama: unknown key (did you mean 'gamma'?)"),
    # types and ranges, named as the file spells them
    ({'svkr': {'iterations': 1.5}}, 'opt.yml: svkr.iterations: expected an int >= 0, got 1.5'),
    ({'svkr': {'iterations': True}}, 'opt.yml: svkr.iterations: expected an int >= 0, got True'),
    ({'conditions': {'iterations': -1}}, 'opt.yml: conditions.iterations: expected an int >= 0, got -1'),
    ({'svkr': {'gamma': '0.9'}}, "opt.yml: svkr.gamma: expected a number in [0, 1], got '0.9'"),
    ({'svkr': {'gamma': 1.5}}, 'opt.yml: svkr.gamma: expected a number in [0, 1], got 1.5'),
    ({'svkr': {'depth': 'dpt'}}, "opt.yml: svkr.depth: 'dpt' not in ('midas', 'file', 'none')"),
    ({'svkr': {'init': 'bicubic'}}, "opt.yml: svkr.init: 'bicubic' not in ('nbsr', 'lr')"),
    ({'conditions': {'init': None}}, "opt.yml: conditions.init: None not in ('nbsr', 'lr')"),
    ({'svkr': {'save_iterates': 'yes'}}, "opt.yml: svkr.save_iterates: expected true or false, got 'yes'"),
    ({'svkr': [3, 0.9]}, 'opt.yml: svkr: expected a mapping, got [3, 0.9]'),
], ids=['unknown_new', 'unknown_close_to_init', 'unknown_far', 'unknown_old', 'float_T', 'bool_T', 'negative_T_old',
        'string_gamma', 'gamma_above_1', 'unknown_depth', 'unknown_init', 'null_init_old', 'string_flag',
        'not_a_mapping'])
def test_bad_block_is_a_one_line_error_naming_the_key(opt, message):
    with pytest.raises(OptionError) as err:
        SVKRConfig.from_options(opt, where='opt.yml')
    assert str(err.value).startswith(message) and '\n' not in str(err.value)


def test_midas_without_a_depth_network_is_an_error():
    config = SVKRConfig.from_options({'svkr': {'depth': 'midas'}})
    with pytest.raises(OptionError, match='svkr.depth: midas needs a network_d'):
        config.check_networks({'svkr': {'depth': 'midas'}}, where='opt.yml')


def test_direct_construction_is_checked():
    with pytest.raises(OptionError, match='svkr.gamma'):
        SVKRConfig(gamma=2.0)
