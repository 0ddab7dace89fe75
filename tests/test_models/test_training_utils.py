"""Shared training helpers of ssr's models."""
from __future__ import annotations

import pytest
import torch

from ssr.models.training_utils import check_finite


def test_non_finite_loss_names_the_iteration():
    check_finite({'l_pix': torch.tensor(0.5)}, 3)
    with pytest.raises(FloatingPointError, match="iteration 17: {'l_kernel': nan}"):
        check_finite({'l_pix': torch.tensor(0.5), 'l_kernel': torch.tensor(float('nan'))}, 17)
