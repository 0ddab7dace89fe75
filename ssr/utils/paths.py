"""Where ``experiments/``, ``results/`` and ``tb_logger/`` land, and how relative paths in options resolve."""
from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = 'SSR_ROOT'


def repo_root() -> Path:
    """The root that relative option paths and output folders refer to.

    ``$SSR_ROOT`` when set, else the folder holding the ``ssr`` package (the repository root for a clone or an
    editable install), independent of the working directory.
    """
    env = os.environ.get(ROOT_ENV)
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2]
