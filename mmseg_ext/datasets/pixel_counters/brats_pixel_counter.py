# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Per-region positive voxel counts from the BraTS slice cache."""
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from mmseg.registry import TASK_UTILS

from mmseg_ext.utils.multilabel import packed_positive_counts
from .pixel_counter import PixelCounter, file_stamp, hash_items, \
    iter_data_infos

__all__ = ['BraTSPixelCounter']


@TASK_UTILS.register_module()
class BraTSPixelCounter(PixelCounter):
    """Count WT / TC / ET pixels of a ``BraTSDataset``'s slices.

    A ``BraTSDataset`` lists one data info per slice, all pointing at the
    case's ``label.npy`` (``(Z, X, Y, 1)`` uint16 packed). One job per
    case: ``(label path, slice indices)``; the listed slices are read from
    the memory-mapped volume in one go and counted with one histogram
    (:func:`~mmseg_ext.utils.multilabel.packed_positive_counts`), so a case
    costs one read of its slices instead of one file per slice. Slices
    listed twice count twice, as the data loader would see them.

    Args:
        num_classes (int, optional): ``C``; None for
            ``len(dataset.metainfo['classes'])`` (3). Defaults to None.
        ignore_index (int): Unused (packed labels mark ignored pixels with
            the valid bit). Defaults to 255.

    Examples:
        >>> counter = TASK_UTILS.build(dict(type='BraTSPixelCounter'))
        >>> counter.setup(dataset)
        >>> counts = sum(counter.count(j) for j in counter.items(dataset))
    """

    def items(self, dataset) -> List[Tuple[str, Tuple[int, ...]]]:
        """``(label.npy, slice indices)`` per case, in listing order."""
        slices: Dict[str, List[int]] = {}
        for i, info in enumerate(iter_data_infos(dataset)):
            if 'seg_map_path' not in info or 'slice_index' not in info:
                raise ValueError(
                    f'data info {i} of {type(dataset).__name__} should have '
                    '`seg_map_path` and `slice_index` (a labelled '
                    f'BraTSDataset split), but has keys {sorted(info)}')
            slices.setdefault(info['seg_map_path'], []).append(
                int(info['slice_index']))
        return [(path, tuple(zs)) for path, zs in slices.items()]

    def fingerprint(self, items: Sequence[Any]) -> str:
        """Settings, each file's stamp and its slice list."""
        return hash_items(self.settings(),
                          [(file_stamp(p), zs) for p, zs in items])

    def count(self, item: Tuple[str, Sequence[int]]) -> np.ndarray:
        """``(C,)`` int64 positive pixels per region of one case's slices.
        """
        if self.num_classes is None:
            raise RuntimeError('call `setup(dataset)` or give `num_classes` '
                               'before counting')
        path, zs = item
        label = np.load(path, mmap_mode='r')
        picked = np.asarray(label[np.asarray(zs, dtype=np.int64)])
        # (n, X, Y, 1) -> (n * X, Y, 1): one histogram for all slices.
        counts, _ = packed_positive_counts(
            picked.reshape((-1, ) + picked.shape[2:]), self.num_classes)
        return counts
