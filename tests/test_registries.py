"""ssr's names are in BasicSR's registries and none shadows a basicsr name."""
from __future__ import annotations

import pytest
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

import ssr  # noqa: F401

REGISTRIES = {'arch': ARCH_REGISTRY, 'dataset': DATASET_REGISTRY, 'loss': LOSS_REGISTRY, 'metric': METRIC_REGISTRY,
              'model': MODEL_REGISTRY}
# what the project registers so far; each issue that adds a registered class extends this table
EXPECTED = {
    'arch': {'DKENet', 'NBSR', 'MiDaSDepth', 'MANetEstimator', 'MANetSR', 'MANetBlindSR', 'DCLSNet', 'AMFUNet'},
    'dataset': {'SVDegradationDataset', 'SVPairedDataset'},
    'loss': {'KernelFieldLoss', 'LRConsistencyLoss'},
    'metric': {'calculate_kernel_mse', 'calculate_kernel_psnr', 'calculate_depth_abs_rel', 'calculate_stlpips'},
    'model': {'SVSRModel', 'KernelEstimatorModel', 'NonBlindSRModel', 'BlindSRModel', 'SSRModel'},
}


def _owners(registry):
    return {name: obj.__module__ for name, obj in registry}


@pytest.mark.parametrize('kind', sorted(EXPECTED))
def test_project_names_registered(kind):
    owners = _owners(REGISTRIES[kind])
    for name in EXPECTED[kind]:
        assert name in owners, f'{name} missing from the {kind} registry'
        assert owners[name].startswith('ssr.'), f'{name} is registered by {owners[name]}, not by ssr'


@pytest.mark.parametrize('kind', sorted(REGISTRIES))
def test_no_collision_with_basicsr(kind):
    """Registration itself raises on a duplicate name; this also guards case-only near-collisions."""
    owners = _owners(REGISTRIES[kind])
    ours = {n for n, m in owners.items() if m.startswith('ssr.')}
    theirs = {n.lower() for n, m in owners.items() if m.startswith('basicsr.')}
    assert not {n for n in ours if n.lower() in theirs}
