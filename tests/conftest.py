# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Shared fixtures: small generated datasets (deterministic by seed)."""
import pytest
from mmengine.registry import init_default_scope

import mmseg_ext  # noqa: F401  (registers every module)
from mmseg_ext.datasets.generators import generate_synthetic_imbalance


@pytest.fixture(scope='session')
def toy_data_root(tmp_path_factory):
    """A tiny SyntheticImbalanceDataset: 8 train + 4 val images of 64x64."""
    root = tmp_path_factory.mktemp('synthetic_imbalance')
    generate_synthetic_imbalance(str(root), num_train=8, num_val=4, size=64,
                                 seed=0)
    return str(root)


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Build through mmseg's registries, as configs with
    ``default_scope='mmseg'`` do."""
    init_default_scope('mmseg')
