"""Shared checks for every network: a tiny config per arch plus this mixin (diffusers' ModelTesterMixin style).

Usage::

    class TestDKENet(ArchTesterMixin):
        arch = 'DKENet'                       # name in ARCH_REGISTRY
        config = {'num_feat': 8, ...}         # tiny keyword arguments
        def inputs(self): return {'lq': torch.rand(1, 3, 16, 16), 'depth': torch.rand(1, 1, 64, 64)}
        def check_output(self, out, inputs): assert out.kernel.shape == (1, 441, 16, 16)

The mixin builds the network through ``ARCH_REGISTRY`` (as ``build_network`` does from YAML) and checks the output,
a backward pass reaching every trainable parameter, determinism, and a state-dict round trip through basicsr's
``save_network`` / ``load_network`` (ssr's atomic, ``weights_only`` versions).
"""
from __future__ import annotations

import copy
from dataclasses import fields, is_dataclass

import torch
from basicsr.utils.registry import ARCH_REGISTRY

import ssr  # noqa: F401
from ssr.models.base_model import SVBaseModel


def tensors_of(out) -> list[torch.Tensor]:
    """All tensors in a network output (tensor, tuple/list, dict or dataclass)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if is_dataclass(out):
        return [t for f in fields(out) for t in tensors_of(getattr(out, f.name))]
    if isinstance(out, dict):
        return [t for v in out.values() for t in tensors_of(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in tensors_of(v)]
    return []


def checkpoint_model(tmp_path) -> SVBaseModel:
    """ssr's model base (around a tiny RRDBNet) for its ``save_network`` / ``load_network``: atomic writes under
    ``tmp_path``, ``weights_only`` reads, the network's ``adapt_state_dict`` and one strict key report."""
    tiny_rrdb = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4, 'num_block': 1, 'num_grow_ch': 4,
                 'scale': 4}
    return SVBaseModel({'num_gpu': 0, 'is_train': False, 'dist': False, 'network_g': tiny_rrdb,
                        'path': {'models': str(tmp_path)}})


class ArchTesterMixin:
    arch: str = ''
    config: dict = {}
    trainable_all: bool = True  # every parameter must get a gradient (set False for frozen parts)

    def build(self):
        torch.manual_seed(0)
        return ARCH_REGISTRY.get(self.arch)(**copy.deepcopy(self.config))

    def inputs(self) -> dict:
        raise NotImplementedError

    def check_output(self, out, inputs: dict) -> None:
        raise NotImplementedError

    def test_output(self):
        net = self.build().eval()
        inputs = self.inputs()
        with torch.no_grad():
            out = net(**inputs)
        assert all(torch.isfinite(t).all() for t in tensors_of(out))
        self.check_output(out, inputs)

    def test_backward_reaches_every_parameter(self):
        net = self.build().train()
        out = net(**self.inputs())
        loss = sum(t.float().square().mean() for t in tensors_of(out) if t.is_floating_point())
        loss.backward()
        trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        assert trainable or not self.trainable_all
        missing = [n for n, p in trainable if p.grad is None]
        assert not missing, f'no gradient reached {missing[:10]}'

    def test_deterministic(self):
        net = self.build().eval()
        inputs = self.inputs()
        with torch.no_grad():
            a, b = tensors_of(net(**inputs)), tensors_of(net(**inputs))
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=0, atol=0)

    def test_state_dict_round_trip(self, tmp_path):
        model = checkpoint_model(tmp_path)
        net, other = self.build(), self.build()
        with torch.no_grad():
            for p in other.parameters():
                p.add_(0.1)
        model.save_network(net, 'net_g', 1)
        model.load_network(other, str(tmp_path / 'net_g_1.pth'))
        for (name, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items()):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
