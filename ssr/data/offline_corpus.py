"""The offline training corpus: an HR LMDB built from photographs available offline (``docs/prepare_datasets.md``).
CLI: ``scripts/prepare_offline_corpus.py``.

Sources:
    - ``<shared-datasets>/T91`` and ``<shared-datasets>/BSD200`` (Set5 / Set14 stay for validation);
    - Debian packages of photographs (``packages``), fetched with ``apt-get download`` and unpacked with
      ``dpkg -x`` into ``workdir``; a package that apt cannot fetch is skipped with a warning. Only ``.jpg``,
      ``.jpeg`` and ``.png`` files are used; Plasma's ``screenshot.*`` previews are left out, and of the same
      wallpaper at several resolutions (``5120x2880.png``, ``1080x1920.png``) only the largest is kept. For
      ``opencv-doc`` only ``examples/data`` (sample photographs) is used, not the HTML figures.

Steps: every image is shrunk so that its longer side is at most ``max_side`` (the wallpapers are JPEG-compressed
at 4-5K; shrinking by 2-4x hides the artefacts, so they can serve as ground truth), cut into sub-images
(:mod:`ssr.data.subimages`) and packed into ``<output>/train_hr_sub.lmdb`` (:mod:`ssr.data.basicsr_lmdb`).
``<output>/manifest.json`` maps every source file (``<source>/<relative path>``) to its number of sub-images.
A source file that cannot be read is listed under ``failed`` (the others are still packed).
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

from ssr.data.basicsr_lmdb import create_lmdb
from ssr.data.subimages import extract_subimages

__all__ = ['DEFAULT_PACKAGES', 'SHARED_TRAINING_SETS', 'LMDB_NAME', 'MANIFEST_NAME', 'fetch_debian_package',
           'collect_images', 'staged_name', 'stage_sources', 'prepare_offline_corpus']

logger = logging.getLogger(__name__)

DEFAULT_PACKAGES = ('mate-backgrounds', 'plasma-workspace-wallpapers', 'lomiri-wallpapers-16.04', 'opencv-doc')
SHARED_TRAINING_SETS = ('T91', 'BSD200')
# where a package keeps its photographs (relative to the unpacked root); other packages: usr/share
PACKAGE_IMAGE_DIRS = {'opencv-doc': 'usr/share/doc/opencv-doc/examples/data'}
PHOTO_EXTENSIONS = ('.jpg', '.jpeg', '.png')
LMDB_NAME = 'train_hr_sub.lmdb'
MANIFEST_NAME = 'manifest.json'
_RESOLUTION = re.compile(r'(\d+)x(\d+)')


def fetch_debian_package(package: str, workdir: Path) -> Path | None:
    """Unpack a Debian package into ``<workdir>/debian/<package>`` and return its photo folder.

    An already unpacked package is reused. Needs ``apt-get`` (with package lists) and ``dpkg``.

    Returns:
        The folder to collect photographs from, or ``None`` (with a warning) when apt or dpkg failed.
    """
    target = workdir / 'debian' / package
    if not target.is_dir():
        debs = workdir / 'debs'
        debs.mkdir(parents=True, exist_ok=True)
        try:
            found = sorted(debs.glob(f'{package}_*.deb'))
            if not found:
                _run(['apt-get', 'download', package], cwd=debs)
                found = sorted(debs.glob(f'{package}_*.deb'))
            if not found:
                raise RuntimeError(f'apt-get download left no {package}_*.deb in {debs}')
            tmp = target.with_name(package + '.tmp')
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)  # dpkg -x creates only the last folder
            _run(['dpkg', '-x', str(found[-1]), str(tmp)])
            tmp.rename(target)
        except (OSError, RuntimeError) as e:
            logger.warning('Debian package %s skipped: %s', package, e)
            return None
    return target / PACKAGE_IMAGE_DIRS.get(package, 'usr/share')


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}')


def collect_images(root: Path) -> list[Path]:
    """Photographs under ``root`` (recursive), without previews and lower-resolution duplicates, sorted.

    Files named ``screenshot.*`` are dropped. Files in the same folder whose names differ only by a ``WxH``
    resolution token (``Elephants_3840x2160.jpg`` / ``Elephants_5640x3172.jpg``) count as one wallpaper: the one
    with the most pixels (by the token, then by file size) is kept.
    """
    if not root.is_dir():
        return []
    best: dict[tuple[Path, str], Path] = {}
    for path in sorted(p for p in root.rglob('*') if p.is_file() and p.suffix.lower() in PHOTO_EXTENSIONS):
        if path.stem.lower() == 'screenshot':
            continue
        group = (path.parent, _RESOLUTION.sub('', path.stem).strip('_- ').lower())
        if group not in best or _size_rank(path) > _size_rank(best[group]):
            best[group] = path
    return sorted(best.values())


def _size_rank(path: Path) -> tuple[int, int]:
    match = _RESOLUTION.search(path.stem)
    return (int(match.group(1)) * int(match.group(2)) if match else 0, path.stat().st_size)


def staged_name(source: str, relative: Path, taken: set[str]) -> str:
    """A file stem unique in ``taken`` made of ASCII letters, digits, ``_`` and ``-`` only.

    No dots: BasicSR's ``paths_from_lmdb`` cuts LMDB keys at the first dot.
    """
    base = re.sub(r'[^A-Za-z0-9_-]+', '_', f'{source}__{relative.with_suffix("").as_posix()}')
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f'{base}_{n}'
    taken.add(name.lower())
    return name


def stage_sources(sources: dict[str, list[Path]], roots: dict[str, Path], staging: Path) -> dict[Path, str]:
    """Link every source image into ``staging`` under a unique, key-safe name.

    Returns:
        staged path -> ``'<source>/<relative path>'`` (the manifest's name of the source file).
    """
    staging.mkdir(parents=True)
    taken: set[str] = set()
    staged = {}
    for source, paths in sources.items():
        for path in paths:
            relative = path.relative_to(roots[source])
            link = staging / (staged_name(source, relative, taken) + path.suffix.lower())
            link.symlink_to(path.resolve())
            staged[link] = f'{source}/{relative.as_posix()}'
    return staged


def prepare_offline_corpus(shared_datasets: Path, output: Path, *, packages: tuple[str, ...] = DEFAULT_PACKAGES,
                           workdir: Path | None = None, max_side: int = 1024, crop_size: int = 256, step: int = 128,
                           small_images: str = 'whole', workers: int = 2, overwrite: bool = False,
                           progress: bool = False) -> dict:
    """Collect, shrink, cut and pack the offline photographs; write the LMDB and the manifest under ``output``.

    Args:
        shared_datasets: folder holding ``T91/`` and ``BSD200/``.
        output: folder receiving ``train_hr_sub.lmdb`` and ``manifest.json``.
        packages: Debian packages to fetch (may be empty).
        workdir: cache for ``.deb`` files and unpacked packages; default ``<output>/work``.
        max_side: longer side in pixels above which images are shrunk (INTER_AREA).
        crop_size: sub-image size in pixels.
        step: distance between sub-images in pixels.
        small_images: ``'whole'`` or ``'skip'`` for images smaller than the crop
            (see :func:`~ssr.data.subimages.extract_subimages`).
        workers: worker processes for the sub-images; 0 runs in this process.
        overwrite: replace an existing LMDB and manifest.
        progress: show tqdm bars.

    Returns:
        The manifest (also written to ``<output>/manifest.json``).

    Raises:
        FileNotFoundError: a shared training set is missing.
        FileExistsError: the LMDB or the manifest exists and ``overwrite`` is False.
        ValueError: no images were found, or a bad setting.
    """
    shared_datasets, output = Path(shared_datasets), Path(output)
    workdir = Path(workdir) if workdir is not None else output / 'work'
    lmdb_path, manifest_path = output / LMDB_NAME, output / MANIFEST_NAME
    for path in (lmdb_path, manifest_path):
        if path.exists() and not overwrite:
            raise FileExistsError(f'{path} exists; pass --overwrite to replace it')
    roots = {}
    for name in SHARED_TRAINING_SETS:
        roots[name] = shared_datasets / name
        if not roots[name].is_dir():
            raise FileNotFoundError(f'training set {name} not found: {roots[name]} is not a folder')
    skipped_packages = []
    for package in packages:
        root = fetch_debian_package(package, workdir)
        if root is None:
            skipped_packages.append(package)
        else:
            roots[package] = root
    sources = {name: collect_images(root) for name, root in roots.items()}
    if not any(sources.values()):
        raise ValueError(f'no images found in {", ".join(map(str, roots.values()))}')

    staging, sub_dir = workdir / 'staging', workdir / 'subimages'
    shutil.rmtree(staging, ignore_errors=True)
    staged = stage_sources(sources, roots, staging)
    try:
        result = extract_subimages(staging, sub_dir, crop_size=crop_size, step=step, thresh_size=0,
                                    max_side=max_side, small_images=small_images, workers=workers,
                                    overwrite=True, progress=progress)
        total = create_lmdb(sub_dir, lmdb_path, overwrite=overwrite, progress=progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(sub_dir, ignore_errors=True)
    manifest = {
        'lmdb': LMDB_NAME,
        'total_subimages': total,
        'settings': {'max_side': max_side, 'crop_size': crop_size, 'step': step, 'small_images': small_images},
        'sources': {name: str(root) for name, root in roots.items()},
        'skipped_packages': skipped_packages,
        'counts': {staged[Path(p)]: n for p, n in result.counts.items()},
        'failed': {staged[Path(p)]: reason for p, reason in result.failed.items()},
    }
    manifest['counts'] = dict(sorted(manifest['counts'].items()))
    tmp = manifest_path.with_name(MANIFEST_NAME + '.tmp')
    tmp.write_text(json.dumps(manifest, indent=2) + '\n', encoding='utf-8')
    tmp.replace(manifest_path)
    return manifest
