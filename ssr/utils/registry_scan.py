"""BasicSR's scandir convention: import every ``*_<suffix>.py`` file of a package so its classes register."""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType


def import_modules(package: str, folder: str, suffix: str) -> list[ModuleType]:
    """Import ``<package>.<name>`` for every ``<name>.py`` in ``folder`` whose name ends with ``suffix``."""
    names = sorted(p.stem for p in Path(folder).glob(f'*{suffix}.py'))
    return [importlib.import_module(f'{package}.{name}') for name in names]
