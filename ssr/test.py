"""Test an ssr / BasicSR model: ``python ssr/test.py -opt options/test_X.yml``.

Runs from any working directory; ``results/<name>/`` (images under ``visualization/``, the metric log) lands under
the repository root (or ``$SSR_ROOT``).
"""
import os.path as osp
import sys

if __package__ in (None, ''):
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import ssr  # noqa: E402,F401  (ssr.compat.apply(): the fixes run as basicsr.test is imported below)
from basicsr.test import test_pipeline  # noqa: E402

from ssr.utils.cli import run_pipeline  # noqa: E402
from ssr.utils.paths import repo_root  # noqa: E402


def main() -> int:
    root = repo_root()
    return run_pipeline(lambda: test_pipeline(str(root)), root, is_train=False)


if __name__ == '__main__':
    sys.exit(main())
