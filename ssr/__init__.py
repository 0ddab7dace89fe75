"""ssr: depth-informed, spatially variant blind super-resolution (SSR) as a BasicSR plugin.

``import ssr`` first applies the basicsr / torchvision compatibility fixes (:mod:`ssr.compat`), then imports the
sub-packages so that BasicSR's registries hold ssr's archs, datasets, models, losses and metrics.
"""
from ssr import compat

compat.alias_functional_tensor()
compat.apply()

from ssr.utils.resume import patch_pipelines  # noqa: E402  (needs the fixes above)

patch_pipelines()

from ssr import archs, data, losses, metrics, models  # noqa: E402,F401

__version__ = '0.1.0'
