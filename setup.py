# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Install mmseg_ext.

torch is deliberately NOT a requirement: a torch that is already installed
(CPU, CUDA, ROCm, a custom build) must never be replaced by pip. Install
torch first, then mmcv with its compiled ops (``tools/setup_env.sh`` does
both, from a wheelhouse given in ``PIP_FIND_LINKS`` or from source), then
this package.
"""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def _read_version_module() -> dict:
    namespace: dict = {}
    with open(osp.join(HERE, 'mmseg_ext', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), namespace)
    return namespace


_VERSION = _read_version_module()
_RANGES = _VERSION['DEPENDENCY_RANGES']


def _ranged(dist: str) -> str:
    low, high = _RANGES[dist]
    return f'{dist}>={low},<{high}'


install_requires = [
    _ranged('mmsegmentation'),
    _ranged('mmengine'),
    _ranged('mmcv'),
    'timm>=0.9',
    'albumentations>=1.4,<3',
    'numpy>=1.23',
    'opencv-python-headless>=4.5',
    'matplotlib>=3.5',
    'rich>=12',
    'prettytable',
    'scipy',
    # mmseg 1.2.2 imports these from ``mmseg.models`` but lists them only as
    # extras.
    'ftfy',
    'regex',
]

extras_require = {
    # Compiled RLE kernels (mmseg_ext/utils/_rle_kernels.py); without numba
    # the numpy code path is used.
    'fast': ['numba>=0.59'],
    # The tests cover both RLE paths.
    'tests': ['pytest>=7', 'pytest-timeout', 'numba>=0.59'],
}

with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='mmseg_ext',
    version=_VERSION['__version__'],
    description='Class-imbalance and multi-label toolkit for MMSegmentation '
    '1.x: losses, class weights, tools, configs.',
    long_description=long_description,
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmseg_ext', 'mmseg_ext.*']),
    python_requires='>=3.8',
    install_requires=install_requires,
    extras_require=extras_require,
    license='Apache-2.0',
    zip_safe=False,
)
