"""Option files: ``_base_`` inheritance, root-relative paths and validation errors naming the key and the file."""
from __future__ import annotations

import pytest
import yaml

import ssr  # noqa: F401
from ssr.utils.options import OptionError, closest_first, load_options, load_yaml, validate_options
from tests.test_entrypoints.tiny_options import tiny_test_options, tiny_train_options


def dump(path, opt):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def test_base_inheritance_merges_and_deletes(tmp_path):
    (tmp_path / 'sub').mkdir()
    dump(tmp_path / 'base.yml', {'name': 'b', 'train': {'lr': 1, 'betas': [0.9, 0.99]}, 'keep': {'a': 1, 'b': 2}})
    child = dump(tmp_path / 'sub' / 'child.yml', {'_base_': '../base.yml', 'name': 'c', 'train': {'lr': 2},
                                                  'keep': {'_delete_': True, 'z': 0}})
    assert load_yaml(child) == {'name': 'c', 'train': {'lr': 2, 'betas': [0.9, 0.99]}, 'keep': {'z': 0}}


def test_delete_alone_removes_an_inherited_key(tmp_path):
    dump(tmp_path / 'base.yml', {'name': 'b', 'network_d': {'type': 'MiDaSDepth'}, 'network_e': {'type': 'DKENet'}})
    child = dump(tmp_path / 'child.yml', {'_base_': 'base.yml', 'network_d': {'_delete_': True}})
    assert load_yaml(child) == {'name': 'b', 'network_e': {'type': 'DKENet'}}


def test_base_list_and_float_tag(tmp_path):
    dump(tmp_path / 'a.yml', {'x': 1, 'y': 1})
    dump(tmp_path / 'b.yml', {'y': 2})
    (tmp_path / 'c.yml').write_text('_base_: [a.yml, b.yml]\nlr: !!float 2e-4\n')
    assert load_yaml(tmp_path / 'c.yml') == {'x': 1, 'y': 2, 'lr': 2e-4}


def test_circular_base_is_an_error(tmp_path):
    dump(tmp_path / 'a.yml', {'_base_': 'b.yml'})
    dump(tmp_path / 'b.yml', {'_base_': 'a.yml'})
    with pytest.raises(OptionError, match='circular'):
        load_yaml(tmp_path / 'a.yml')


def test_missing_base_names_the_file_that_named_it(tmp_path):
    child = dump(tmp_path / 'child.yml', {'_base_': 'nope.yml'})
    with pytest.raises(FileNotFoundError, match=f'nope.yml.*named in {child}'):
        load_yaml(child)


def test_relative_paths_resolve_against_root(tmp_path, paired_folder):
    opt = tiny_test_options(paired_folder, 'x', tmp_path / 'w.pth')
    opt['path']['pretrain_network_g'] = 'experiments/pretrained_models/w.pth'
    opt['datasets']['test_1']['dataroot_gt'] = 'datasets/Set5/HR'
    loaded = load_options(dump(tmp_path / 'o.yml', opt), is_train=False, root=tmp_path / 'root')
    assert loaded['path']['pretrain_network_g'] == str(tmp_path / 'root/experiments/pretrained_models/w.pth')
    assert loaded['datasets']['test_1']['dataroot_gt'] == str(tmp_path / 'root/datasets/Set5/HR')


def test_closest_first():
    assert closest_first('RRDBnet', ['SwinIR', 'RRDBNet', 'EDSR'])[0] == 'RRDBNet'


def _edit(opt, dotted, value):
    keys = dotted.split('.')
    node = opt
    for k in keys[:-1]:
        node = node[k]
    if value is KeyError:
        node.pop(keys[-1])
    else:
        node[keys[-1]] = value
    return opt


BAD_TRAIN = [
    # unknown registered names list the registered ones, closest first
    ('network_g.type', 'RRDBnet', r"network_g\.type: 'RRDBnet' is not a registered arch; .*: RRDBNet"),
    ('model_type', 'SRModle', r"model_type: 'SRModle' is not a registered model; .*: SRModel"),
    ('datasets.train.type', 'PairedImageDatset', r'datasets\.train\.type: .*PairedImageDataset'),
    ('train.optim_g.type', 'Adamw', r'train\.optim_g\.type: .*AdamW'),
    ('train.pixel_opt.type', 'L1loss', r'train\.pixel_opt\.type: .*L1Loss'),
    ('train.scheduler.type', 'Cosine', r'train\.scheduler\.type'),
    # missing required keys
    ('name', KeyError, r': name: required option is missing'),
    ('train.total_iter', KeyError, r'train\.total_iter: required'),
    ('datasets.train.batch_size_per_gpu', KeyError, r'datasets\.train\.batch_size_per_gpu: required'),
    ('logger.print_freq', KeyError, r'logger\.print_freq'),
    # wrong value types
    ('train.total_iter', '20', r'train\.total_iter: expected int/float, got str'),
    ('train.total_iter', 2.5, r'train\.total_iter: expected a whole number'),
    ('train.optim_g.lr', '1e-3', r'train\.optim_g\.lr: expected float, got str.*!!float'),
    ('num_gpu', 'all', r"num_gpu: expected one of \('auto',\)"),
    ('scale', 4.0, r'scale: expected int, got float'),
    # arch arguments are checked against the constructor
    ('network_g.nf', 64, r"network_g\.nf: RRDBNet takes no option 'nf'"),
    ('datasets.bogus', {'name': 'x', 'type': 'PairedImageDataset'}, r'datasets\.bogus: dataset phase'),
    # a top-level key only another model reads would be ignored
    ('pca_matrix_path', 'pca.pth', r"pca_matrix_path: only IKCModel reads it, not model_type 'SVSRModel'"),
]


@pytest.mark.parametrize('key,value,match', BAD_TRAIN, ids=[f'{k}={v!r}'[:40] for k, v, _ in BAD_TRAIN])
def test_bad_train_options(tmp_path, paired_folder, key, value, match):
    opt = _edit(tiny_train_options(paired_folder, 'bad'), key, value)
    path = dump(tmp_path / 'bad.yml', opt)
    with pytest.raises(OptionError, match=match) as err:
        load_options(path, is_train=True, root=tmp_path)
    assert str(path) in str(err.value)


def test_test_options_need_weights_for_every_network(tmp_path, paired_folder):
    opt = tiny_test_options(paired_folder, 't', tmp_path / 'w.pth')
    validate_options(opt, 'ok.yml', is_train=False)
    opt['path']['pretrain_network_g'] = None
    with pytest.raises(OptionError, match=r'path\.pretrain_network_g: testing network_g \(RRDBNet\) needs'):
        validate_options(opt, 'bad.yml', is_train=False)


def test_not_a_mapping(tmp_path):
    (tmp_path / 'x.yml').write_text('- a\n- b\n')
    with pytest.raises(OptionError, match='must hold a mapping'):
        load_yaml(tmp_path / 'x.yml')
