# Copyright (c) mmseg_ext contributors. All rights reserved.
from .compat import apply_compat_patches
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403

__all__ = ['apply_compat_patches']
