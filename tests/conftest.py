"""Shared fixtures: small real photographs from scikit-image, tiny option files, and an entry-point runner."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import ssr  # noqa: F401  (compatibility fixes and registries)

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / 'scripts'
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry', 'hubble_deep_field')


def photo(name: str, size: int) -> np.ndarray:
    """A scikit-image photo as uint8 BGR, centre-cropped to a square and resized to ``size``."""
    from skimage import data as skdata

    img = getattr(skdata, name)()
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[..., ::-1])


@pytest.fixture(scope='session')
def paired_folder(tmp_path_factory) -> Path:
    """``hr/`` (64x64) and ``lr/`` (16x16, bicubic x4) PNG pairs made from scikit-image photos."""
    root = tmp_path_factory.mktemp('paired')
    (root / 'hr').mkdir()
    (root / 'lr').mkdir()
    for name in PHOTOS[:4]:
        hr = photo(name, 64)
        cv2.imwrite(str(root / 'hr' / f'{name}.png'), hr)
        cv2.imwrite(str(root / 'lr' / f'{name}.png'), cv2.resize(hr, (16, 16), interpolation=cv2.INTER_CUBIC))
    return root


def tiny_blind_weights(folder: Path, twin: Path | None = None) -> dict[str, str]:
    """Seeded random weights for ``network_e`` / ``network_g`` of a tiny blind twin (default
    ``tests/data/test_blind_x4.yml``), saved under ``folder``; returns the ``path.pretrain_*`` entries."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from ssr.utils.checkpoint import atomic_torch_save
    from ssr.utils.options import load_yaml

    opt = load_yaml(twin or REPO / 'tests/data/test_blind_x4.yml')
    paths = {}
    for key in ('network_e', 'network_g'):
        torch.manual_seed(0)
        net = ARCH_REGISTRY.get(opt[key]['type'])(**{k: v for k, v in opt[key].items() if k != 'type'})
        atomic_torch_save({'params': net.state_dict()}, folder / f'{key}.pth')
        paths[f'pretrain_{key}'] = str(folder / f'{key}.pth')
    return paths


def write_options(path: Path, opt: dict) -> Path:
    path.write_text(yaml.safe_dump(opt, sort_keys=False), encoding='utf-8')
    return path


def run_entry(script: str, args: list[str], root: Path, cwd: Path | None = None, timeout: int = 300,
              launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``ssr/<script>`` in a subprocess with ``SSR_ROOT=root``; raise with its output on failure."""
    env = dict(os.environ, SSR_ROOT=str(root), PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    cmd = (launcher or [sys.executable]) + [str(REPO / 'ssr' / script)] + args
    proc = subprocess.run(cmd, cwd=cwd or root, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}')
    return proc


def load_script(name: str):
    """Import ``scripts/<name>.py`` as a module (scripts/ is not a package) so tests can call its functions."""
    module_name = f'_ssr_scripts_{name}'
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, SCRIPTS / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.fixture
def no_download(tmp_path, monkeypatch):
    """Points the torch hub cache at an empty folder and fails the test if anything was written there."""
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    monkeypatch.setattr(torch.hub, '_hub_dir', str(home / 'hub'))
    yield home
    assert not home.exists(), 'the test touched the torch hub cache (a download was attempted)'


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for a DDP rendezvous (fixed ports collide when two test runs share a
    machine)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
