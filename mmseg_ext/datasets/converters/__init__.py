# Copyright (c) mmseg_ext contributors. All rights reserved.
"""One-off dataset converters (library side of ``tools/dataset_converters``).
"""
from .hand_bone import *  # noqa: F401,F403
