# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTS brain tumour: label schemes, case layouts, NIfTI reading, the
slice-cache converter and the slice dataset."""
from .labels import *  # noqa: F401,F403
from .layout import *  # noqa: F401,F403
from .nifti import *  # noqa: F401,F403
from .convert import *  # noqa: F401,F403
from .dataset import *  # noqa: F401,F403
