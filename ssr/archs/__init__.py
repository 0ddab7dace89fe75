"""ssr archs. Each ``*_arch.py`` module registers its networks in BasicSR's ``ARCH_REGISTRY`` when imported.

Nothing is imported here: the lazy registries (:mod:`ssr.compat.lazy_registry`) import the one module a
``network_g: {type: ...}`` names, so a DKENet never loads diffusers or timm; :func:`ssr.compat.register` imports all.
"""
