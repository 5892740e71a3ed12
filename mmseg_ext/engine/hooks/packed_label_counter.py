# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Moved to
:mod:`mmseg_ext.datasets.pixel_counters.packed_label_pixel_counter`; this
path keeps old imports working."""
from mmseg_ext.datasets.pixel_counters import PackedLabelPixelCounter

__all__ = ['PackedLabelPixelCounter']
