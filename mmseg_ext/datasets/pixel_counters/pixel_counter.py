# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The :class:`PixelCounter` interface and the helpers of its subclasses."""
import hashlib
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['PixelCounter', 'iter_data_infos', 'file_stamp', 'hash_items']


def _dataset_num_classes(dataset) -> int:
    classes = getattr(dataset, 'metainfo', {}).get('classes')
    if not classes:
        raise ValueError(
            f'`num_classes` should be given, or the dataset '
            f'{type(dataset).__name__} should have `metainfo["classes"]`, '
            'but it has none')
    return len(classes)


class PixelCounter:
    """Interface of a per-class pixel counter; subclass it for a format.

    A subclass overrides :meth:`count` (and :meth:`items` when a job is not
    the ``seg_map_path`` of a data info, e.g. one row of an RLE CSV). Keep the
    instance picklable (plain attributes, no open files): the bound
    :meth:`count` is sent to worker processes with it. Put every setting
    that changes the counts in :meth:`settings`, so the cache key changes
    with it. Multi-label counters return positive pixels per class.

    Args:
        num_classes (int, optional): ``C``; None to take
            ``len(dataset.metainfo['classes'])`` in :meth:`setup`.
            Defaults to None.
        ignore_index (int): Label value that is not counted (values ``>= C``
            are not counted either). Defaults to 255.

    Attributes:
        parallel_backend (str): ``'process'`` (default; a process pool, the
            counter must be picklable) or ``'thread'`` (only for ``count``
            that releases the GIL, e.g. OpenCV or zlib work).

    Examples:
        >>> @TASK_UTILS.register_module()
        ... class RLEPixelCounter(PixelCounter):
        ...     def items(self, dataset):
        ...         return [(info['rle'], info['height'], info['width'])
        ...                 for info in iter_data_infos(dataset)]
        ...     def fingerprint(self, items):
        ...         return hash_items(self.settings(), items)
        ...     def count(self, item):
        ...         mask = decode_rle(*item)  # (H, W) label map
        ...         return np.bincount(mask[mask < self.num_classes].ravel(),
        ...                            minlength=self.num_classes)
    """
    parallel_backend = 'process'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255) -> None:
        if num_classes is not None and (not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError('`num_classes` should be a positive int or '
                             f'None, but got {num_classes!r}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def setup(self, dataset) -> None:
        """Read the settings this counter needs from ``dataset`` (once)."""
        if self.num_classes is None:
            self.num_classes = _dataset_num_classes(dataset)

    def settings(self) -> Dict[str, Any]:
        """JSON-able settings that change the counts (part of the cache key).
        """
        return dict(
            type=type(self).__name__,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index)

    def items(self, dataset) -> List[Any]:
        """Picklable counting jobs; by default each ``seg_map_path``."""
        paths = []
        for i, info in enumerate(iter_data_infos(dataset)):
            if 'seg_map_path' not in info:
                raise ValueError(
                    f'data info {i} of {type(dataset).__name__} should have '
                    f'`seg_map_path`, but has keys {sorted(info)}; give the '
                    'dataset its own `PixelCounter`')
            paths.append(info['seg_map_path'])
        return paths

    def fingerprint(self, items: Sequence[Any]) -> str:
        """Content key of ``items``: path, size and mtime of each file."""
        return hash_items(self.settings(), [file_stamp(p) for p in items])

    def count(self, item: Any) -> np.ndarray:
        """Return the ``(C,)`` int64 pixel counts of one item."""
        raise NotImplementedError


def iter_data_infos(dataset):
    """Yield the data infos of a (non-wrapper) dataset, no pipeline run."""
    for i in range(len(dataset)):
        yield dataset.get_data_info(i)


def file_stamp(path: str) -> Tuple[str, int, int]:
    """``(path, size, mtime_ns)`` of a file; raise naming it if missing."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise FileNotFoundError(
            f'label file {path!r} cannot be read: {e.strerror}') from None
    return (str(path), st.st_size, st.st_mtime_ns)


def hash_items(settings: Dict[str, Any], stamps: Sequence[Any]) -> str:
    """SHA-256 hex digest of counter settings plus per-item stamps."""
    h = hashlib.sha256()
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for stamp in stamps:
        h.update(b'\0')
        h.update(repr(stamp).encode())
    return h.hexdigest()
