"""IKC's PCA basis and kernel codes (ssr.ops.ikc_pca) against IKC's own formulas."""
from __future__ import annotations

import pytest
import torch

from ssr.ops.dcls_degradation import dcls_random_kernels
from ssr.ops.ikc_pca import fit_ikc_pca, ikc_codes, read_ikc_pca


def _kernels(n=400, k=11, rate_iso=0.5):
    return dcls_random_kernels(n, k, 0.3, 3.0, rate_iso=rate_iso, generator=torch.Generator().manual_seed(0))


def test_basis_spans_ikcs_svd_basis():
    kernels = _kernels()
    basis = fit_ikc_pca(kernels, 6)
    # IKC's util.PCA: U[:, :k] of torch.svd of the centred (k*k, N) matrix
    x = kernels.reshape(len(kernels), -1).double()
    u, _, _ = torch.linalg.svd((x - x.mean(0)).T, full_matrices=False)
    ikc = u[:, :6].float()
    assert basis.shape == (121, 6)
    assert torch.allclose(basis.T @ basis, torch.eye(6), atol=1e-5)
    # the same directions, column by column, up to sign
    assert torch.allclose((basis * ikc).sum(0).abs(), torch.ones(6), atol=1e-4)


def test_refit_is_identical_and_signs_are_fixed():
    kernels = _kernels()
    a, b = fit_ikc_pca(kernels, 4), fit_ikc_pca(kernels.flip(0), 4)
    assert torch.allclose(a, b, atol=1e-6)
    assert (a.gather(0, a.abs().argmax(0, keepdim=True)) > 0).all()


def test_codes_are_the_flat_kernel_times_the_basis_without_a_mean():
    kernels = _kernels(50)
    basis = fit_ikc_pca(kernels, 5)
    codes = ikc_codes(kernels[:3, None], basis)  # (B, 1, k, k) as IKCGTDataset batches them
    assert torch.allclose(codes, kernels[:3].reshape(3, -1) @ basis)
    with pytest.raises(ValueError, match='121 rows'):
        ikc_codes(torch.ones(2, 9, 9), basis)


@pytest.mark.parametrize('bad, message', [(None, 'not found'), ('dict', 'holds a dict'),
                                          ('shape', r'shape \(121, 3\), expected \(k\*k, 5\)')])
def test_read_names_the_file_and_what_is_wrong(tmp_path, bad, message):
    path = tmp_path / 'pca_matrix.pth'
    if bad == 'dict':
        torch.save({'a': torch.ones(1)}, path)
    elif bad == 'shape':
        torch.save(torch.ones(121, 3), path)
    with pytest.raises(ValueError, match=message) as info:
        read_ikc_pca(path, 5)
    assert str(path) in str(info.value)
    torch.save(torch.ones(121, 5), path)
    assert read_ikc_pca(path, 5).shape == (121, 5)
