"""The package's floors (docs/architecture.md): what each sub-package may import, and thin scripts.

Floors, lowest first: ``ssr.ops`` < ``ssr.archs`` / ``ssr.data`` / ``ssr.losses`` / ``ssr.metrics`` <
``ssr.pipelines`` < ``ssr.models`` < entry points (``ssr.train``, ``ssr.test``, ``ssr.tools``, ``scripts/``).
``ssr.utils`` and ``ssr.compat`` are helpers every floor may use; they import no floor above ``ssr.ops`` at module
level. Nothing under ``ssr/`` imports ``scripts``.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SSR = ROOT / 'ssr'
SCRIPTS = ROOT / 'scripts'

# sub-package -> ssr sub-packages it must not import (anywhere in the file, module level or inside functions)
FORBIDDEN = {
    'ops': {'archs', 'data', 'losses', 'metrics', 'pipelines', 'models', 'compat', 'utils', 'tools', 'train', 'test'},
    'archs': {'data', 'pipelines', 'models', 'tools', 'train', 'test'},
    'data': {'archs', 'pipelines', 'models', 'tools', 'train', 'test'},
    'losses': {'pipelines', 'models', 'tools', 'train', 'test'},
    'metrics': {'pipelines', 'models', 'tools', 'train', 'test'},
    'pipelines': {'models', 'tools', 'train', 'test'},
    'models': {'tools', 'train', 'test'},
}
# third-party top-level modules ssr.ops may import (besides the standard library)
OPS_ALLOWED = {'torch', 'numpy', 'cv2', 'ssr'}
# the one optional, function-level import below ssr.ops' floor: jpeg_compress(method='diff') uses BasicSR's DiffJPEG
OPS_OPTIONAL = {('jpeg.py', 'basicsr.utils.diffjpeg')}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(module, at_module_level)`` for every import statement of a file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    package = '.'.join(path.relative_to(ROOT).with_suffix('').parts[:-1])
    found = []
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ''
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([module] if module else []))
            found.append((module, id(node) in top_level))
    return found


def _package_files(sub: str) -> list[Path]:
    return sorted((SSR / sub).rglob('*.py'))


@pytest.mark.parametrize('sub', sorted(FORBIDDEN))
def test_no_sub_package_imports_a_floor_above_it(sub):
    offences = []
    for path in _package_files(sub):
        for module, _ in _imports(path):
            parts = module.split('.')
            if parts[0] == 'ssr' and len(parts) > 1 and parts[1] in FORBIDDEN[sub]:
                offences.append(f'{path.relative_to(ROOT)} imports {module}')
    assert not offences, '\n'.join(offences)


def test_ops_imports_only_torch_numpy_cv2():
    stdlib = set(sys.stdlib_module_names)
    offences = []
    for path in _package_files('ops'):
        for module, _ in _imports(path):
            top = module.split('.')[0]
            if top in stdlib or top in OPS_ALLOWED or (path.name, module) in OPS_OPTIONAL:
                continue
            offences.append(f'{path.relative_to(ROOT)} imports {module}')
    assert not offences, '\n'.join(offences)


def test_nothing_under_ssr_imports_scripts():
    offences = [f'{p.relative_to(ROOT)} imports {m}' for p in sorted(SSR.rglob('*.py'))
                for m, _ in _imports(p) if m.split('.')[0] == 'scripts']
    assert not offences, '\n'.join(offences)


def test_scripts_are_thin():
    """Every script parses arguments and calls the package: under 200 lines, no script loads another."""
    offences = []
    for path in sorted(SCRIPTS.glob('*.py')):
        text = path.read_text(encoding='utf-8')
        lines = text.count('\n')
        if lines > 200:
            offences.append(f'{path.name}: {lines} lines (> 200)')
        for word in ('load_script', 'importlib'):
            if word in text:
                offences.append(f'{path.name} uses {word}')
        for module, _ in _imports(path):
            if module.split('.')[0] == 'scripts':
                offences.append(f'{path.name} imports {module}')
    assert not offences, '\n'.join(offences)


@pytest.mark.parametrize('sub', ['utils', 'compat'])
def test_side_packages_import_no_floor_above_ops_at_module_level(sub):
    above = {'archs', 'data', 'losses', 'metrics', 'pipelines', 'models', 'tools', 'train', 'test'}
    offences = [f'{p.relative_to(ROOT)} imports {m}' for p in _package_files(sub) for m, top in _imports(p)
                if top and m.split('.')[0] == 'ssr' and len(m.split('.')) > 1 and m.split('.')[1] in above]
    assert not offences, '\n'.join(offences)
