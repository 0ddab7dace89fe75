"""The kernel-estimator recipe resumes exactly: iterations 11-20 after a stop at 10 equal an uninterrupted run."""
from __future__ import annotations

import re

import cv2
import pytest

from tests.conftest import PHOTOS, REPO, photo, run_entry, write_options

LINE = re.compile(r'iter:\s*([\d,]+).*?l_kernel: ([-+.\deE]+) l_consistency: ([-+.\deE]+)')


def losses(text: str) -> dict[int, tuple[str, str]]:
    return {int(m.group(1).replace(',', '')): (m.group(2), m.group(3)) for m in LINE.finditer(text)}


@pytest.mark.slow
def test_resume_reproduces_losses(tmp_path):
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in PHOTOS[:3]:
        cv2.imwrite(str(photos / f'{name}.png'), photo(name, 48))

    def train(name: str, total: int, *extra: str) -> dict:
        opt = write_options(tmp_path / f'{name}_{total}.yml', {
            '_base_': str(REPO / 'tests/data/train_dkenet_x4.yml'), 'name': name,
            'datasets': {'_delete_': True, 'train': {
                'name': 'photos', 'type': 'SVDegradationDataset', 'dataroot_gt': str(photos), 'gt_size': 32,
                'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0, 'dataset_enlarge_ratio': 3,
                'degradation': {'kernel_size': 11}}},
            'val': None, 'train': {'total_iter': total, 'scheduler': {'periods': [20]}},
            'logger': {'save_checkpoint_freq': 10}})
        proc = run_entry('train.py', ['-opt', str(opt), *extra], root=tmp_path)
        return losses(proc.stdout + proc.stderr)

    reference = train('ref', 20)
    assert sorted(train('cut', 10)) == list(range(1, 11))
    resumed = train('cut', 20, '--auto_resume')
    assert sorted(resumed) == list(range(11, 21))
    assert resumed == {i: reference[i] for i in range(11, 21)}
