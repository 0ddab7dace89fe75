"""MUSIQ and CLIP-IQA through pyiqa with local files only: scores with given weights, clear errors without."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skdata

from ssr.metrics.no_reference import calculate_clipiqa, calculate_musiq

pyiqa = pytest.importorskip('pyiqa', reason='pyiqa is installed by scripts/setup_env.sh')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A MUSIQ checkpoint of pyiqa's layout and a tiny CLIP (TorchScript, as OpenAI ships RN50.pt), random weights."""
    from pyiqa.archs.clip_model import CLIP
    from pyiqa.archs.musiq_arch import MUSIQ

    folder = tmp_path_factory.mktemp('nr')
    torch.manual_seed(0)
    torch.save(MUSIQ(pretrained=False).state_dict(), folder / 'musiq.pth')

    class TracedCLIP(CLIP):
        def forward(self, x):
            return x * self.logit_scale

    clip = TracedCLIP(16, 64, (1, 1, 1, 1), 32, None, 77, 49408, 64, 1, 1)  # heads = width // 64 as in build_model
    torch.jit.save(torch.jit.trace(clip, torch.ones(1)), folder / 'clip_rn.pt')
    torch.save(clip.state_dict(), folder / 'clip_state_dict.pth')
    torch.save(torch.randn(2, 16, 64), folder / 'prompts.pth')
    return folder


def photo() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[::4, ::4, ::-1])  # (128, 128, 3) BGR


def test_musiq_scores_with_local_weights(files, no_download):
    img = photo()
    score = calculate_musiq(img, weights_path=str(files / 'musiq.pth'))
    assert np.isfinite(score) and score == calculate_musiq(img, weights_path=str(files / 'musiq.pth'))
    assert calculate_musiq(img[::-1].copy(), weights_path=str(files / 'musiq.pth')) != score


def test_musiq_errors_name_the_option(files, tmp_path, no_download):
    with pytest.raises(ValueError, match='weights_path'):
        calculate_musiq(photo())
    with pytest.raises(FileNotFoundError, match='weights_path'):
        calculate_musiq(photo(), weights_path=str(tmp_path / 'absent.pth'))
    with pytest.raises(ValueError, match='not a pyiqa MUSIQ'):
        calculate_musiq(photo(), weights_path=str(files / 'clip_state_dict.pth'))
    with pytest.raises(ValueError, match='variant'):
        calculate_musiq(photo(), weights_path=str(files / 'musiq.pth'), variant='imagenet')


def test_clipiqa_scores_with_a_local_backbone(files, no_download):
    score = calculate_clipiqa(photo(), backbone_path=str(files / 'clip_rn.pt'))
    assert 0 <= score <= 1
    plus = calculate_clipiqa(photo(), backbone_path=str(files / 'clip_rn.pt'), variant='clipiqa+',
                             prompt_path=str(files / 'prompts.pth'))
    assert 0 <= plus <= 1 and plus != score


def test_clipiqa_errors_name_the_option(files, tmp_path, no_download):
    with pytest.raises(ValueError, match='backbone_path'):
        calculate_clipiqa(photo())
    with pytest.raises(ValueError, match='prompt_path'):
        calculate_clipiqa(photo(), backbone_path=str(files / 'clip_rn.pt'), variant='clipiqa+')
    with pytest.raises(ValueError, match='TorchScript'):
        calculate_clipiqa(photo(), backbone_path=str(files / 'clip_state_dict.pth'))
    wrong = tmp_path / 'prompts.pth'
    torch.save(torch.randn(2, 8, 64), wrong)
    with pytest.raises(ValueError, match='shape'):
        calculate_clipiqa(photo(), backbone_path=str(files / 'clip_rn.pt'), variant='clipiqa+', prompt_path=str(wrong))
