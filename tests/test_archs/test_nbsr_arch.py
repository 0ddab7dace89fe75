"""NBSR: shared arch checks, identity with RRDBNet at init, the RRDBNet key layout, trunk loading, the PCA buffer."""
from __future__ import annotations

import pytest
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet

from ssr.archs.nbsr_arch import NBSR, _default_pca_buffers, default_kernel_pca
from ssr.ops.kernel_pca import KernelPCA
from ssr.ops.kernels import gaussian_kernels
from tests.test_archs.arch_testing import ArchTesterMixin, checkpoint_model

K = 5
TINY = {'num_feat': 8, 'num_block': 2, 'num_grow_ch': 4, 'kernel_size': K, 'pca_components': 4, 'sft_hidden_ch': 4}


def random_inputs(b: int = 2, h: int = 8, w: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(b, 3, h, w, generator=g),
            'kernel': torch.softmax(3 * torch.randn(b, K * K, h, w, generator=g), dim=1),
            'noise_level': 0.1 * torch.rand(b, generator=g)}


def rrdbnet_like(net: NBSR, **overrides) -> RRDBNet:
    kwargs = dict(num_in_ch=3, num_out_ch=3, scale=net.scale, num_feat=8, num_block=2, num_grow_ch=4)
    kwargs.update(overrides)
    return RRDBNet(**kwargs)


class TestNBSR(ArchTesterMixin):
    arch = 'NBSR'
    config = TINY

    def inputs(self):
        return random_inputs()

    def check_output(self, out, inputs):
        assert out.shape == (2, 3, 32, 24)


class TestNBSRx2WithoutNoiseLevel(ArchTesterMixin):
    arch = 'NBSR'
    config = dict(TINY, scale=2, use_noise_level=False)

    def inputs(self):
        inputs = random_inputs()
        del inputs['noise_level']
        return inputs

    def check_output(self, out, inputs):
        assert out.shape == (2, 3, 16, 12)


@pytest.mark.parametrize('scale, use_noise_level', [(4, True), (4, False), (2, True)], ids=['x4', 'x4-no-noise', 'x2'])
def test_equals_rrdbnet_at_init_for_any_kernel(scale, use_noise_level):
    torch.manual_seed(0)
    net = NBSR(**TINY, scale=scale, use_noise_level=use_noise_level).eval()
    rrdb = rrdbnet_like(net).eval()
    rrdb.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith(('sft.', 'pca.'))})
    for seed in range(3):
        inputs = random_inputs(seed=seed)
        with torch.no_grad():
            assert (net(**inputs) - rrdb(inputs['lq'])).abs().max() < 1e-6


def test_trunk_keys_are_rrdbnet_keys():
    net = NBSR(**TINY)
    trunk = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith(('sft.', 'pca.'))}
    assert trunk == {k: tuple(v.shape) for k, v in rrdbnet_like(net).state_dict().items()}
    assert {k for k in net.state_dict() if k.startswith('pca.')} == {'pca.mean', 'pca.components'}
    assert len(net.sft) == TINY['num_block'] + 1


def test_kernel_and_noise_level_change_the_output_once_sft_is_trained():
    torch.manual_seed(0)
    net = NBSR(**TINY).eval()
    with torch.no_grad():
        for p in net.sft.parameters():
            p.add_(0.05 * torch.randn_like(p))
        a, b = random_inputs(seed=0), random_inputs(seed=1)
        out = net(**a)
        assert (out - net(a['lq'], b['kernel'], a['noise_level'])).abs().max() > 1e-4
        assert (out - net(a['lq'], a['kernel'], a['noise_level'] + 0.5)).abs().max() > 1e-4


def test_parameter_count_of_default_config():
    net = NBSR()
    count = sum(p.numel() for p in net.parameters())
    trunk = sum(p.numel() for name, p in net.named_parameters() if not name.startswith('sft.'))
    print(f'NBSR default parameters: {count} (RRDBNet trunk {trunk}, SFT {count - trunk})')
    assert (count, trunk) == (17353091, 16697987)
    assert net.pca.components.shape == (15, 441)


def test_default_pca_is_deterministic_and_encodes_gaussians():
    cached, refitted = default_kernel_pca(K, 4, 4), _default_pca_buffers.__wrapped__(K, 4, 4)
    torch.testing.assert_close(cached.components, refitted[1], rtol=0, atol=0)
    pca = default_kernel_pca()
    field = gaussian_kernels(torch.tensor([0.8, 1.7, 3.0]), torch.tensor([0.5, 2.5, 3.0]), 0.6).reshape(1, 3, 441)
    field = field.permute(0, 2, 1)[..., None]  # (1, 441, 3, 1)
    rel = (pca.decode(pca.encode(field)) - field).norm(dim=1) / field.norm(dim=1)
    assert rel.max() < 0.1


def test_pca_path(tmp_path):
    pca = KernelPCA.fit(torch.softmax(torch.randn(50, K * K), dim=1), 4)
    pca.save(tmp_path / 'pca.pth')
    net = NBSR(**TINY, pca_path=str(tmp_path / 'pca.pth'))
    torch.testing.assert_close(net.pca.components, pca.components, rtol=0, atol=0)
    with pytest.raises(ValueError, match='pca_components=5'):
        NBSR(**dict(TINY, pca_components=5), pca_path=str(tmp_path / 'pca.pth'))


def test_loads_an_rrdbnet_checkpoint_into_the_trunk(tmp_path):
    model = checkpoint_model(tmp_path)
    torch.manual_seed(1)
    net = NBSR(**TINY).eval()
    rrdb = rrdbnet_like(net).eval()
    sft_before = {k: v.clone() for k, v in net.state_dict().items() if k.startswith(('sft.', 'pca.'))}
    model.save_network(rrdb, 'rrdb', 1)
    model.load_network(net, str(tmp_path / 'rrdb_1.pth'))
    state = net.state_dict()
    for key, value in rrdb.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    for key, value in sft_before.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    inputs = random_inputs()
    with torch.no_grad():
        assert (net(**inputs) - rrdb(inputs['lq'])).abs().max() < 1e-6


def test_nbsr_checkpoints_pass_unchanged():
    net = NBSR(**TINY)
    state = net.state_dict()
    assert net.adapt_state_dict(state) is state


@pytest.mark.parametrize('overrides, match', [
    ({'num_block': 1}, r'missing: body\.1\.rdb1\.conv1\.bias'),
    ({'num_block': 3}, r'unexpected: body\.2\.rdb1\.conv1\.bias'),
    ({'num_grow_ch': 2}, r'wrong shape: body\.0\.rdb1\.conv1\.bias: checkpoint \(2,\) vs trunk \(4,\)'),
], ids=['fewer-blocks', 'more-blocks', 'other-growth'])
def test_rejects_a_mismatched_rrdbnet_checkpoint(tmp_path, overrides, match):
    model = checkpoint_model(tmp_path)
    net = NBSR(**TINY)
    model.save_network(rrdbnet_like(net, **overrides), 'rrdb', 1)
    with pytest.raises(ValueError, match=match):
        model.load_network(net, str(tmp_path / 'rrdb_1.pth'))


@pytest.mark.parametrize('kwargs, match', [
    ({'scale': 3}, r'scale must be one of \(2, 4\)'),
    ({'num_block': 0}, 'num_block must be >= 1'),
    ({'kernel_size': 4}, 'kernel_size must be odd'),
    ({'pca_components': 0}, r'pca_components must be in \[1, k\*k = 25\]'),
], ids=['scale', 'num_block', 'even-kernel', 'pca-components'])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NBSR(**dict(TINY, **kwargs))


@pytest.mark.parametrize('field, value, match', [
    ('kernel', torch.rand(2, K * K, 4, 6), r'kernel must be \(B, k\*k, h, w\) = \(2, 25, 8, 6\)'),
    ('kernel', torch.rand(2, 9, 8, 6), r'got \(2, 9, 8, 6\)'),
    ('noise_level', torch.rand(3), r'noise_level must be \(B,\) = \(2,\)'),
], ids=['kernel-size', 'kernel-taps', 'noise-batch'])
def test_bad_inputs(field, value, match):
    net = NBSR(**TINY)
    inputs = random_inputs()
    inputs[field] = value
    with pytest.raises(ValueError, match=match):
        net(**inputs)


def test_scale_2_needs_even_sizes():
    net = NBSR(**TINY, scale=2)
    with pytest.raises(ValueError, match=r'h and w must be even; got \(7, 6\)'):
        net(**random_inputs(h=7))



def test_trunk_path_and_delta_checkpoints(tmp_path):
    """A network built with trunk_path loads an sft./pca.-only delta; without trunk_path the delta is refused."""
    from basicsr.archs.rrdbnet_arch import RRDBNet

    from ssr.archs.nbsr_arch import NBSR
    from ssr.utils.checkpoint import atomic_torch_save

    cfg = dict(num_feat=8, num_block=1, num_grow_ch=4, kernel_size=7, pca_components=4, sft_hidden_ch=4)
    torch.manual_seed(1)
    rrdb = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    atomic_torch_save({'params': rrdb.state_dict()}, tmp_path / 'trunk.pth')
    trained = NBSR(**cfg, trunk_path=str(tmp_path / 'trunk.pth'))
    with torch.no_grad():
        for name, p in trained.named_parameters():
            if name.startswith('sft.'):
                p.normal_(0, 0.1)
    delta = {k: v for k, v in trained.state_dict().items() if k.startswith(('sft.', 'pca.'))}
    fresh = NBSR(**cfg, trunk_path=str(tmp_path / 'trunk.pth'))
    fresh.load_state_dict(fresh.adapt_state_dict(delta))
    lq, kernel = torch.rand(1, 3, 6, 6), torch.softmax(torch.randn(1, 49, 6, 6), 1)
    torch.testing.assert_close(fresh(lq, kernel), trained(lq, kernel), rtol=0, atol=0)
    with pytest.raises(ValueError, match='build the network with trunk_path'):
        NBSR(**cfg).adapt_state_dict(delta)
