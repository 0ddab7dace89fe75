from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
# torch / torchvision as ranges, so that an installed CUDA build is kept (pip only installs them when absent).
# basicsr 1.4.2 is an sdist whose setup.py imports torch: install it first with
#   pip install --no-build-isolation basicsr==1.4.2
# (scripts/setup_env.sh does); listing it here would make pip build it in an isolated environment without torch.
REQUIRES = [
    'torch>=2.1', 'torchvision>=0.16', 'numpy', 'scipy', 'scikit-image', 'opencv-python',
    'lmdb>=1.4,<2',  # py-lmdb >= 2 refuses a second open of one environment (BasicSR's LMDB backend)
    'pyyaml', 'addict', 'tqdm', 'matplotlib', 'diffusers', 'timm',
    'ninja',  # builds the optional native CPU kernels (ssr/ops/csrc) on first use; without it the torch path runs
]

setup(
    name='ssr',
    version='0.1.0',
    description='Depth-informed, spatially variant blind super-resolution (SSR) as a BasicSR plugin',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8') if (ROOT / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ssr', 'ssr.*']),
    package_data={'ssr.ops': ['csrc/*.cpp']},  # compiled on first use (ssr.ops.native)
    python_requires='>=3.10',
    install_requires=REQUIRES,
    license='Apache-2.0',
    license_files=['LICENSE'],
)
