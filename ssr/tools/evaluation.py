"""Evaluation: several methods (test option files, or bicubic) on their test sets, scored with one metric set.

Each method is a test option file run through BasicSR's validation in this process, with the metrics of
:func:`ssr.metrics.tables.metric_options` replacing the option file's ``val.metrics``; ``bicubic`` (MATLAB-style,
basicsr's ``imresize``) takes its test sets from a reference option file. A row per (method, test set) holds the
metrics, the kernel error where the model estimates kernel fields and the set stores them, and the seconds per image
of the model alone: :class:`TimedTest` times each ``test()`` call, so metric computation and image writing are not
counted. An SSR model's blind path (SVKR's I^T) adds a row labelled ``<method> / I^T``. CLI: ``scripts/evaluate.py``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path

__all__ = ['MethodFailed', 'TimedTest', 'build_timed_model', 'bicubic_metrics', 'run_method', 'evaluate_methods']

logger = logging.getLogger(__name__)


class MethodFailed(RuntimeError):
    """One method of an evaluation failed; ``method`` names it and the cause is chained."""

    def __init__(self, method: str, cause: Exception):
        super().__init__(f'method {method} failed: {cause}')
        self.method = method


class TimedTest:
    """Mixin for a BasicSR model class: adds the wall time of every ``test()`` call to ``self.test_seconds``.

    ``test()`` is the documented override point of BasicSR models (``validation`` calls it once per batch), so the
    timed class is an ordinary subclass of the registered model; see :func:`build_timed_model`.
    """

    test_seconds: float = 0.0

    def test(self) -> None:
        start = time.perf_counter()
        super().test()
        self.test_seconds += time.perf_counter() - start


def build_timed_model(opt: dict):
    """``basicsr.models.build_model`` for the registered ``opt['model_type']`` with :class:`TimedTest` mixed in.

    The subclass keeps the model's class name, so messages that name the model read as without the timer.
    """
    from basicsr.utils import get_root_logger
    from basicsr.utils.registry import MODEL_REGISTRY

    opt = deepcopy(opt)
    cls = MODEL_REGISTRY.get(opt['model_type'])
    timed = type(cls.__name__, (TimedTest, cls), {'__module__': __name__, '__doc__': cls.__doc__})
    model = timed(opt)
    get_root_logger().info(f'Model [{cls.__name__}] is created.')
    return model


def bicubic_metrics(dataset_opt: dict, scale: int, metrics: dict) -> dict:
    """``metrics`` of bicubic upsampling (MATLAB-style, basicsr's imresize) on one test set, averaged."""
    import numpy as np
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_metric
    from basicsr.utils import tensor2img
    from basicsr.utils.matlab_functions import imresize

    dataset = build_dataset(dataset_opt)
    values, seconds = {name: [] for name in metrics}, 0.0
    for i in range(len(dataset)):
        sample = dataset[i]
        start = time.perf_counter()
        up = imresize(sample['lq'].clamp(0, 1), scale)
        seconds += time.perf_counter() - start
        data = {'img': tensor2img(up), 'img2': tensor2img(sample['gt'])}
        for name, opt in metrics.items():
            values[name].append(calculate_metric(data, opt))
    n = len(dataset)
    return {**{name: float(np.mean(v)) for name, v in values.items()}, 'sec_per_img': seconds / n, 'images': n}


def run_method(option_file: str, keep: set[str] | None, save_images: bool, metrics: dict,
               results_root: Path) -> dict[str, dict]:
    """Rows per test set for one option file: ``{testset: row}``, plus ``{testset + ' / I^T': row}`` for an SSR
    model's blind path. Images (``save_images``) go to ``results_root/<name>/visualization/``, so an evaluation
    never archives the ``results/<name>/`` of a ``ssr/test.py`` run."""
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.utils import make_exp_dirs

    from ssr.utils.options import parse_options
    from ssr.utils.paths import repo_root

    opt, _ = parse_options(str(repo_root()), is_train=False, argv=['-opt', option_file])
    opt.setdefault('val', {})['metrics'] = dict(metrics)
    opt['path']['results_root'] = str(results_root / opt['name'])
    opt['path']['log'] = opt['path']['results_root']
    opt['path']['visualization'] = str(results_root / opt['name'] / 'visualization')
    make_exp_dirs(opt)
    model = build_timed_model(opt)
    results = {}
    for _, dataset_opt in sorted(opt['datasets'].items()):
        if keep and dataset_opt['name'] not in keep:
            continue
        dataset = build_dataset(dataset_opt)
        loader = build_dataloader(dataset, dataset_opt, num_gpu=opt['num_gpu'], dist=False, sampler=None,
                                  seed=opt['manual_seed'])
        model.test_seconds = 0.0
        model.kernel_metric_results = model.blind_metric_results = None
        model.validation(loader, current_iter=opt['name'], tb_logger=None, save_img=save_images)
        row = dict(getattr(model, 'metric_results', {}))
        row.update(model.kernel_metric_results or {})
        row.update(sec_per_img=model.test_seconds / len(dataset), images=len(dataset))
        results[dataset_opt['name']] = row
        if model.blind_metric_results:  # the SSR model's SVKR output; K^T is shared by both rows
            results[dataset_opt['name'] + ' / I^T'] = dict(model.blind_metric_results, images=len(dataset),
                                                           **(model.kernel_metric_results or {}))
        logger.info('%s on %s: %s', opt['name'], dataset_opt['name'], row)
    return results


def _bicubic_rows(reference: str, metrics: dict, keep: set[str] | None) -> list[dict]:
    from ssr.utils.options import load_options

    ref = load_options(reference, is_train=False)
    rows = []
    for _, ds in sorted(ref['datasets'].items()):
        if not keep or ds['name'] in keep:
            ds = dict(ds, phase='test', scale=ref.get('scale', 4))
            rows.append({'method': 'bicubic', 'testset': ds['name'], **bicubic_metrics(ds, ds['scale'], metrics)})
    return rows


def _method_rows(name: str, path: str, metrics: dict, keep: set[str] | None, save_images: bool,
                 results_root: Path) -> list[dict]:
    rows = []
    for testset, row in run_method(path, keep, save_images, metrics, results_root).items():
        label, _, blind = testset.partition(' / ')
        rows.append({'method': f'{name} / {blind}' if blind else name, 'testset': label, **row})
    return rows


def evaluate_methods(methods: Sequence[tuple[str, str]], metrics: dict, *, reference: str | None = None,
                     keep: set[str] | None = None, save_images: bool = False,
                     results_root: Path = Path('results')) -> list[dict]:
    """Rows of every method on every kept test set, sorted by test set, then method order.

    Args:
        methods: ``(name, option file)`` pairs in table order; ``('bicubic', '')`` is built in.
        metrics: BasicSR ``val.metrics`` (:func:`ssr.metrics.tables.metric_options`).
        reference: option file whose test sets bicubic uses; None: the first method's option file.
        keep: test-set names to keep; None keeps all.
        save_images: also write each method's SR images under ``results_root/<option name>/visualization/``.
        results_root: folder of those images and of the models' logs.

    Raises:
        ValueError: bicubic without any option file to take its test sets from.
        MethodFailed: a method's option file, data or model failed (OSError, ValueError, KeyError, RuntimeError).
    """
    reference = reference or next((path for _, path in methods if path), None)
    if reference is None and any(name == 'bicubic' for name, _ in methods):
        raise ValueError('bicubic needs --reference or another method to take its test sets from')
    rows = []
    for name, path in methods:
        try:
            if name == 'bicubic':
                rows += _bicubic_rows(reference, metrics, keep)
            else:
                rows += _method_rows(name, path, metrics, keep, save_images, Path(results_root))
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise MethodFailed(name, e) from e
    order = [m for m, _ in methods]
    rows.sort(key=lambda r: (r['testset'], order.index(r['method'].split(' / ')[0]), r['method']))
    return rows
