"""LMDB keys with dots: ``paths_from_lmdb`` / ``paired_paths_from_lmdb`` for basicsr 1.4.2.

basicsr's versions keep the text before the FIRST dot of each ``meta_info.txt`` entry, so the key ``0001.s001``
(a sub-image of ``0001``) reads as ``0001``; the replacements here strip only the final extension
(:func:`ssr.data.image_source.lmdb_keys`). basicsr's datasets import the two functions by name, so :func:`apply`
rebinds them in every loaded ``basicsr.*`` module that holds them, not only in ``basicsr.data.data_util``.
"""
from __future__ import annotations

import sys


def paths_from_lmdb(folder: str) -> list[str]:
    """``basicsr.data.data_util.paths_from_lmdb`` keeping dots inside keys.

    Args:
        folder: an LMDB folder (name ending in ``.lmdb``) with a ``meta_info.txt``.

    Returns:
        Its keys, in ``meta_info.txt`` order.
    """
    from ssr.data.image_source import lmdb_keys

    if not folder.endswith('.lmdb'):
        raise ValueError(f'Folder {folder} should be in lmdb format.')
    return lmdb_keys(folder)


def paired_paths_from_lmdb(folders, keys) -> list[dict[str, str]]:
    """``basicsr.data.data_util.paired_paths_from_lmdb`` keeping dots inside keys.

    Args:
        folders: ``[input_folder, gt_folder]``, both LMDB folders.
        keys: ``[input_key, gt_key]``, e.g. ``['lq', 'gt']``.

    Returns:
        ``[{'<input_key>_path': key, '<gt_key>_path': key}, ...]`` sorted by key.
    """
    from ssr.data.image_source import lmdb_keys

    if len(folders) != 2 or len(keys) != 2:
        raise ValueError(f'folders and keys must hold two entries each, got {folders} and {keys}')
    (input_folder, gt_folder), (input_key, gt_key) = folders, keys
    for folder in folders:
        if not folder.endswith('.lmdb'):
            raise ValueError(f'{input_key} folder and {gt_key} folder should both be in lmdb formats, got {folder}')
    input_keys, gt_keys = lmdb_keys(input_folder), lmdb_keys(gt_folder)
    if sorted(input_keys) != sorted(gt_keys):
        raise ValueError(f'Keys in {input_key}_folder and {gt_key}_folder are different.')
    return [{f'{input_key}_path': key, f'{gt_key}_path': key} for key in sorted(input_keys)]


def _replace_everywhere(original, replacement) -> None:
    """Rebind ``original`` to ``replacement`` in every loaded basicsr module that imported it by name."""
    for module in list(sys.modules.values()):
        if getattr(module, '__name__', '').startswith('basicsr'):
            for attr, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attr, replacement)


def apply() -> None:
    """Replace basicsr's two functions by the ones above (idempotent; basicsr must be imported)."""
    import basicsr.data.data_util as data_util

    _replace_everywhere(data_util.paths_from_lmdb, paths_from_lmdb)
    _replace_everywhere(data_util.paired_paths_from_lmdb, paired_paths_from_lmdb)
