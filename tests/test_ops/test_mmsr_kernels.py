"""ssr.ops.mmsr_kernels: MANet's test kernels (iso std, aniso eigenvalues, the sv_mode patterns) as ssr parameters."""
from __future__ import annotations

import math

import pytest
import torch

from ssr.ops.mmsr_kernels import BLOCK, MMSRKernelSpec, mmsr_kernel_params


def test_isotropic_sig_is_a_standard_deviation():
    p = mmsr_kernel_params(MMSRKernelSpec(sig=3.0, rate_iso=1.0), (32, 48), 4)
    assert p['sigma1'].shape == (1, 8, 12) and bool(p['isotropic'])
    assert torch.all(p['sigma1'] == 3.0) and torch.all(p['sigma2'] == 3.0) and torch.all(p['theta'] == 0)


def test_anisotropic_sig1_sig2_are_variances():
    p = mmsr_kernel_params(MMSRKernelSpec(sig1=6.0, sig2=1.0, theta=0.5, rate_iso=0.0), (16, 16), 4)
    assert not bool(p['isotropic'])
    torch.testing.assert_close(p['sigma1'], torch.full((1, 4, 4), math.sqrt(6.0)))
    torch.testing.assert_close(p['sigma2'], torch.ones(1, 4, 4))
    torch.testing.assert_close(p['theta'], torch.full((1, 4, 4), 0.5))


def test_sv_mode_1_grows_var2_down_the_blocks():
    s, hh = 4, 4 * BLOCK  # 4 blocks of 40 HR px down, LR rows of 4 px
    p = mmsr_kernel_params(MMSRKernelSpec(rate_iso=0.0, sv_mode=1), (hh, 80), s)
    a, b = (2.5 - 0.175) * s, 0.175 * s
    var2 = p['sigma2'][0, :, 0].double().square()
    rows = torch.arange(hh // s) * s // BLOCK  # the block of each LR row's HR row
    torch.testing.assert_close(var2, a * rows.double() / 4 + b, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(p['sigma1'].double().square(), torch.full((1, hh // s, 20), a + b, dtype=torch.double),
                               rtol=1e-6, atol=1e-6)
    assert torch.all(p['sigma2'][:, :, 0:1] == p['sigma2'])  # constant along a row


def test_sv_mode_6_alternates_the_angle_like_a_checkerboard():
    p = mmsr_kernel_params(MMSRKernelSpec(rate_iso=0.0, sv_mode=6), (80, 80), 4)
    theta = p['theta'][0]
    assert theta[0, 0] == pytest.approx(math.pi / 4) and theta[0, 10] == pytest.approx(3 * math.pi / 4)
    assert theta[10, 10] == pytest.approx(math.pi / 4)


def test_random_draws_are_seeded():
    spec = MMSRKernelSpec(rate_iso=0.0, sv_mode=5)
    a = mmsr_kernel_params(spec, (80, 120), 4, torch.Generator().manual_seed(3))
    b = mmsr_kernel_params(spec, (80, 120), 4, torch.Generator().manual_seed(3))
    c = mmsr_kernel_params(spec, (80, 120), 4, torch.Generator().manual_seed(4))
    assert torch.equal(a['sigma1'], b['sigma1']) and not torch.equal(a['sigma1'], c['sigma1'])
    var = a['sigma1'].double().square()
    assert var.min() >= 0.175 * 4 - 1e-6 and var.max() <= 2.5 * 4 + 1e-6
    picks = [bool(mmsr_kernel_params(MMSRKernelSpec(rate_iso=0.5), (8, 8), 4,
                                     torch.Generator().manual_seed(i))['isotropic']) for i in range(40)]
    assert 5 < sum(picks) < 35  # rate_iso 0.5 draws both kinds


@pytest.mark.parametrize(('kwargs', 'match'), [({'sv_mode': 7}, 'sv_mode 7 not in'), ({'rate_iso': 1.5}, 'rate_iso'),
                                               ({'sv_mode': 2}, 'needs rate_iso: 0'), ({'sig1': 0.0}, 'sig1 must be')])
def test_bad_specs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MMSRKernelSpec(**kwargs)
