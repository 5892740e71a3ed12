# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTS brain tumour: label schemes, case layouts, NIfTI reading."""
from .labels import *  # noqa: F401,F403
from .layout import *  # noqa: F401,F403
from .nifti import *  # noqa: F401,F403
