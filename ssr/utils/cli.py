"""What ``ssr/train.py`` and ``ssr/test.py`` do around BasicSR's pipelines: one-line errors, nothing left behind.

:func:`run_pipeline` runs a pipeline and

- turns ssr's own errors (bad options, data, checkpoints, non-finite training: ``ValueError``, ``OSError``,
  ``FloatingPointError``, ``RuntimeError``, ``ImportError``) into ``error: <file>: <key>: <what> — <what to do>`` on
  stderr (at most two lines) and exit code 2; ``--debug`` re-raises, so the traceback is shown;
- prints one line and returns 130 on Ctrl-C;
- after a failure removes what the run created under ``experiments/``, ``tb_logger/`` (training: only folders
  without a checkpoint or training state, so a run that fails after saving can still be resumed) and ``results/``
  (testing: everything, no partial output), and renames back a folder BasicSR moved to ``<name>_archived_<time>``;
- before a training run removes the stray ``.*.tmp`` files a killed checkpoint write left in its experiment.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ['run_pipeline', 'run_script', 'one_line']

HANDLED = (ValueError, OSError, FloatingPointError, RuntimeError, ImportError)
ARCHIVED = re.compile(r'(.+)_archived_\d{8}_\d{6}$')


def one_line(error: BaseException, option_file: str | None) -> str:
    """``error: <message>`` in at most two lines, prefixed with the option file unless the message names it."""
    text = str(error).strip() or type(error).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0]
    if option_file and option_file not in first:
        first = f'{option_file}: {first}'
    out = [f'error: {first}'] + lines[1:2]
    if len(lines) > 2:
        out[-1] += f' (and {len(lines) - 2} more lines; --debug for the traceback)'
    return '\n'.join(out)


def _option_file(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg in ('-opt', '--opt') and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('--opt='):
            return arg.split('=', 1)[1]
    return None


def _entries(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.is_dir() else set()


def _has_checkpoint(folder: Path) -> bool:
    return any(p.suffix in ('.pth', '.state') and not p.name.startswith('.') for p in folder.rglob('*'))


def _remove_stray_tmp(root: Path, option_file: str | None) -> None:
    if not option_file:
        return
    try:
        from ssr.utils.options import load_yaml

        name = load_yaml(option_file).get('name')
    except (OSError, ValueError):
        return  # the pipeline reports the bad file itself
    if not isinstance(name, str):
        return
    for sub in ('models', 'training_states'):
        folder = root / 'experiments' / name / sub
        for tmp in folder.glob('.*.tmp') if folder.is_dir() else ():
            tmp.unlink(missing_ok=True)


def _clean_up(root: Path, before: dict[str, set[str]], is_train: bool) -> None:
    for top, old in before.items():
        folder = root / top
        new = _entries(folder) - old
        for name in sorted(new):
            path = folder / name
            keep = is_train and (_has_checkpoint(path) if top == 'experiments'
                                 else _has_checkpoint(root / 'experiments' / name))  # tb log of a resumable run
            if path.is_dir() and not keep and not ARCHIVED.match(name):
                shutil.rmtree(path, ignore_errors=True)
        for name in sorted(new):
            m = ARCHIVED.match(name)
            if not m or not (folder / name).is_dir():
                continue
            # BasicSR moved the user's folder aside and made a fresh one under the old name: drop the fresh one
            # (unless it already holds checkpoints) and move the user's back
            target = folder / m.group(1)
            if target.is_dir() and not (is_train and top == 'experiments' and _has_checkpoint(target)):
                shutil.rmtree(target, ignore_errors=True)
            if not target.exists():
                os.replace(folder / name, target)


def run_pipeline(pipeline: Callable[[], None], root: Path, is_train: bool, argv: Sequence[str] | None = None) -> int:
    """Run ``pipeline()`` (which parses ``sys.argv`` itself) with the handling above; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in argv
    option_file = _option_file(argv)
    lead = int(os.environ.get('RANK', '0')) == 0
    tops = ('experiments', 'tb_logger') if is_train else ('results',)
    before = {top: _entries(root / top) for top in tops}
    if is_train and lead:
        _remove_stray_tmp(root, option_file)
    try:
        pipeline()
        return 0
    except KeyboardInterrupt:
        if lead:
            _clean_up(root, before, is_train)
        print('interrupted', file=sys.stderr)
        return 130
    except HANDLED as e:
        if lead:
            _clean_up(root, before, is_train)
        if debug:
            raise
        print(one_line(e, option_file), file=sys.stderr)
        return 2


def run_script(main: Callable[[], int]) -> int:
    """A script's ``main()`` with Ctrl-C as one line (``interrupted``) and exit code 130."""
    try:
        return main()
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
