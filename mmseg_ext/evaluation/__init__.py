# Copyright (c) mmseg_ext contributors. All rights reserved.
from . import metrics  # noqa: F401
from .brats_metrics import (compute_brats_metrics, compute_region_metrics,  # noqa
                            mean_brats_metrics)
