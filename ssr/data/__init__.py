"""ssr data: registered datasets (``*_dataset.py``), image / LMDB I/O and the degradation configuration.

The dataset modules are imported by the lazy registries (:mod:`ssr.compat.lazy_registry`) when an option file
names their ``type``, or all at once by :func:`ssr.compat.register`.

The pure tensor code the datasets build on (kernels, kernel fields, SV blur, noise, JPEG, depth) is in
:mod:`ssr.ops`; :class:`~ssr.data.degradation.SVDegradation` turns an option block into calls of it.
"""
from ssr.data.degradation import SVDegradation

__all__ = ['SVDegradation']
