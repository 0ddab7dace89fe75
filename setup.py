from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
# torch / torchvision / basicsr are installed by scripts/setup_env.sh (local wheels, --no-build-isolation);
# listing them here would make `pip install -e .` try to build basicsr in isolation.
REQUIRES = ['numpy', 'scipy', 'scikit-image', 'opencv-python', 'lmdb', 'pyyaml', 'addict', 'tqdm', 'matplotlib', 'diffusers', 'timm']

setup(
    name='ssr',
    version='0.1.0',
    description='Depth-informed, spatially variant blind super-resolution (SSR) as a BasicSR plugin',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8') if (ROOT / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ssr', 'ssr.*']),
    python_requires='>=3.10',
    install_requires=REQUIRES,
    license='Apache-2.0',
)
