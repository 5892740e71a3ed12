# Copyright (c) mmseg_ext contributors. All rights reserved.
from .multilabel_visualizer import (MultiLabelSegLocalVisualizer,
                                    blend_multilabel_masks, class_crops,
                                    distinct_palette)

__all__ = [
    'MultiLabelSegLocalVisualizer', 'blend_multilabel_masks', 'class_crops',
    'distinct_palette'
]
