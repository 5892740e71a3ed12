# Copyright (c) mmseg_ext contributors. All rights reserved.
from .class_weights import (CLASS_WEIGHT_METHODS, class_weight_table,
                            compute_class_weights, plot_class_weights,
                            save_class_weight_report)
from .io import atomic_path, dump_json_atomic, imwrite_atomic
from .multilabel import (num_packed_channels, pack_label_map,
                         pack_multilabel, packed_positive_counts,
                         read_packed_label, unpack_multilabel,
                         unpack_multilabel_torch, write_packed_label)
from .rle import parse_rle, rle_area, rle_decode, rle_encode, rle_runs
from .roi import (CARPAL_CLASS_IDS, crop_roi, jitter_box, paste_roi,
                  roi_from_masks)

__all__ = [
    'atomic_path', 'dump_json_atomic', 'imwrite_atomic',
    'CLASS_WEIGHT_METHODS', 'compute_class_weights', 'class_weight_table',
    'plot_class_weights', 'save_class_weight_report', 'num_packed_channels',
    'pack_multilabel', 'pack_label_map', 'unpack_multilabel',
    'unpack_multilabel_torch', 'packed_positive_counts', 'write_packed_label',
    'read_packed_label', 'rle_encode', 'rle_decode', 'rle_runs', 'parse_rle',
    'rle_area', 'CARPAL_CLASS_IDS', 'roi_from_masks', 'jitter_box', 'crop_roi',
    'paste_roi'
]
