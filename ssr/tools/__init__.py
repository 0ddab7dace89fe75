"""ssr tools: the drivers behind ``scripts/`` (evaluation tables, the demo, figures, benchmarks).

This is the entry-point floor (ops < archs, data < pipelines < models < tools / entry points): a module here may
import anything in ``ssr`` and build BasicSR models; nothing in ``ssr`` imports ``ssr.tools``, and ``import ssr`` does
not load it. The scripts parse their arguments and call these functions, so every step of a script can be run and
tested from Python.
"""
