# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Per-class positive pixel counts from packed multi-label PNGs."""
from typing import Optional

import numpy as np
from mmseg.registry import TASK_UTILS

from mmseg_ext.utils.multilabel import (packed_positive_counts,
                                        read_packed_label)
from .pixel_counter import PixelCounter

__all__ = ['PackedLabelPixelCounter']


@TASK_UTILS.register_module()
class PackedLabelPixelCounter(PixelCounter):
    """Count positive pixels of each class in packed multi-label PNGs.

    Reads each data info's ``seg_map_path`` (a packed label from
    :func:`mmseg_ext.utils.multilabel.write_packed_label`: class ``k`` is bit
    ``k % 16`` of channel ``k // 16``) and returns, per class, the pixels
    whose bit is set (:func:`~mmseg_ext.utils.multilabel.
    packed_positive_counts`: one histogram per channel, not ``C`` passes).
    A pixel of several classes counts once for each; ignored pixels (valid
    bit clear) carry no class bit and count for none. Datasets of packed
    labels (``HandBoneDataset``) name it in ``get_pixel_counter()``, so
    ``ClassWeightHook`` uses it without configuration.

    Args:
        num_classes (int, optional): ``C``; None for
            ``len(dataset.metainfo['classes'])``. Defaults to None.
        ignore_index (int): Unused (ignored pixels are marked by the valid
            bit); kept for the :class:`PixelCounter` interface.
            Defaults to 255.

    Examples:
        >>> counter = TASK_UTILS.build(dict(type='PackedLabelPixelCounter'))
        >>> counter.setup(dataset)
        >>> counts = sum(counter.count(p) for p in counter.items(dataset))
    """
    # PNG decoding (cv2) dominates and releases the GIL.
    parallel_backend = 'thread'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255) -> None:
        super().__init__(num_classes=num_classes, ignore_index=ignore_index)

    def count(self, item: str) -> np.ndarray:
        """``(C,)`` int64 positive pixels per class of one packed PNG."""
        if self.num_classes is None:
            raise RuntimeError('call `setup(dataset)` or give `num_classes` '
                               'before counting')
        packed = read_packed_label(item, self.num_classes)
        counts, _ = packed_positive_counts(packed, self.num_classes)
        return counts
