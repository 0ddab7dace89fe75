"""ssr data: registered datasets (``*_dataset.py``), image / LMDB I/O and the degradation configuration.

The pure tensor code the datasets build on (kernels, kernel fields, SV blur, noise, JPEG, depth) is in
:mod:`ssr.ops`; :class:`~ssr.data.degradation.SVDegradation` turns an option block into calls of it.
"""
from os import path as osp

from ssr.data.degradation import SVDegradation
from ssr.utils.registry_scan import import_modules

__all__ = ['SVDegradation']

_modules = import_modules(__name__, osp.dirname(osp.abspath(__file__)), '_dataset')
