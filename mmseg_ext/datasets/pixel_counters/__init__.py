# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Per-class pixel counting over a dataset's label files (parallel, cached).

The counting is split so datasets with other label formats can plug in:

- :class:`PixelCounter` is the interface: ``setup(dataset)`` reads the
  dataset settings, ``items(dataset)`` lists picklable jobs,
  ``fingerprint(items)`` identifies their content for the cache and
  ``count(item)`` returns the ``(C,)`` int64 counts of one job (it runs in a
  worker process).
- :class:`LabelMapPixelCounter` (the default) reads label images directly,
  without the augmentation pipeline;
  :class:`PackedLabelPixelCounter` (packed multi-label PNGs) and
  :class:`RLEPixelCounter` (RLE strings of a CSV) are the others.
- :func:`count_dataset_pixels` unwraps dataset wrappers, resolves each
  dataset's counter, runs the jobs in a process pool with a progress bar and
  caches the result in a JSON file keyed by the fingerprint.

A dataset names its own counter with a method ``get_pixel_counter()``
(returning a :class:`PixelCounter` or a config dict) or a class attribute
``pixel_counter = dict(type='MyCounter', ...)``; counters are registered in
mmseg's ``TASK_UTILS`` so configs can name them.

They are ``TASK_UTILS`` of the datasets, not hooks: ``ClassWeightHook``
(:mod:`mmseg_ext.engine.hooks`) and ``tools/analysis_tools/class_weights.py``
use them.
"""
from .brats_pixel_counter import BraTSPixelCounter
from .count_pixels import (CACHE_PREFIX, CACHE_VERSION, build_counter,
                           count_dataset_pixels, resolve_counter,
                           run_counting, unwrap_dataset)
from .label_map_pixel_counter import (LabelMapPixelCounter, build_label_lut,
                                      read_label_map, uint8_histogram)
from .packed_label_pixel_counter import PackedLabelPixelCounter
from .pixel_counter import (PixelCounter, file_stamp, hash_items,
                            iter_data_infos)
from .rle_pixel_counter import RLEPixelCounter, read_image_size

__all__ = [
    'PixelCounter', 'LabelMapPixelCounter', 'PackedLabelPixelCounter',
    'RLEPixelCounter', 'count_dataset_pixels', 'run_counting',
    'build_counter', 'resolve_counter', 'unwrap_dataset', 'read_label_map',
    'read_image_size', 'uint8_histogram', 'build_label_lut',
    'iter_data_infos', 'file_stamp', 'hash_items', 'CACHE_VERSION',
    'CACHE_PREFIX', 'BraTSPixelCounter'
]
