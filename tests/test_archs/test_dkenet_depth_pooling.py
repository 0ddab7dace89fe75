"""DKENet ``depth_pooling`` (beyond the paper): off by default, identity at init, global depth-binned evidence."""
from __future__ import annotations

import hashlib

import pytest
import torch

from ssr.archs.dkenet_arch import DKENet, _DepthBinPooling

K = 5
TINY = {'num_feat': 8, 'num_blocks': 1, 'kernel_size': K, 'sft_hidden_ch': 4}
# sha256 of the sorted state-dict keys of DKENet(**TINY) before depth_pooling existed (116 keys).
KEYS_SHA = '7e3d8614b3ac43a522608393c6d25185fc026fd8f560f9a6b6a0779f4a0fa4f2'


def build(seed: int = 0, **kw) -> DKENet:
    torch.manual_seed(seed)
    return DKENet(**TINY, **kw).eval()


def inputs(b: int = 2, h: int = 16, w: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 3, h, w, generator=g), torch.rand(b, 1, h, w, generator=g)


def test_default_is_unchanged():
    net, off = build(), build(depth_pooling=0)
    keys = sorted(net.state_dict())
    assert len(keys) == 116 and hashlib.sha256('\n'.join(keys).encode()).hexdigest() == KEYS_SHA
    assert keys == sorted(off.state_dict()) and net.pool1 is None and net.pool2 is None
    lq, depth = inputs()
    with torch.no_grad():
        assert torch.equal(net(lq, depth).kernel, off(lq, depth).kernel)


def test_pooling_output_is_kernels():
    net = build(depth_pooling=8, upscale_to_hr=2)
    lq, depth = inputs(h=15, w=17)
    with torch.no_grad():
        out = net(lq, depth)
    assert out.kernel.shape == (2, K * K, 15, 17) and out.kernel_hr.shape == (2, K * K, 30, 34)
    assert (out.kernel > 0).all()
    torch.testing.assert_close(out.kernel.sum(1), torch.ones(2, 15, 17))


def test_identity_at_init():
    pooled, plain = build(depth_pooling=8), build(seed=123)
    shared = {k: v for k, v in pooled.state_dict().items() if not k.startswith(('pool1.', 'pool2.'))}
    plain.load_state_dict(shared, strict=True)
    assert any(k.startswith('pool1.fuse') for k in pooled.state_dict())
    lq, depth = inputs()
    with torch.no_grad():
        assert torch.equal(pooled(lq, depth).kernel, plain(lq, depth).kernel)
    # Built after init: the shared weights are also drawn exactly as without pooling.
    base = build()
    assert all(torch.equal(v, shared[k]) for k, v in base.state_dict().items())


def test_depth_of_a_far_pixel_changes_the_output_globally():
    h, w = 16, 64  # wide enough that column 0 lies outside the receptive field of the last columns
    lq, _ = inputs(b=1, h=h, w=w)
    lq[..., w // 2:] = 0.5  # flat right half
    depth = torch.full((1, 1, h, w), 0.1)
    moved = depth.clone()
    moved[..., 0, 0] = 0.9  # a textured pixel leaves the bin of the flat region
    far = (slice(None), slice(None), slice(None), slice(w - 8, w))

    plain = build()
    pooled = build(depth_pooling=8)
    with torch.no_grad():
        for pool in (pooled.pool1, pooled.pool2):
            pool.fuse.weight.normal_(0, 0.1)
        a0, b0 = plain(lq, depth).kernel, plain(lq, moved).kernel
        a1, b1 = pooled(lq, depth).kernel, pooled(lq, moved).kernel
    assert torch.equal(a0[far], b0[far])  # local without pooling
    assert (a1[far] - b1[far]).abs().max() > 1e-6  # global with pooling


def test_pooling_block_is_batch_independent_and_any_size():
    torch.manual_seed(0)
    pool = _DepthBinPooling(ch=4, bins=3)
    torch.nn.init.normal_(pool.fuse.weight)
    f, d = torch.randn(3, 4, 5, 7), torch.rand(3, 1, 5, 7)
    out = pool(f, d)
    assert out.shape == f.shape
    torch.testing.assert_close(out[1:2], pool(f[1:2], d[1:2]))


@pytest.mark.parametrize('bad', [-1, 1.5, True, '8'])
def test_bad_depth_pooling(bad):
    with pytest.raises(ValueError, match='depth_pooling'):
        DKENet(**TINY, depth_pooling=bad)


def test_depth_pooling_needs_depth():
    with pytest.raises(ValueError, match='depth_pooling'):
        DKENet(**TINY, use_depth=False, depth_pooling=8)


def test_gradients_flow():
    net = build(depth_pooling=8).train()
    lq, depth = inputs()
    lq.requires_grad_(True)
    # The zero fuse conv still gets a gradient; then a step away from zero reaches the confidence conv too.
    (net(lq, depth).kernel * torch.randn(2, K * K, 16, 16)).sum().backward()
    assert net.pool1.fuse.weight.grad.abs().sum() > 0 and net.pool2.fuse.weight.grad.abs().sum() > 0
    assert lq.grad.abs().sum() > 0
    net.zero_grad()
    with torch.no_grad():
        net.pool1.fuse.weight.normal_(0, 0.1)
        net.pool2.fuse.weight.normal_(0, 0.1)
    (net(lq, depth).kernel * torch.randn(2, K * K, 16, 16)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert net.pool1.confidence.weight.grad.abs().sum() > 0 and net.pool2.confidence.weight.grad.abs().sum() > 0
