# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Moved to :mod:`mmseg_ext.datasets.pixel_counters.rle_pixel_counter`; this
path keeps old imports working."""
from mmseg_ext.datasets.pixel_counters import RLEPixelCounter, read_image_size

__all__ = ['RLEPixelCounter', 'read_image_size']
