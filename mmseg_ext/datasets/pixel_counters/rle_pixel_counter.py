# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Pixel counting straight from the RLE strings of a CSV dataset."""
import hashlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmseg.registry import TASK_UTILS

from mmseg_ext.utils.rle import rle_area
from .pixel_counter import (PixelCounter, file_stamp, hash_items,
                            iter_data_infos)


def read_image_size(path: str) -> Tuple[int, int]:
    """``(H, W)`` of an image from its header (PIL opens lazily: the pixels
    are not decoded).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not an image PIL can identify.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            width, height = img.size
    except UnidentifiedImageError as e:
        raise ValueError(f'cannot read the size of image {path!r}: {e}') \
            from None
    return height, width


@TASK_UTILS.register_module()
class RLEPixelCounter(PixelCounter):
    """Count building pixels from RLE strings, without decoding masks.

    The foreground of a row is the sum of its run lengths
    (:func:`mmseg_ext.utils.rle_area`, which also validates the string); the
    background is ``H * W`` minus that. The image size comes from the data
    info's ``height``/``width`` when the dataset knows it (e.g.
    ``BuildingRLEDataset(image_size=(1024, 1024))``), else from the image
    file's header (PIL, no pixel decoding): the RLE alone does not give the
    size, and assuming one would silently miscount the background.

    Counts, per row, follow the dataset's classes: ``C = 1``
    (``('building',)``, the binary sigmoid head): ``[building]``;
    ``C = 2`` (``('background', 'building')``, a softmax head on the 0/1
    map): ``[background, building]``.

    The cache fingerprint covers the counter settings, the stamp (path, size,
    mtime) of every CSV and, per row, its line, image path and size; a
    row without a known size also adds its image's stamp.

    Args:
        num_classes (int, optional): 1 or 2; None: the dataset's number of
            classes. Defaults to None.
        ignore_index (int): Unused (RLE masks have no ignored pixels); kept
            for the :class:`PixelCounter` interface. Defaults to 255.
        rle_key (str): Data-info key of the RLE string.
            Defaults to ``'mask_rle'``.

    Examples:
        >>> counter = TASK_UTILS.build(dict(type='RLEPixelCounter'))
        >>> counter.setup(dataset)
        >>> sum(counter.count(item) for item in counter.items(dataset))
        array([5432109])
    """
    # Parsing is quick and holds the GIL briefly; threads avoid pickling
    # the strings to worker processes.
    parallel_backend = 'thread'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255,
                 rle_key: str = 'mask_rle') -> None:
        super().__init__(num_classes=num_classes, ignore_index=ignore_index)
        self.rle_key = rle_key
        self._check_num_classes()

    def _check_num_classes(self) -> None:
        if self.num_classes not in (None, 1, 2):
            raise ValueError(
                '`num_classes` should be 1 (building) or 2 (background, '
                f'building) for binary RLE masks, but got {self.num_classes}')

    def setup(self, dataset) -> None:
        super().setup(dataset)
        self._check_num_classes()

    def settings(self) -> Dict[str, Any]:
        settings = super().settings()
        settings.update(rle_key=self.rle_key)
        return settings

    def items(self, dataset) -> List[tuple]:
        """``(csv_path, csv_line, rle, height, width, img_path)`` per row.

        ``height``/``width`` are None when the data info has no size.
        """
        items = []
        for i, info in enumerate(iter_data_infos(dataset)):
            if info.get(self.rle_key) is None:
                raise ValueError(
                    f'data info {i} of {type(dataset).__name__} should have '
                    f'an RLE string `{self.rle_key}`, but has keys '
                    f'{sorted(info)} (a test CSV without masks?)')
            items.append((info.get('csv_path'), info.get('csv_line'),
                          info[self.rle_key], info.get('height'),
                          info.get('width'), info['img_path']))
        return items

    def fingerprint(self, items: Sequence[tuple]) -> str:
        csvs = sorted({item[0] for item in items if item[0] is not None})
        stamps = [file_stamp(p) for p in csvs]
        for csv_path, line, rle, height, width, img_path in items:
            if height is None or width is None:
                stamps.append((line, file_stamp(img_path)))
            else:
                stamps.append((line, img_path, height, width))
            if csv_path is None:  # no file to stamp: hash the string
                stamps.append(hashlib.sha1(rle.encode()).hexdigest())
        return hash_items(self.settings(), stamps)

    def count(self, item: tuple) -> np.ndarray:
        csv_path, line, rle, height, width, img_path = item
        if height is None or width is None:
            height, width = read_image_size(img_path)
        size = int(height) * int(width)
        try:
            fg = rle_area(rle if rle not in ('-1', ) else '', size)
        except ValueError as e:
            where = f'{csv_path}, line {line}' if csv_path else img_path
            raise ValueError(f'{where}: bad `{self.rle_key}` for the '
                             f'{height}x{width} image: {e}') from None
        if self.num_classes == 1:
            return np.array([fg], dtype=np.int64)
        return np.array([size - fg, fg], dtype=np.int64)


__all__ = ['RLEPixelCounter', 'read_image_size']
