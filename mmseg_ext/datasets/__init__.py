# Copyright (c) mmseg_ext contributors. All rights reserved.
from . import transforms  # noqa: F401
from . import brats  # noqa: F401  (BraTS layouts, labels, NIfTI)
from .building_rle import *  # noqa: F401,F403
from .generators import generate_synthetic_imbalance
from .hand_bone import *  # noqa: F401,F403
from .packed_multilabel import *  # noqa: F401,F403
from . import pixel_counters  # noqa: F401  (registers the TASK_UTILS)
from .synthetic_imbalance import SyntheticImbalanceDataset

__all__ = ['SyntheticImbalanceDataset', 'generate_synthetic_imbalance']
from . import samplers  # noqa: F401  (RareClassSampler)
