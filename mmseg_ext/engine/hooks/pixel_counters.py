# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Moved to :mod:`mmseg_ext.datasets.pixel_counters` (counters are
``TASK_UTILS`` of the datasets, not hooks); this path keeps old imports
working."""
from mmseg_ext.datasets.pixel_counters import *  # noqa: F401,F403
from mmseg_ext.datasets.pixel_counters import __all__  # noqa: F401
