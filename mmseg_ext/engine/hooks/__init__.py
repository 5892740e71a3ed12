# Copyright (c) mmseg_ext contributors. All rights reserved.
from .class_weight_hook import ClassWeightHook, iter_head_losses
from .pixel_counters import (LabelMapPixelCounter, PixelCounter,
                             build_counter, count_dataset_pixels,
                             read_label_map, resolve_counter, unwrap_dataset)

__all__ = [
    'ClassWeightHook', 'iter_head_losses', 'PixelCounter',
    'LabelMapPixelCounter', 'build_counter', 'count_dataset_pixels',
    'read_label_map', 'resolve_counter', 'unwrap_dataset'
]
from .packed_label_counter import *  # noqa: F401,F403,E402
from .rle_counter import *  # noqa: F401,F403,E402
