"""LPIPS offline: equals the lpips package given the same backbone, errors name the options, nothing downloads."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from ssr.metrics.lpips_metric import calculate_lpips


@pytest.fixture(scope='module')
def backbone(tmp_path_factory):
    """torchvision AlexNet features with random weights, saved like torchvision's ImageNet file (features only)."""
    torch.manual_seed(0)
    state = {k: v for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
             if k.startswith('features.')}
    path = tmp_path_factory.mktemp('lpips') / 'alexnet.pth'
    torch.save(state, path)
    return path, state


def _images(seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)


def test_matches_the_lpips_package_with_the_same_backbone(backbone, no_download):
    import lpips

    path, state = backbone
    a, b = _images()
    ref = lpips.LPIPS(net='alex', pnet_rand=True, verbose=False)  # shipped v0.1 heads, random backbone
    with torch.no_grad():
        for name, tensor in ref.net.state_dict().items():
            tensor.copy_(state['features.' + name.split('.', 1)[1]])
        x, y = (torch.from_numpy(i[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 127.5 - 1 for i in (a, b))
        expected = float(ref(x, y))
    assert calculate_lpips(a, b, backbone_path=str(path)) == pytest.approx(expected, rel=1e-6)
    assert calculate_lpips(a, a, backbone_path=str(path)) == 0.0
    assert calculate_lpips(a, b, backbone_path=str(path), crop_border=4) != pytest.approx(expected)


def test_requires_a_local_backbone(tmp_path, no_download):
    a, b = _images()
    with pytest.raises(ValueError, match='backbone_path'):
        calculate_lpips(a, b)
    with pytest.raises(FileNotFoundError, match='backbone_path'):
        calculate_lpips(a, b, backbone_path=str(tmp_path / 'absent.pth'))


def test_rejects_a_file_of_another_network(backbone, tmp_path, no_download):
    path, state = backbone
    wrong = tmp_path / 'half.pth'
    torch.save({k: v for k, v in list(state.items())[:4]}, wrong)
    with pytest.raises(ValueError, match='lacks'):
        calculate_lpips(*_images(), backbone_path=str(wrong))
    with pytest.raises(ValueError, match='one shape'):
        calculate_lpips(_images()[0], _images()[0][:20], backbone_path=str(path))
