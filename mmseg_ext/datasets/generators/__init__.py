# Copyright (c) mmseg_ext contributors. All rights reserved.
from .brats import generate_brats  # noqa: F401
from .building import *  # noqa: F401,F403
from .hand_bone import *  # noqa: F401,F403
from .synthetic_imbalance import generate_synthetic_imbalance

__all__ = ['generate_synthetic_imbalance']
