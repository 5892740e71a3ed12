# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Tiny generated BraTS roots, one per scheme (shared by the module tests)."""
import pytest

from mmseg_ext.datasets.generators.brats import generate_brats

SIZE = (16, 16, 12)


@pytest.fixture(scope='session')
def brats2020_root(tmp_path_factory):
    """3 training cases (the last is case 355) + 1 validation case."""
    root = str(tmp_path_factory.mktemp('brats2020'))
    train = generate_brats(root, 3, SIZE, 'brats2020', seed=0,
                           with_case_355=True)
    val = generate_brats(root, 1, SIZE, 'brats2020', seed=0,
                         split='validation')
    return root, train + val


@pytest.fixture(scope='session')
def brats2023_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('brats2023'))
    return root, generate_brats(root, 3, SIZE, 'brats2023', seed=1)
