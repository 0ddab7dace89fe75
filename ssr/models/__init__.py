"""ssr models. Each ``*_model.py`` module registers its models in BasicSR's ``MODEL_REGISTRY`` when imported.

Nothing is imported here: the lazy registries (:mod:`ssr.compat.lazy_registry`) import the one module a
``model_type`` names; :func:`ssr.compat.register` imports all.
"""
