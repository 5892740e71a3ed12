# Copyright (c) mmseg_ext contributors. All rights reserved.
from .synthetic_imbalance import generate_synthetic_imbalance

__all__ = ['generate_synthetic_imbalance']
