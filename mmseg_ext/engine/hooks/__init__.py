# Copyright (c) mmseg_ext contributors. All rights reserved.
# The pixel counters live in mmseg_ext.datasets.pixel_counters (TASK_UTILS,
# not hooks); their names stay importable from here.
from mmseg_ext.datasets.pixel_counters import (
    LabelMapPixelCounter, PackedLabelPixelCounter, PixelCounter,
    RLEPixelCounter, build_counter, count_dataset_pixels, read_label_map,
    resolve_counter, unwrap_dataset)
from .class_weight_hook import ClassWeightHook, iter_head_losses
from .loss_schedule_hook import LossScheduleHook
from .validation_class_weight_hook import (ValidationClassWeightHook,
                                           find_class_dice,
                                           update_validation_multipliers)

__all__ = [
    'ClassWeightHook', 'iter_head_losses', 'PixelCounter',
    'LabelMapPixelCounter', 'build_counter', 'count_dataset_pixels',
    'read_label_map', 'resolve_counter', 'unwrap_dataset',
    'PackedLabelPixelCounter', 'RLEPixelCounter', 'LossScheduleHook',
    'ValidationClassWeightHook', 'find_class_dice',
    'update_validation_multipliers'
]
