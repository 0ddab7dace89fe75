"""ssr losses: every `*_loss.py` file here is imported so that its classes register in BasicSR's registry."""
from os import path as osp

from ssr.utils.registry_scan import import_modules

_modules = import_modules(__name__, osp.dirname(osp.abspath(__file__)), '_loss')
