"""Precompute MiDaS / DPT depth for a set of HR images: the maps that ``SVDegradationDataset`` reads through
``dataroot_depth``. CLI: ``scripts/precompute_depth.py``.

Input: a folder of images (recursive, :func:`ssr.data.image_io.list_images`) or a BasicSR LMDB (``*.lmdb`` with
``meta_info.txt``). Output, one map per image under the image's name (file stem for a folder, key for an LMDB):

- a folder of single-channel 16-bit PNGs ``<output>/<name>.png``, or
- with ``lmdb=True`` a BasicSR LMDB ``<output>.lmdb`` of such PNGs under the same keys, with its ``meta_info.txt``.

Each map is :class:`~ssr.archs.midas_depth_arch.MiDaSDepth`'s output at the image's size: relative inverse depth
(near = 1) normalised per image to [0, 1], stored as ``round(depth * 65535)``.

Runs resume: a name whose PNG (or LMDB key) already exists is skipped. Each PNG is written to a temporary file in
the output folder and renamed, and each LMDB batch is one transaction, so an interrupted run leaves only complete
maps. Images whose network inputs have the same size (the variant's resize policy, ``midas_input_size``) share a
batch; they may differ in size themselves.
"""
from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from ssr.archs.dpt import INPUT_MULTIPLE
from ssr.archs.midas_depth_arch import MIDAS_VARIANTS, MiDaSDepth, midas_input_size
from ssr.data.basicsr_lmdb import LMDB_OVERHEAD, PNG_OVERHEAD, check_keys
from ssr.data.image_io import encode_depth_png, hwc_to_chw_tensor
from ssr.data.image_source import ImageSource, backend_of
from ssr.ops.depth_utils import normalize_depth

__all__ = ['DepthJob', 'DepthRun', 'open_depth_job', 'load_depth_net', 'run_depth_job', 'precompute_depth']

RELEASES = 'https://github.com/isl-org/MiDaS/releases/tag'
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
META_COMPRESSION = 1  # OpenCV's default PNG level, which encode_depth_png uses; informational in meta_info.txt


@dataclass
class DepthJob:
    """What one run has to do.

    Attributes:
        source: the input images.
        output: the output folder or LMDB.
        lmdb: write an LMDB instead of a folder of PNGs.
        names: output name of every input image (stem or key), in input order.
        todo: indices into ``source`` whose map does not exist yet, in input order.
        sizes: ``(H, W)`` of every image in ``todo``, from the file header or ``meta_info.txt``.
    """

    source: ImageSource
    output: Path
    lmdb: bool
    names: list[str]
    todo: list[int]
    sizes: dict[int, tuple[int, int]]


@dataclass(frozen=True)
class DepthRun:
    """Counts of one run: maps written now and maps found already done (skipped)."""

    written: int
    skipped: int


# ---------------------------------------------------------------- planning


def _header_size(path: str) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception as e:  # noqa: BLE001 - PIL raises several unrelated types for a bad header
        raise ValueError(f'{path}: not a readable image ({e}); remove or replace the file') from e
    return height, width


def _lmdb_done_keys(path: Path) -> set[str]:
    if not (path / 'data.mdb').is_file():
        return set()
    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            return {bytes(k).decode('ascii') for k in txn.cursor().iternext(values=False)}
    finally:
        env.close()


def _check_output(source: ImageSource, output: Path, lmdb_output: bool) -> None:
    if output.resolve() == Path(source.root).resolve():
        raise ValueError(f'--output {str(output)!r} is --input; choose another path')
    if lmdb_output:
        if output.suffix != '.lmdb':
            raise ValueError(f'--output {str(output)!r} must end with .lmdb with --lmdb (the datasets tell an LMDB '
                             'by its suffix)')
        if output.is_dir() and any(output.iterdir()) and not (output / 'data.mdb').is_file():
            raise ValueError(f'--output {str(output)!r} is a folder that is not an LMDB; choose a new path')
        return
    if output.suffix == '.lmdb':
        raise ValueError(f'--output {str(output)!r} ends with .lmdb: add --lmdb to write an LMDB, or rename it')
    if output.is_file():
        raise ValueError(f'--output {str(output)!r} is a file; give a folder')
    if source.backend == 'disk':
        inp, out = Path(source.root).resolve(), output.resolve()
        if out == inp or inp in out.parents:
            raise ValueError(f'--output {str(output)!r} lies in --input {source.root!r}: the depth maps would be '
                             'read as images next time; choose a folder outside it')


def open_depth_job(input_path: str | Path, output: str | Path, *, lmdb_output: bool = False) -> DepthJob:
    """List the input images and find which maps are still to compute.

    Args:
        input_path: folder of images or BasicSR LMDB.
        output: output folder, or with ``lmdb_output`` an LMDB path ending in ``.lmdb``; may hold a partial run.
        lmdb_output: write an LMDB.

    Raises:
        FileNotFoundError: ``input_path`` does not exist.
        ValueError: an unsupported input, no image, two images with the same name, a name an LMDB cannot hold,
            a bad ``output``, or an unreadable image header.
    """
    input_path, output = str(Path(input_path)), Path(output)  # Path drops a trailing '/' before .lmdb
    backend = backend_of(input_path, None)
    if backend not in ('disk', 'lmdb'):
        raise ValueError(f'--input {input_path!r} is an MMSR LMDB; give its image folder or a BasicSR LMDB '
                         '(scripts/create_lmdb.py)')
    source = ImageSource(input_path, backend, option='--input')
    _check_output(source, output, lmdb_output)
    names = [source.name(i) for i in range(len(source))]
    if lmdb_output:
        check_keys(names, [source.source(i) for i in range(len(source))])
    else:
        seen: dict[str, str] = {}
        for i, name in enumerate(names):
            if name in seen:
                raise ValueError(f'{seen[name]} and {source.source(i)} both give the depth map {name}.png; rename '
                                 'one of them')
            seen[name] = source.source(i)
    if lmdb_output:
        done = _lmdb_done_keys(output)
        todo = [i for i, n in enumerate(names) if n not in done]
    else:
        todo = [i for i, n in enumerate(names) if not (output / f'{n}.png').is_file()]
    if source.sizes is not None:
        sizes = {i: source.sizes[i] for i in todo}
    else:
        sizes = {i: _header_size(source.keys[i]) for i in todo}
    return DepthJob(source, output, lmdb_output, names, todo, sizes)


# ---------------------------------------------------------------- the network


def _check_weights(variant: str, weights: str | Path) -> None:
    if variant not in MIDAS_VARIANTS:
        raise ValueError(f'--variant {variant!r} not in {tuple(MIDAS_VARIANTS)}')
    spec, path = MIDAS_VARIANTS[variant], Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f'--weights {str(path)!r} does not exist: download the official {spec.file_name} '
                                f'({RELEASES}/{spec.release}) yourself and pass its path (nothing is downloaded)')
    other = next((v for v, s in MIDAS_VARIANTS.items() if s.file_name == path.name and v != variant), None)
    if other is not None:
        raise ValueError(f'--weights {path.name} is the official file of {other}, not of --variant {variant}; '
                         f'pass --variant {other}')


def _check_input_size(input_size: int | None) -> None:
    if input_size is not None and (input_size < INPUT_MULTIPLE or input_size % INPUT_MULTIPLE):
        raise ValueError(f'--input-size must be a positive multiple of {INPUT_MULTIPLE}, got {input_size}')


def _resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f'--device {device!r} is not a torch device (cpu, cuda, cuda:1, ...)') from e
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: no CUDA device is available; use --device cpu')
    return dev


def load_depth_net(variant: str, weights: str | Path, *, input_size: int | None = None,
                   device: str | None = None) -> MiDaSDepth:
    """The frozen MiDaS / DPT network of ``variant`` with the official weights file, on ``device``.

    Args:
        variant: a key of ``MIDAS_VARIANTS``.
        weights: the official ``<variant>.pt``, a local file.
        input_size: network input size n instead of the variant's native one, a multiple of 32.
        device: torch device; ``None`` picks ``cuda`` when available, else ``cpu``.

    Raises:
        FileNotFoundError: ``weights`` does not exist.
        ValueError: an unknown variant or device, a bad ``input_size``, or a file that is not this variant's.
    """
    _check_weights(variant, weights)
    _check_input_size(input_size)
    dev = _resolve_device(device)
    try:
        net = MiDaSDepth(variant, weights_path=str(weights), input_size=input_size)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ValueError(f'--weights {str(weights)!r} is not a usable {MIDAS_VARIANTS[variant].file_name} for '
                         f'--variant {variant} ({first}); check the file and the variant') from e
    return net.to(dev)


# ---------------------------------------------------------------- writers


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _png_size(data: bytes, where: str) -> tuple[int, int]:
    """``(h, w)`` from a PNG's IHDR chunk (bytes 16..24), without decoding the pixels."""
    if data[:8] != PNG_SIGNATURE or len(data) < 24:
        raise ValueError(f'{where}: entry is not a PNG; remove the LMDB and run again')
    width, height = struct.unpack('>II', data[16:24])
    return height, width


def _meta_line(key: str, size: tuple[int, int]) -> str:
    return f'{key}.png ({size[0]},{size[1]},1) {META_COMPRESSION}\n'


class _LmdbWriter:
    """Appends 16-bit PNGs to a BasicSR LMDB, one transaction per batch, keeping ``meta_info.txt`` in step.

    ``meta_info.txt`` is appended after each commit. On opening, entries the file lacks (a run stopped between the
    two) are recovered from the database, and the file is rewritten in ``names`` order when the writer closes.
    """

    def __init__(self, path: Path, names: list[str], new_bytes: int):
        path.mkdir(parents=True, exist_ok=True)
        self.path, self.names, self.meta = path, names, path / 'meta_info.txt'
        used = (path / 'data.mdb').stat().st_size if (path / 'data.mdb').is_file() else 0
        self.env = lmdb.open(str(path), map_size=used + int(new_bytes * 1.2) + LMDB_OVERHEAD)
        self.lines = self._reconcile()
        self._rewrite_meta()
        self.file = open(self.meta, 'a', encoding='ascii')

    def _reconcile(self) -> dict[str, str]:
        listed = {}
        if self.meta.is_file():
            for line in self.meta.read_text(encoding='ascii', errors='replace').splitlines():
                fields = line.split()
                if len(fields) == 3 and fields[0].endswith('.png') and fields[1].startswith('('):
                    listed[fields[0][:-4]] = line + '\n'
        lines = {}
        with self.env.begin() as txn:
            for raw_key in txn.cursor().iternext(values=False):
                key = bytes(raw_key).decode('ascii')
                lines[key] = listed.get(key) or _meta_line(key, _png_size(txn.get(raw_key), f'{self.path}[{key}]'))
        return lines

    def _rewrite_meta(self) -> None:
        order = {n: i for i, n in enumerate(self.names)}
        keys = sorted(self.lines, key=lambda k: (order.get(k, len(order)), k))
        _write_atomic(self.meta, ''.join(self.lines[k] for k in keys).encode('ascii'))

    def write(self, items: list[tuple[str, bytes, tuple[int, int]]]) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, data, _ in items:
                        txn.put(key.encode('ascii'), data)
                break
            except lmdb.MapFullError:  # the size bound was too tight: grow the map and redo the batch
                self.env.set_mapsize(self.env.info()['map_size'] * 2)
        for key, _, size in items:
            self.lines[key] = _meta_line(key, size)
            self.file.write(self.lines[key])
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        self._rewrite_meta()
        self.env.close()


class _FolderWriter:
    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def write(self, items: list[tuple[str, bytes, tuple[int, int]]]) -> None:
        for name, data, _ in items:
            _write_atomic(self.path / f'{name}.png', data)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- running


def _batches(job: DepthJob, net: MiDaSDepth, batch_size: int) -> Iterator[list[int]]:
    """Indices of ``job.todo`` grouped by network input size (first-seen order), in chunks of ``batch_size``."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i in job.todo:
        size = midas_input_size(*job.sizes[i], net_size=net.input_size, method=net.spec.resize_method)
        groups.setdefault(size, []).append(i)
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            yield members[start:start + batch_size]


@torch.inference_mode()
def _depth_batch(net: MiDaSDepth, images: list[torch.Tensor]) -> list[np.ndarray]:
    """Maps of images whose network inputs have one size: ``MiDaSDepth.forward`` with one network pass for all.

    Args:
        images: each ``(3, H_i, W_i)`` float32 RGB in [0, 1] on the network's device.

    Returns:
        ``(H_i, W_i)`` float32 in [0, 1] per image.
    """
    x = torch.cat([net.preprocess(img[None]) for img in images])
    raw = net.model(x).unsqueeze(1)  # (B, 1, h, w)
    out = []
    for n, img in enumerate(images):  # as forward: bicubic back to the image size, then per-image normalisation
        depth = F.interpolate(raw[n:n + 1], size=img.shape[-2:], mode='bicubic', align_corners=False).clamp_min(0)
        out.append(normalize_depth(depth)[0, 0].float().cpu().numpy())
    return out


def run_depth_job(job: DepthJob, net: MiDaSDepth | None, *, batch_size: int = 4,
                  progress: bool = False) -> DepthRun:
    """Compute and write every map in ``job.todo``; an LMDB's ``meta_info.txt`` is repaired even when none is left.

    Args:
        job: from :func:`open_depth_job`.
        net: from :func:`load_depth_net` (its device is used); may be ``None`` when ``job.todo`` is empty.
        batch_size: images per network pass, at least 1.
        progress: show a tqdm bar.

    Raises:
        ValueError: ``batch_size`` below 1, no ``net`` for a non-empty ``todo``, or an image that does not decode or
            whose size differs from its header.
    """
    if batch_size < 1:
        raise ValueError(f'--batch-size must be at least 1, got {batch_size}')
    if net is None and job.todo:
        raise ValueError(f'{len(job.todo)} depth maps to compute but no network given')
    skipped = len(job.names) - len(job.todo)
    if not job.todo and not job.lmdb:
        return DepthRun(0, skipped)
    if job.lmdb:
        new_bytes = sum(h * w * 2 + PNG_OVERHEAD for h, w in job.sizes.values())
        writer = _LmdbWriter(job.output, job.names, new_bytes)
    else:
        writer = _FolderWriter(job.output)
    try:
        with tqdm(total=len(job.todo), unit='img', desc='depth', disable=not progress) as bar:
            for batch in _batches(job, net, batch_size):
                images = []
                for i in batch:
                    img = job.source.read_image(i)
                    if img.shape[:2] != job.sizes[i]:
                        raise ValueError(f'{job.source.source(i)}: decoded size {img.shape[:2]} differs from its '
                                         f'header / meta_info size {job.sizes[i]}; re-save the image')
                    images.append(hwc_to_chw_tensor(img).to(net.mean.device))
                depths = _depth_batch(net, images)
                writer.write([(job.names[i], encode_depth_png(d), d.shape) for i, d in zip(batch, depths)])
                bar.update(len(batch))
    finally:
        writer.close()
    return DepthRun(len(job.todo), skipped)


def precompute_depth(input_path: str | Path, output: str | Path, *, variant: str, weights: str | Path,
                     lmdb_output: bool = False, batch_size: int = 4, input_size: int | None = None,
                     device: str | None = None, progress: bool = False) -> DepthRun:
    """Depth maps for every image of ``input_path`` that ``output`` does not hold yet (see the module docstring).

    Args:
        input_path: folder of images or BasicSR LMDB.
        output: output folder, or with ``lmdb_output`` an LMDB ending in ``.lmdb``.
        variant: a key of ``MIDAS_VARIANTS``.
        weights: the official ``<variant>.pt`` (local file; nothing downloads).
        lmdb_output: write an LMDB of 16-bit PNGs instead of a folder.
        batch_size: images per network pass.
        input_size: network input size instead of the native one (multiple of 32).
        device: torch device; ``None`` picks ``cuda`` when available.
        progress: show a tqdm bar.

    Returns:
        How many maps were written and how many were already there.

    Raises:
        FileNotFoundError: the input or the weights file does not exist.
        ValueError: bad settings or inputs (see :func:`open_depth_job`, :func:`load_depth_net`).
    """
    _check_weights(variant, weights)
    _check_input_size(input_size)
    if batch_size < 1:
        raise ValueError(f'--batch-size must be at least 1, got {batch_size}')
    job = open_depth_job(input_path, output, lmdb_output=lmdb_output)
    net = load_depth_net(variant, weights, input_size=input_size, device=device) if job.todo else None
    return run_depth_job(job, net, batch_size=batch_size, progress=progress)
