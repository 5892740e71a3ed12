# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Install mmseg_ext.

torch is deliberately NOT a requirement: a torch that is already installed
(CPU, CUDA, ROCm, a custom build) must never be replaced by pip. Install
torch first, then mmcv with its compiled ops (``tools/setup_env.sh`` does
both, from a wheelhouse given in ``PIP_FIND_LINKS`` or from source), then
this package.
"""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
# Shipped in the package, as OpenMMLab packages do, for `mmseg_ext::cfg.py`
# in `_base_` and `python -m mmseg_ext.tools.<tool>`: mmseg_ext/.mim/configs
# and .mim/tools are symlinks to these folders in the repository (an
# editable install reads them there); a wheel gets real copies.
MIM_TREES = ('configs', 'tools')


def _read_version_module() -> dict:
    namespace: dict = {}
    path = osp.join(HERE, 'mmseg_ext', 'version.py')
    with open(path, encoding='utf-8') as f:
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
    # BraTS NIfTI volumes.
    'nibabel>=5',
    # Exact Euclidean distance transforms: distance maps of the boundary loss
    # (mmseg_ext/utils/distance_maps.py) and BraTS HD95 surfaces.
    'edt>=2',
    # BraTS tumour reports in SQL (mmseg_ext/apis/brats_db.py; Core API).
    'SQLAlchemy>=2',
    # mmseg 1.2.2 imports these from ``mmseg.models`` but lists them only as
    # extras.
    'ftfy',
    'regex',
]

extras_require = {
    # Compiled RLE kernels (mmseg_ext/utils/_rle_kernels.py); without numba
    # the numpy code path is used.
    'fast': ['numba>=0.59'],
    # `--db postgresql+psycopg://...` for the BraTS database tools.
    'postgres': ['psycopg[binary]>=3'],
    # Dense-CRF refinement (mmseg_ext/utils/dense_crf.py); builds from
    # source (a C++ compiler, ~2 minutes).
    'crf': ['pydensecrf2'],
    # The tests cover both RLE paths, the database on PostgreSQL and the CRF.
    'tests': [
        'pytest>=7', 'pytest-timeout', 'pytest-xdist>=3', 'hypothesis>=6',
        'numba>=0.59', 'psycopg[binary]>=3', 'pydensecrf2'
    ],
}


class BuildPyWithMim(build_py):
    """``build_py`` that copies ``configs/`` and ``tools/`` into the built
    ``mmseg_ext/.mim/``.

    mmseg's ``setup.py`` (``add_mim_extension``) writes the copies into the
    source tree, replacing its links; here the checkout is never touched and
    the wheel holds plain files whether or not git checked the links out as
    links (``core.symlinks=false``). Editable installs read the links.
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        mim_dir = osp.join(self.build_lib, 'mmseg_ext', '.mim')
        for name in MIM_TREES:
            src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
            if not osp.isdir(src):
                raise FileNotFoundError(
                    f'{src} should exist to be shipped in mmseg_ext/.mim/; '
                    'build from a full checkout or sdist')
            if osp.islink(dst) or osp.isfile(dst):
                os.remove(dst)
            elif osp.isdir(dst):
                shutil.rmtree(dst)  # a stale copy of an earlier build
            shutil.copytree(
                src, dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.py[co]'))


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
    # model-index.yml, and configs/tools through the links (the copy step
    # of BuildPyWithMim makes the wheel independent of them).
    package_data={'mmseg_ext': ['.mim/**/*']},
    cmdclass={'build_py': BuildPyWithMim},
    python_requires='>=3.8',
    install_requires=install_requires,
    extras_require=extras_require,
    license='Apache-2.0',
    zip_safe=False,
)
