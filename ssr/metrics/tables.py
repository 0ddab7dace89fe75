"""Results tables: the metric set every method of an evaluation is scored with, and its markdown / CSV output.

A row is ``{'method', 'testset', <metric>: value, 'kernel_mse', 'kernel_psnr', 'sec_per_img', 'images'}``; a metric
without its weight file is reported as n/a with the flag that supplies the weights. CLI: ``scripts/evaluate.py``.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ['METRICS', 'METRIC_INFO', 'COLUMNS', 'metric_options', 'format_markdown', 'write_tables']

METRICS = ('psnr', 'ssim', 'niqe', 'stlpips', 'lpips', 'musiq', 'clipiqa')
# metric -> (table header, better, flag that supplies its weights or None)
METRIC_INFO = {'psnr': ('Y-PSNR', 'higher', None), 'ssim': ('Y-SSIM', 'higher', None),
               'niqe': ('NIQE', 'lower', None), 'stlpips': ('ST-LPIPS', 'lower', None),
               'lpips': ('LPIPS', 'lower', '--lpips-backbone'), 'musiq': ('MUSIQ', 'higher', '--musiq-weights'),
               'clipiqa': ('CLIP-IQA', 'higher', '--clipiqa-backbone')}
DIGITS = {'psnr': 2, 'ssim': 4, 'niqe': 2, 'stlpips': 4, 'lpips': 4, 'musiq': 2, 'clipiqa': 4}
COLUMNS = ('method', 'testset', *METRICS, 'kernel_mse', 'kernel_psnr', 'sec_per_img', 'images')


def metric_options(names: Sequence[str], scale: int, *, lpips_backbone: str | None = None,
                   musiq_weights: str | None = None, clipiqa_backbone: str | None = None) -> tuple[dict, dict]:
    """BasicSR ``val.metrics`` for the requested metrics that can run, and ``{metric: why not}`` for the others.

    Args:
        names: metrics from ``METRICS``, in table order.
        scale: s; PSNR / SSIM / NIQE crop a border of ``scale`` pixels and use the Y channel.
        lpips_backbone, musiq_weights, clipiqa_backbone: local weight files; None marks the metric n/a.

    Raises:
        ValueError: an unknown metric name.
        FileNotFoundError: a given weight file does not exist (the message names its flag).
    """
    table = {
        'psnr': {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': True},
        'ssim': {'type': 'calculate_ssim', 'crop_border': scale, 'test_y_channel': True},
        'niqe': {'type': 'calculate_niqe_or_nan', 'crop_border': scale},
        'stlpips': {'type': 'calculate_stlpips'},
        'lpips': {'type': 'calculate_lpips', 'backbone_path': lpips_backbone},
        'musiq': {'type': 'calculate_musiq', 'weights_path': musiq_weights},
        'clipiqa': {'type': 'calculate_clipiqa', 'backbone_path': clipiqa_backbone},
    }
    chosen, absent = {}, {}
    for name in names:
        if name not in table:
            raise ValueError(f'metric {name!r} not in {METRICS}')
        opt = table[name]
        if any(v is None for v in opt.values()):
            absent[name] = f'no weights ({METRIC_INFO[name][2]})'
            continue
        for key in ('backbone_path', 'weights_path'):
            if key in opt and not Path(opt[key]).is_file():
                raise FileNotFoundError(f'{METRIC_INFO[name][2]}: {opt[key]} does not exist')
        chosen[name] = opt
    return chosen, absent


def format_markdown(rows: Sequence[Mapping], metrics: Sequence[str], absent: Mapping[str, str]) -> str:
    """The markdown table of ``rows`` (columns: ``metrics``, kernel PSNR, seconds per image) with its notes."""
    def cell(row, key, digits):
        if key in absent:
            return 'n/a'
        value = row.get(key)
        return '' if value is None else f'{value:.{digits}f}'

    heads = [f"{METRIC_INFO[m][0]} {'↑' if METRIC_INFO[m][1] == 'higher' else '↓'}" for m in metrics]
    lines = ['| method | test set | ' + ' | '.join(heads) + ' | kernel PSNR ↑ | s / img |',
             '|---|---|' + '---:|' * (len(metrics) + 2)]
    for r in rows:
        values = [cell(r, m, DIGITS[m]) for m in metrics]
        lines.append(f"| {r['method']} | {r['testset']} | " + ' | '.join(values) +
                     f" | {cell(r, 'kernel_psnr', 2)} | {cell(r, 'sec_per_img', 2)} |")
    lines.append('')
    lines.append('Y-PSNR / Y-SSIM / NIQE with a border of `scale` pixels cropped; kernel PSNR with the largest true '
                 'tap as peak; s / img: the model alone on this machine (metrics excluded).')
    for name, why in absent.items():
        lines.append(f'{METRIC_INFO[name][0]}: n/a, {why}.')
    return '\n'.join(lines) + '\n'


def write_tables(rows: Sequence[Mapping], metrics: Sequence[str], absent: Mapping[str, str],
                 output: str | Path) -> str:
    """Write the markdown table to ``output`` and the rows as CSV beside it (``.csv``), each atomically.

    Returns:
        The markdown text.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    text = format_markdown(rows, metrics, absent)
    tmp = output.with_name(f'.{output.name}.tmp')
    tmp.write_text(text, encoding='utf-8')
    csv_tmp = output.with_name(f'.{output.stem}.csv.tmp')
    with open(csv_tmp, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(output)
    csv_tmp.replace(output.with_suffix('.csv'))
    return text
