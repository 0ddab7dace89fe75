"""Where ``experiments/``, ``results/`` and ``tb_logger/`` land, how relative paths in options resolve, and atomic
folder writes."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

ROOT_ENV = 'SSR_ROOT'


def repo_root() -> Path:
    """The root that relative option paths and output folders refer to.

    ``$SSR_ROOT`` when set, else the folder holding the ``ssr`` package (the repository root for a clone or an
    editable install), independent of the working directory.
    """
    env = os.environ.get(ROOT_ENV)
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2]


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
