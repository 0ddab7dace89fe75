"""Read and write the old MMSR LMDB layout in which MANet and DCLS ship their test sets.

Layout of a folder (its name need not end in ``.lmdb``)::

    data.mdb, lock.mdb   key (ASCII) -> raw uint8 pixels of shape (H, W, C), BGR, row-major
    meta_info.pkl        {'name': str, 'keys': [str, ...], 'resolution': ['C_H_W', ...]}

``resolution`` holds one ``'C_H_W'`` string shared by all keys (a one-element list, or a bare string) or one per
key, in the order of ``keys``. A value decodes as ``np.frombuffer(buf, np.uint8).reshape(H, W, C)``.

``meta_info.pkl`` is unpickled without resolving any global (no class, no function can be built), then checked to be
a dict whose values are strings or lists of strings; anything else is rejected with an error naming the folder.
This module is pure I/O: no registry, no torch.
"""
from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np

from ssr.utils.paths import atomic_folder

META_FILE = 'meta_info.pkl'


@dataclass(frozen=True)
class MMSRMetaInfo:
    """Validated content of ``meta_info.pkl``.

    Attributes:
        name: dataset name (the folder name when the pickle has none).
        keys: LMDB keys in file order.
        shapes: key -> ``(H, W, C)``.
    """

    name: str
    keys: list[str]
    shapes: dict[str, tuple[int, int, int]]


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global, so only built-in containers and scalars can be built."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f'global {module}.{name} is not allowed')


def _parse_resolution(text: str, where: str) -> tuple[int, int, int]:
    """``'C_H_W'`` -> ``(H, W, C)``."""
    parts = text.split('_')
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f'{where}: resolution {text!r} is not of the form C_H_W with positive integers')
    c, h, w = (int(p) for p in parts)
    return h, w, c


def parse_meta_info(meta: object, folder: str | Path) -> MMSRMetaInfo:
    """Validate an unpickled ``meta_info.pkl`` and return keys and shapes.

    Raises:
        ValueError: ``meta`` is not a dict of strings / lists of strings, ``keys`` is missing, empty, not unique or
            not ASCII, or ``resolution`` is missing, malformed or of the wrong length (the message names the folder).
    """
    where = str(Path(folder) / META_FILE)
    if not isinstance(meta, dict):
        raise ValueError(f'{where}: expected a dict, got {type(meta).__name__}')
    for field, value in meta.items():
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        if not isinstance(field, str) or not ok:
            raise ValueError(f'{where}: entry {field!r} must be a string or a list of strings, '
                             f'got {type(value).__name__}')
    for field in ('keys', 'resolution'):
        if field not in meta:
            raise ValueError(f'{where}: missing entry {field!r} (found {sorted(meta)})')
    keys = meta['keys']
    if not isinstance(keys, list) or not keys:
        raise ValueError(f'{where}: keys must be a non-empty list of strings')
    if len(set(keys)) != len(keys) or not all(k.isascii() for k in keys):
        raise ValueError(f'{where}: keys must be unique ASCII strings')
    resolution = meta['resolution']
    if isinstance(resolution, str):
        resolution = [resolution]
    if len(resolution) == 1:
        resolution = resolution * len(keys)
    if len(resolution) != len(keys):
        raise ValueError(f'{where}: {len(resolution)} resolutions for {len(keys)} keys (expected 1 or one per key)')
    shapes = {k: _parse_resolution(r, where) for k, r in zip(keys, resolution)}
    name = meta.get('name', Path(folder).name)
    if not isinstance(name, str):
        raise ValueError(f'{where}: name must be a string')
    return MMSRMetaInfo(name=name, keys=list(keys), shapes=shapes)


def read_meta_info(folder: str | Path) -> MMSRMetaInfo:
    """Load ``<folder>/meta_info.pkl`` safely (see the module docstring) and validate it.

    Raises:
        FileNotFoundError: ``folder`` has no ``meta_info.pkl``.
        ValueError: the pickle does not load or does not have the MMSR structure (the message names the folder).
    """
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f'{folder} is not an MMSR LMDB: {META_FILE} is missing')
    try:
        meta = _NoGlobalsUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as e:  # a bad pickle can raise many types (UnpicklingError, EOFError, ValueError, ...)
        raise ValueError(f'{path}: not a plain meta_info pickle ({type(e).__name__}: {e})') from e
    return parse_meta_info(meta, folder)


class MMSRLmdbReader:
    """Random access to the images of an MMSR LMDB folder.

    The LMDB environment is opened on the first :meth:`read` in each process (also after a fork or in a
    ``DataLoader`` worker, since pickling drops it), read-only and without locks.

    Args:
        folder: the LMDB folder holding ``data.mdb`` and ``meta_info.pkl``.

    Raises:
        FileNotFoundError: ``data.mdb`` or ``meta_info.pkl`` is missing.
        ValueError: ``meta_info.pkl`` is malformed.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not (self.folder / 'data.mdb').is_file():
            raise FileNotFoundError(f'{self.folder} is not an LMDB folder: data.mdb is missing')
        meta = read_meta_info(self.folder)
        self.name = meta.name
        self._keys = meta.keys
        self._shapes = meta.shapes
        self._env: lmdb.Environment | None = None
        self._pid: int | None = None

    @property
    def keys(self) -> list[str]:
        """Keys in ``meta_info.pkl`` order (a copy)."""
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._shapes

    def shape(self, key: str) -> tuple[int, int, int]:
        """``(H, W, C)`` of ``key`` according to ``meta_info.pkl``."""
        self._check_key(key)
        return self._shapes[key]

    def read(self, key: str) -> np.ndarray:
        """The image stored under ``key``.

        Returns:
            ``(H, W, C)`` uint8, BGR, writable.

        Raises:
            KeyError: ``key`` is not listed in ``meta_info.pkl`` or has no value in ``data.mdb``.
            ValueError: the stored value's size disagrees with its resolution.
        """
        self._check_key(key)
        h, w, c = self._shapes[key]
        with self._open().begin(write=False) as txn:
            buf = txn.get(key.encode('ascii'))
            if buf is None:
                raise KeyError(f'{key!r} is listed in {self.folder / META_FILE} but missing from its data.mdb')
            if len(buf) != h * w * c:
                raise ValueError(f'{self.folder}: value of {key!r} has {len(buf)} bytes, its resolution '
                                 f'{c}_{h}_{w} needs {h * w * c}')
            return np.frombuffer(buf, np.uint8).reshape(h, w, c).copy()

    def close(self) -> None:
        """Close the environment of this process (a later :meth:`read` reopens it)."""
        if self._env is not None and self._pid == os.getpid():
            self._env.close()
        self._env, self._pid = None, None

    def __enter__(self) -> MMSRLmdbReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_env'], state['_pid'] = None, None
        return state

    def _check_key(self, key: str) -> None:
        if key not in self._shapes:
            raise KeyError(f'{key!r} is not a key of {self.folder} ({len(self._keys)} keys in {META_FILE})')

    def _open(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():  # an environment must not be used across a fork
            self._env = lmdb.open(str(self.folder), readonly=True, lock=False, readahead=False, meminit=False)
            self._pid = os.getpid()
        return self._env


def write_mmsr_lmdb(folder: str | Path, images: dict[str, np.ndarray], *, name: str | None = None,
                    per_key_resolution: bool = False, overwrite: bool = False) -> None:
    """Write ``images`` as an MMSR LMDB folder (built as ``<folder>.tmp`` and renamed).

    Args:
        folder: folder to create.
        images: key (ASCII) -> ``(H, W, C)`` or ``(H, W)`` uint8 image, BGR; written in the dict's order.
        name: ``meta_info['name']``; defaults to the folder name.
        per_key_resolution: write one resolution per key even when all images share one (by default a single
            shared ``'C_H_W'`` is written when they do).
        overwrite: replace an existing ``folder``.

    Raises:
        ValueError: no images, a non-ASCII key, or an image that is not uint8 ``(H, W[, C])``.
        FileExistsError: ``folder`` exists and ``overwrite`` is False.
    """
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f'{folder} exists; pass overwrite=True to replace it')
    if not images:
        raise ValueError('images is empty')
    arrays, resolutions = {}, []
    for key, img in images.items():
        if not isinstance(key, str) or not key.isascii():
            raise ValueError(f'key {key!r} must be an ASCII string')
        img = np.asarray(img)
        if img.ndim == 2:
            img = img[..., None]
        if img.dtype != np.uint8 or img.ndim != 3:
            raise ValueError(f'image {key!r} must be uint8 (H, W) or (H, W, C), got {img.dtype} {img.shape}')
        arrays[key] = np.ascontiguousarray(img)
        h, w, c = img.shape
        resolutions.append(f'{c}_{h}_{w}')
    if not per_key_resolution and len(set(resolutions)) == 1:
        resolutions = resolutions[:1]
    meta = {'name': name if name is not None else folder.name, 'keys': list(arrays), 'resolution': resolutions}

    with atomic_folder(folder) as tmp:
        # raw values fill whole overflow pages; two extra pages per entry cover the B-tree
        map_size = sum(a.nbytes + 8192 for a in arrays.values()) * 2 + (1 << 20)
        env = lmdb.open(str(tmp), map_size=map_size)
        with env.begin(write=True) as txn:
            for key, img in arrays.items():
                txn.put(key.encode('ascii'), img.tobytes())
        env.close()
        with open(tmp / META_FILE, 'wb') as f:
            pickle.dump(meta, f, protocol=4)
