"""ssr losses. Each ``*_loss.py`` module registers its losses in BasicSR's ``LOSS_REGISTRY`` when imported.

Nothing is imported here: the lazy registries (:mod:`ssr.compat.lazy_registry`) import the module a loss ``type``
names; :func:`ssr.compat.register` imports all.
"""
