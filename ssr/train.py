"""Train an ssr / BasicSR model: ``python ssr/train.py -opt options/train_X.yml [--auto_resume]``.

Runs from any working directory; ``experiments/`` and ``tb_logger/`` land under the repository root (or
``$SSR_ROOT``). Distributed: ``torchrun --nproc_per_node=N ssr/train.py -opt X.yml --launcher pytorch``.
"""
import os
import os.path as osp
import sys

# transparent huge pages for torch's large CPU allocations (kernel fields are ~7 MB per 256^2 crop): the page faults
# of a fresh field cost about as much as building it on a VM; read once by torch, so set before torch is imported.
# THP_MEM_ALLOC_ENABLE=0 in the environment turns it off.
os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')

if __package__ in (None, ''):
    # run as a script: make the repository importable and keep ssr/ itself off sys.path (its sub-folders are named
    # like common top-level packages: data, models, ...)
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import ssr  # noqa: E402,F401  (ssr.compat.apply(): the fixes run as basicsr.train is imported below)
from basicsr.train import train_pipeline  # noqa: E402

from ssr.utils.cli import run_pipeline  # noqa: E402
from ssr.utils.paths import repo_root  # noqa: E402


def main() -> int:
    root = repo_root()
    return run_pipeline(lambda: train_pipeline(str(root)), root, is_train=True)


if __name__ == '__main__':
    sys.exit(main())
