"""Where ``experiments/``, ``results/`` and ``tb_logger/`` land, how relative paths in options resolve, and atomic
folder writes."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

ROOT_ENV = 'SSR_ROOT'


def _package_parent() -> Path:
    """The folder holding the ``ssr`` package: the clone for a clone or an editable install, else site-packages."""
    return Path(__file__).resolve().parents[2]


def is_clone(folder: Path) -> bool:
    """Whether ``folder`` holds ssr's ``options/`` (a clone), not a site-packages folder."""
    return (folder / 'options').is_dir() and (folder / 'ssr').is_dir()


def repo_root() -> Path:
    """The root that relative option paths and output folders refer to.

    ``$SSR_ROOT`` when set; else the clone holding the ``ssr`` package (a clone or an editable install), independent
    of the working directory; else (a non-editable install into site-packages, which has no ``options/`` or
    ``weights/``) the working directory.
    """
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).resolve()
    parent = _package_parent()
    return parent if is_clone(parent) else Path.cwd().resolve()


def root_hint() -> str:
    """What to tell a user whose relative path did not resolve: empty in a clone, else how to point at one."""
    if os.environ.get(ROOT_ENV) or is_clone(_package_parent()):
        return ''
    return (f' (ssr is installed without its repository, so relative paths resolve against the working directory '
            f'{Path.cwd()}; set {ROOT_ENV}=<your ssr clone> to use its options/ and weights/)')


@contextmanager
def atomic_folder(target: str | os.PathLike, tmp: str | os.PathLike | None = None, *, create: bool = False):
    """Build a folder beside ``target`` and put it in place only when the block completes.

    Yields the temporary folder (``<target>.tmp`` unless ``tmp`` is given; a leftover from a killed run is removed
    first, and it is created when ``create``). On success an existing ``target`` is replaced by it; on any exception,
    Ctrl-C included, the temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    tmp = Path(tmp) if tmp is not None else target.with_name(target.name + '.tmp')
    shutil.rmtree(tmp, ignore_errors=True)
    if create:
        tmp.mkdir(parents=True)
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
