# Copyright (c) mmseg_ext contributors. All rights reserved.
from importlib.metadata import version

import pytest
from mmseg.registry import DATASETS

import mmseg_ext
from mmseg_ext import check_dependency_versions


def test_installed_versions_are_supported():
    check_dependency_versions()  # the environment the suite runs in


def test_out_of_range_names_installed_and_supported():
    installed = version('mmsegmentation')
    with pytest.raises(ImportError) as err:
        check_dependency_versions({'mmsegmentation': ('9.0.0', '10.0.0')})
    msg = str(err.value)
    assert f'mmsegmentation=={installed} is installed' in msg
    assert '>=9.0.0,<10.0.0' in msg


def test_missing_distribution_is_reported():
    with pytest.raises(ImportError, match='not-a-real-dist is not installed'):
        check_dependency_versions({'not-a-real-dist': ('1.0.0', '2.0.0')})


def test_registers_into_mmseg_scope():
    assert mmseg_ext.__version__
    assert DATASETS.get('SyntheticImbalanceDataset') is not None
