# Copyright (c) mmseg_ext contributors. All rights reserved.
from .generators import generate_synthetic_imbalance
from .synthetic_imbalance import SyntheticImbalanceDataset

__all__ = ['SyntheticImbalanceDataset', 'generate_synthetic_imbalance']
