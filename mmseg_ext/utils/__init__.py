# Copyright (c) mmseg_ext contributors. All rights reserved.
from .class_weights import (CLASS_WEIGHT_METHODS, class_weight_table,
                            compute_class_weights, plot_class_weights,
                            save_class_weight_report)
from .io import atomic_path, dump_json_atomic, imwrite_atomic

__all__ = [
    'atomic_path', 'dump_json_atomic', 'imwrite_atomic',
    'CLASS_WEIGHT_METHODS', 'compute_class_weights', 'class_weight_table',
    'plot_class_weights', 'save_class_weight_report'
]
