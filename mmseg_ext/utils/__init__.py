# Copyright (c) mmseg_ext contributors. All rights reserved.
from .class_weights import (CLASS_WEIGHT_METHODS, check_class_weight_args,
                            class_weight_table, compute_class_weights,
                            plot_class_weights, save_class_weight_report)
from .dice import (DICE_EPS, dice_from_counts, image_counts,
                   iou_from_counts)
from .ensemble import (STRATEGIES, ThresholdSearch, classwise_select,
                       dequantize_probs, hard_vote, quantize_probs, soft_vote)
from .errors import InputError
from .io import atomic_path, dump_json_atomic, imwrite_atomic
from .multilabel import (as_unpacked, is_packed, num_packed_channels,
                         pack_label_map, pack_multilabel,
                         packed_positive_counts, pipeline_channels,
                         read_packed_label, unpack_multilabel,
                         unpack_multilabel_torch, write_packed_label)
from .plotting import new_figure, save_figure
from .postprocess import (apply_postprocess, keep_largest_component,
                          plan_by_index, remove_small_components,
                          select_postprocess)
from .rle import parse_rle, rle_area, rle_decode, rle_encode, rle_runs
from .roi import (CARPAL_CLASS_IDS, crop_roi, jitter_box, paste_roi,
                  roi_from_masks)
from .threshold_search import (ProbabilityCache, competition_dice, mean_dice,
                               search_threshold)

__all__ = [
    'InputError',
    'atomic_path', 'dump_json_atomic', 'imwrite_atomic',
    'CLASS_WEIGHT_METHODS', 'check_class_weight_args', 'compute_class_weights',
    'class_weight_table',
    'plot_class_weights', 'save_class_weight_report', 'num_packed_channels',
    'pipeline_channels', 'pack_multilabel', 'pack_label_map',
    'unpack_multilabel', 'unpack_multilabel_torch', 'is_packed',
    'as_unpacked', 'packed_positive_counts', 'write_packed_label',
    'read_packed_label', 'rle_encode', 'rle_decode', 'rle_runs', 'parse_rle',
    'rle_area', 'CARPAL_CLASS_IDS', 'roi_from_masks', 'jitter_box', 'crop_roi',
    'paste_roi', 'DICE_EPS', 'dice_from_counts', 'iou_from_counts',
    'image_counts', 'STRATEGIES', 'soft_vote', 'hard_vote', 'classwise_select',
    'quantize_probs', 'dequantize_probs', 'ThresholdSearch',
    'select_postprocess', 'apply_postprocess', 'plan_by_index',
    'keep_largest_component',
    'remove_small_components', 'competition_dice', 'mean_dice',
    'search_threshold', 'ProbabilityCache', 'new_figure', 'save_figure'
]
