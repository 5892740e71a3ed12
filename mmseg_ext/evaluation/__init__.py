# Copyright (c) mmseg_ext contributors. All rights reserved.
from . import metrics  # noqa: F401
