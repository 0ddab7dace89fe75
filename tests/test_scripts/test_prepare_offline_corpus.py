"""scripts/prepare_offline_corpus.py and ssr.data.offline_corpus without apt: collection, naming, apt failure, and
the end-to-end pipeline."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import pytest

from ssr.data import offline_corpus as prepare
from ssr.data.image_source import lmdb_keys
from tests.conftest import load_script, photo

script = load_script('prepare_offline_corpus')


def write(path: Path, size: int, name: str = 'coffee') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), photo(name, size))
    return path


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """``T91`` (one 48 px image) and ``BSD200`` (one 80 px image)."""
    root = tmp_path / 'shared'
    write(root / 'T91' / 't1.png', 48, 'astronaut')
    write(root / 'BSD200' / '100075.png', 80, 'chelsea')
    return root


@pytest.fixture
def unpacked_package(tmp_path: Path) -> Path:
    """A wallpaper package as ``dpkg -x`` would leave it in ``<workdir>/debian/``."""
    share = tmp_path / 'work' / 'debian' / 'fake-wallpapers.1' / 'usr' / 'share'
    write(share / 'backgrounds' / 'Lake_by_Someone.jpg', 256, 'rocket')
    return tmp_path / 'work'


def test_collect_images_drops_previews_and_smaller_duplicates(tmp_path):
    root = tmp_path / 'usr' / 'share'
    for rel in ('wallpapers/Altai/contents/images/5120x2880.png', 'wallpapers/Altai/contents/images/1080x1920.png',
                'wallpapers/Altai/contents/images_dark/1080x1920.png', 'wallpapers/Altai/contents/screenshot.png',
                'backgrounds/mate/Elephants_3840x2160.jpg', 'backgrounds/mate/Elephants_5640x3172.jpg',
                'backgrounds/mate/Gulp.PNG'):
        write(root / rel, 8)
    (root / 'backgrounds' / 'mate' / 'notes.txt').write_text('x')
    found = [p.relative_to(root).as_posix() for p in prepare.collect_images(root)]
    assert found == ['backgrounds/mate/Elephants_5640x3172.jpg', 'backgrounds/mate/Gulp.PNG',
                     'wallpapers/Altai/contents/images/5120x2880.png',
                     'wallpapers/Altai/contents/images_dark/1080x1920.png']


@pytest.mark.parametrize('source, relative, taken, expected', [
    ('lomiri-wallpapers-16.04', 'backgrounds/Wine by Jakkub.jpg', set(),
     'lomiri-wallpapers-16_04__backgrounds_Wine_by_Jakkub'),
    ('T91', 't1.png', {'t91__t1'}, 'T91__t1_2'),
], ids=['dots-and-spaces', 'collision'])
def test_staged_name_is_key_safe_and_unique(source, relative, taken, expected):
    assert prepare.staged_name(source, Path(relative), taken) == expected
    assert expected.lower() in taken


@pytest.mark.parametrize('failure', [
    lambda *a, **k: subprocess.CompletedProcess(a[0], 100, '', 'E: Unable to locate package nope'),
    lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError('apt-get')),
], ids=['apt-error', 'no-apt'])
def test_fetch_skips_a_package_apt_cannot_get(tmp_path, monkeypatch, caplog, failure):
    monkeypatch.setattr(prepare.subprocess, 'run', failure)
    assert prepare.fetch_debian_package('nope', tmp_path) is None
    assert 'Debian package nope skipped' in caplog.text
    assert not (tmp_path / 'debian' / 'nope').exists()


def test_fetch_reuses_an_unpacked_package(unpacked_package, monkeypatch):
    monkeypatch.setattr(prepare.subprocess, 'run', lambda *a, **k: pytest.fail('apt must not run'))
    root = prepare.fetch_debian_package('fake-wallpapers.1', unpacked_package)
    assert root == unpacked_package / 'debian' / 'fake-wallpapers.1' / 'usr' / 'share'


def test_pipeline_builds_lmdb_and_manifest(shared, unpacked_package, tmp_path):
    out = tmp_path / 'corpus'
    manifest = prepare.prepare_offline_corpus(shared, out, packages=('fake-wallpapers.1',), workdir=unpacked_package,
                                              max_side=128, crop_size=64, step=32, workers=0)
    # 256 px wallpaper -> 128 px -> 3 x 3 windows; 80 px -> 2 x 2; 48 px < crop -> one whole-image sub-image
    assert manifest['counts'] == {'BSD200/100075.png': 4, 'T91/t1.png': 1,
                                  'fake-wallpapers.1/backgrounds/Lake_by_Someone.jpg': 9}
    keys = lmdb_keys(out / 'train_hr_sub.lmdb')
    assert len(keys) == manifest['total_subimages'] == 14
    assert all('.' not in k for k in keys)
    shapes = sorted({line.split(' ')[1] for line in (out / 'train_hr_sub.lmdb' / 'meta_info.txt').open()})
    assert shapes == ['(48,48,3)', '(64,64,3)']
    assert json.loads((out / 'manifest.json').read_text()) == manifest
    assert not (unpacked_package / 'staging').exists() and not (unpacked_package / 'subimages').exists()


def test_missing_training_set(shared, tmp_path):
    (shared / 'T91' / 't1.png').unlink()
    (shared / 'T91').rmdir()
    with pytest.raises(FileNotFoundError, match='training set T91 not found'):
        prepare.prepare_offline_corpus(shared, tmp_path / 'corpus', packages=())


def test_cli_without_packages_and_overwrite_policy(shared, tmp_path):
    args = ['--shared-datasets', str(shared), '-o', str(tmp_path / 'corpus'), '--debian-packages',
            '--crop-size', '64', '--step', '64', '--workers', '0', '--quiet']
    assert script.main(args) == 0
    # 80 px: 2 x 2 windows (a 16 px remainder gets a border-flush window); 48 px: one whole-image sub-image
    assert json.loads((tmp_path / 'corpus' / 'manifest.json').read_text())['total_subimages'] == 5
    assert script.main(args) == 1
    assert script.main(args + ['--overwrite']) == 0
