"""Writer of BasicSR-format LMDBs from a folder of images (or depth maps); the readers are in
:mod:`ssr.data.image_source` (``lmdb_keys``, ``lmdb_sizes``, ``ImageSource``). CLI: ``scripts/create_lmdb.py``.

Layout (what BasicSR's ``FileClient('lmdb')`` and ``paths_from_lmdb`` read)::

    <output>.lmdb/
        data.mdb, lock.mdb     key -> PNG bytes
        meta_info.txt          one line per key: ``<key>.png (h,w,c) <compression>``

Keys are the file paths relative to the input folder, in POSIX form, without their extension
(``sub/0001_s001.png`` -> ``sub/0001_s001``). They must be ASCII without whitespace and unique. Keys may contain
dots (``0001.s001``) and are stored verbatim; ``import ssr`` fixes BasicSR 1.4.2's ``paths_from_lmdb``, which would
cut them at the first dot.

Images are stored as read (``cv2.IMREAD_UNCHANGED``: bit depth, gray or alpha are kept), as BasicSR does.
With ``depth=True`` (``--depth``) the folder holds depth maps, stored as single-channel 16-bit PNG with the scaling
``stored = round(depth * 65535)`` (0..65535 <-> 0..1):

    - 16-bit PNG: stored unchanged;
    - 8-bit PNG: widened exactly (``v * 257``, 0..255 -> 0..65535);
    - ``.npy``: a float ``(H, W)`` or ``(H, W, 1)`` array with finite values in [0, 1].

A file that does not decode stops the run: nothing is left behind (the LMDB is built in ``<output>.tmp`` and
renamed only when every file has been written) with a ``ValueError`` naming the file.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
from basicsr.utils.lmdb_util import LmdbMaker
from tqdm import tqdm

from ssr.data.image_io import IMAGE_EXTENSIONS

__all__ = ['DEPTH_EXTENSIONS', 'DEPTH_SCALE', 'list_files', 'key_of', 'check_keys', 'depth_to_uint16', 'read_entry',
           'raw_size_bound', 'create_lmdb']

DEPTH_EXTENSIONS = ('.png', '.npy')
DEPTH_SCALE = 65535  # stored uint16 value of depth 1.0
PNG_OVERHEAD = 4096  # bytes per image above the raw size that a PNG of incompressible pixels may take
LMDB_OVERHEAD = 16 * 1024 * 1024


def list_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Files under ``folder`` (recursively) whose extension is in ``extensions`` (case-insensitive), sorted."""
    return sorted(p for p in Path(folder).rglob('*') if p.is_file() and p.suffix.lower() in extensions)


def key_of(path: Path, root: Path) -> str:
    """LMDB key of ``path``: its POSIX path relative to ``root`` without the extension."""
    return path.relative_to(root).with_suffix('').as_posix()


def check_keys(keys: list[str], paths: list[Path]) -> None:
    """Raise ``ValueError`` naming the first key that BasicSR's meta_info format cannot hold, or a duplicate."""
    seen: dict[str, Path] = {}
    for key, path in zip(keys, paths):
        if not key.isascii() or any(ch.isspace() for ch in key):
            raise ValueError(f'{path}: key {key!r} must be ASCII without whitespace (LMDB keys are ASCII and '
                             'meta_info.txt is space-separated); rename the file')
        if key in seen:
            raise ValueError(f'{seen[key]} and {path} give the same key {key!r}; rename one of them')
        seen[key] = path


def depth_to_uint16(depth: np.ndarray, source: str) -> np.ndarray:
    """Convert a depth map to ``(H, W)`` uint16 with ``0..1 -> 0..65535``.

    Args:
        depth: ``(H, W)`` or ``(H, W, 1)``: uint16 (kept), uint8 (``* 257``) or float with finite values in [0, 1].
        source: name used in error messages.

    Raises:
        ValueError: more than one channel, an unsupported dtype, or float values outside [0, 1].
    """
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise ValueError(f'{source}: a depth map must be single-channel (H, W), got shape {depth.shape}')
    if depth.dtype == np.uint16:
        return depth
    if depth.dtype == np.uint8:
        return depth.astype(np.uint16) * 257
    if not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f'{source}: depth dtype {depth.dtype} is neither uint8, uint16 nor float')
    if not np.all(np.isfinite(depth)):
        raise ValueError(f'{source}: float depth must be finite and in [0, 1], got NaN or inf')
    if depth.min() < 0 or depth.max() > 1:
        raise ValueError(f'{source}: float depth must be finite and in [0, 1], got range '
                         f'[{depth.min()}, {depth.max()}]')
    return np.round(depth.astype(np.float64) * DEPTH_SCALE).astype(np.uint16)


def read_entry(path: Path, depth: bool) -> np.ndarray:
    """Read one image (as stored, ``IMREAD_UNCHANGED``) or one depth map (``(H, W)`` uint16).

    Raises:
        ValueError: the file does not decode (the message names the path) or is not a valid depth map.
    """
    if depth and path.suffix.lower() == '.npy':
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f'{path}: not a readable .npy file ({e})') from e
        return depth_to_uint16(arr, str(path))
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ValueError(f'{path}: not a decodable image (corrupt or not an image file)')
    return depth_to_uint16(img, str(path)) if depth else img


def raw_size_bound(path: Path, depth: bool) -> int:
    """Upper bound in bytes of the PNG that :func:`read_entry` + encoding makes of ``path``, from its header only.

    Raises:
        ValueError: the header cannot be read (the message names the path).
    """
    try:
        if path.suffix.lower() == '.npy':
            h, w = (np.load(path, mmap_mode='r', allow_pickle=False).shape + (1, 1))[:2]
            c = 1
        else:
            from PIL import Image

            with Image.open(path) as im:
                (w, h), c = im.size, len(im.getbands())
    except Exception as e:  # PIL raises several unrelated types for a bad header
        raise ValueError(f'{path}: not a readable {"depth map" if depth else "image"} ({e})') from e
    # 2 bytes per sample covers 16-bit PNGs (PIL reports 16-bit RGB as 8-bit 'RGB'), 4 channels covers alpha
    return h * w * max(c, 4) * 2 + PNG_OVERHEAD


def create_lmdb(input_dir: str | Path, output: str | Path, *, depth: bool = False, compression: int = 1,
                map_size: int | None = None, batch: int = 5000, overwrite: bool = False,
                progress: bool = False) -> int:
    """Pack every image (or depth map) under ``input_dir`` into the LMDB ``output``.

    Args:
        input_dir: folder searched recursively for images (``IMAGE_EXTENSIONS``) or, with ``depth``, ``.png`` /
            ``.npy`` depth maps.
        output: LMDB folder to create; must end with ``.lmdb``.
        depth: store single-channel 16-bit depth maps (see the module docstring for the scaling).
        compression: PNG compression level 0..9 of the stored bytes.
        map_size: LMDB map size in bytes; ``None`` derives an upper bound from the image headers.
        batch: entries per LMDB transaction.
        overwrite: replace an existing ``output``.
        progress: show a tqdm bar.

    Returns:
        The number of entries written.

    Raises:
        ValueError: bad settings, no input files, a bad key, or a file that does not decode (nothing is written).
        FileExistsError: ``output`` exists and ``overwrite`` is False.
    """
    input_dir, output = Path(input_dir), Path(output)
    if output.suffix != '.lmdb':
        raise ValueError(f'output {output} must end with .lmdb (BasicSR checks the suffix)')
    if not 0 <= compression <= 9:
        raise ValueError(f'compression {compression} not in 0..9')
    if output.exists() and not overwrite:
        raise FileExistsError(f'{output} exists; pass --overwrite to replace it')
    extensions = DEPTH_EXTENSIONS if depth else IMAGE_EXTENSIONS
    paths = list_files(input_dir, extensions)
    if not paths:
        raise ValueError(f'no files with extensions {extensions} under {input_dir}')
    keys = [key_of(p, input_dir) for p in paths]
    check_keys(keys, paths)
    if map_size is None:
        map_size = int(sum(raw_size_bound(p, depth) for p in paths) * 1.2) + LMDB_OVERHEAD

    tmp_dir = output.with_name(output.name + '.tmp')
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    tmp_dir.mkdir(parents=True)
    try:
        _write(tmp_dir / output.name, paths, keys, depth=depth, compression=compression, map_size=map_size,
               batch=batch, progress=progress)
        if output.exists():
            shutil.rmtree(output)
        (tmp_dir / output.name).rename(output)
        tmp_dir.rmdir()
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return len(paths)


def _write(lmdb_path: Path, paths: list[Path], keys: list[str], *, depth: bool, compression: int, map_size: int,
           batch: int, progress: bool) -> None:
    """Encode and put every entry through BasicSR's ``LmdbMaker``; on any error close it without committing."""
    maker = LmdbMaker(str(lmdb_path), map_size=map_size, batch=batch, compress_level=compression)
    try:
        for path, key in tqdm(zip(paths, keys), total=len(paths), unit='img', desc='lmdb', disable=not progress):
            img = read_entry(path, depth)
            ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compression])
            if not ok:
                raise ValueError(f'{path}: PNG encoding failed')
            h, w = img.shape[:2]
            maker.put(buf.tobytes(), key, (h, w, 1 if img.ndim == 2 else img.shape[2]))
    except BaseException:
        maker.txn.abort()
        maker.env.close()
        maker.txt_file.close()
        raise
    maker.close()
