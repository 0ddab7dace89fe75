"""Where a dataset's images come from: a folder, a folder + ``meta_info`` list, a BasicSR LMDB or an MMSR LMDB.

An :class:`ImageSource` lists its keys at construction (so a missing or empty source fails before training) and
opens files lazily, once per worker process (BasicSR's ``FileClient`` convention).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ssr.data.image_io import decode_depth, decode_image, list_images

BACKENDS = ('disk', 'lmdb', 'mmsr_lmdb')


def lmdb_sizes(folder: str | os.PathLike) -> list[tuple[int, int]]:
    """``(h, w)`` of every entry of a BasicSR LMDB, from the ``(h,w,c)`` field of ``meta_info.txt``."""
    with open(os.path.join(folder, 'meta_info.txt'), encoding='ascii') as f:
        fields = [line.split()[1].strip('()').split(',') for line in f if line.strip()]
    return [(int(h), int(w)) for h, w, *_ in fields]


def lmdb_keys(folder: str | os.PathLike) -> list[str]:
    """Keys of a BasicSR-format LMDB in ``meta_info.txt`` order, dots included.

    BasicSR's ``paths_from_lmdb`` keeps the text before the first dot, so ``0001.s001`` would read as ``0001``;
    here only the final extension (``.png``) of the first token is removed.
    """
    with open(os.path.join(folder, 'meta_info.txt'), encoding='ascii') as f:
        return [line.split()[0].rsplit('.', 1)[0] for line in f if line.strip()]


def backend_of(root: str, io_backend: dict | None) -> str:
    """The backend named by ``io_backend.type``, or guessed from the folder (``*.lmdb`` with ``meta_info.pkl``)."""
    kind = (io_backend or {}).get('type')
    if kind is None:
        if root.endswith('.lmdb'):
            kind = 'mmsr_lmdb' if os.path.isfile(os.path.join(root, 'meta_info.pkl')) else 'lmdb'
        else:
            kind = 'disk'
    if kind not in BACKENDS:
        raise ValueError(f'io_backend.type {kind!r} not in {BACKENDS}')
    return kind


class ImageSource:
    """Keys and decoded images of one data root.

    Args:
        root: a folder of images, a BasicSR LMDB (``data.mdb`` + ``meta_info.txt``) or an MMSR LMDB
            (``data.mdb`` + ``meta_info.pkl``).
        backend: one of ``BACKENDS``.
        meta_info_file: optional text file listing the images to use (first token per line, relative to ``root``),
            as in BasicSR's ``meta_info`` lists (``disk`` only).
        option: the option key that named ``root``, used in error messages.

    Raises:
        FileNotFoundError: ``root`` or ``meta_info_file`` does not exist.
        ValueError: the source holds no image.
    """

    def __init__(self, root: str, backend: str = 'disk', meta_info_file: str | None = None, option: str = 'dataroot'):
        self.root, self.backend, self.option = str(root), backend, option
        self.sizes: list[tuple[int, int]] | None = None  # (h, w) per key when the source lists them (LMDB)
        if not os.path.exists(self.root):
            raise FileNotFoundError(f'{option}: {self.root!r} does not exist')
        self._client = None
        if backend == 'disk':
            if meta_info_file:
                if not os.path.isfile(meta_info_file):
                    raise FileNotFoundError(f'meta_info_file: {meta_info_file!r} does not exist')
                with open(meta_info_file, encoding='utf-8') as f:
                    names = [line.split()[0] for line in f if line.strip()]
                self.keys = [os.path.join(self.root, n) for n in names]
            else:
                self.keys = [str(p) for p in list_images(self.root)]
        elif backend == 'lmdb':
            if not os.path.isfile(os.path.join(self.root, 'meta_info.txt')):
                raise FileNotFoundError(f'{option}: {self.root!r} is not a BasicSR LMDB (no meta_info.txt)')
            self.keys = lmdb_keys(self.root)
            self.sizes = lmdb_sizes(self.root)
        elif backend == 'mmsr_lmdb':
            from ssr.data.mmsr_lmdb import MMSRLmdbReader

            self._client = MMSRLmdbReader(self.root)
            self.keys = list(self._client.keys)
        else:
            raise ValueError(f'io_backend.type {backend!r} not in {BACKENDS}')
        if not self.keys:
            raise ValueError(f'{option}: {self.root!r} holds no image')

    def __len__(self) -> int:
        return len(self.keys)

    def keep(self, indices: list[int]) -> None:
        """Restrict the source to ``indices`` (e.g. images at least as large as a crop)."""
        self.keys = [self.keys[i] for i in indices]
        if self.sizes is not None:
            self.sizes = [self.sizes[i] for i in indices]

    def name(self, index: int) -> str:
        """File stem (disk) or key (LMDB) of an image, used to pair sources and to name outputs."""
        key = self.keys[index]
        return Path(key).stem if self.backend == 'disk' else key

    def _bytes(self, key: str) -> bytes:
        if self.backend == 'disk':
            with open(key, 'rb') as f:
                return f.read()
        if self._client is None:
            from basicsr.utils import FileClient

            self._client = FileClient('lmdb', db_paths=[self.root], client_keys=['img'])
        return self._client.get(key, 'img')

    def source(self, index: int) -> str:
        """A human-readable location of an image for error messages."""
        key = self.keys[index]
        return key if self.backend == 'disk' else f'{self.root}[{key}]'

    def read_image(self, index: int) -> np.ndarray:
        """``(H, W, 3)`` float32 RGB in [0, 1] (policy of :mod:`ssr.data.image_io`)."""
        if self.backend == 'mmsr_lmdb':
            img = self._client.read(self.keys[index])
            if img.ndim == 2 or img.shape[2] == 1:
                img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
            return np.ascontiguousarray(img[..., 2::-1].astype(np.float32) / 255.0)
        return decode_image(self._bytes(self.keys[index]), self.source(index))

    def read_depth(self, index: int) -> np.ndarray:
        """``(H, W)`` float32 depth in [0, 1]."""
        if self.backend == 'mmsr_lmdb':
            raise ValueError(f'{self.option}: MMSR LMDBs hold images, not depth maps')
        return decode_depth(self._bytes(self.keys[index]), self.source(index))

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.backend != 'mmsr_lmdb':
            state['_client'] = None  # reopened lazily in each worker process
        return state
