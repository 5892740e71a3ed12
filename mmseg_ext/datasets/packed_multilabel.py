# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Generic dataset of images and packed multi-label PNGs."""
from typing import List

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

__all__ = ['PackedMultiLabelDataset']


@DATASETS.register_module()
class PackedMultiLabelDataset(BaseSegDataset):
    """Images and packed multi-label PNGs in MMSeg's folder layout.

    ``img_dir/{split}/x{img_suffix}`` pairs with
    ``ann_dir/{split}/x{seg_map_suffix}``, a 16-bit PNG written by
    :func:`mmseg_ext.utils.write_packed_label` (class ``k`` is bit
    ``k % 16`` of channel ``k // 16``; see :mod:`mmseg_ext.utils.multilabel`).
    The classes come from ``metainfo=dict(classes=...)`` (or a subclass's
    ``METAINFO``); every data info gets ``num_classes`` for
    :class:`LoadMultiLabelAnnotations`. :meth:`get_pixel_counter` names the
    ``PackedLabelPixelCounter`` that :class:`ClassWeightHook` uses to count
    positive pixels per class.

    Args:
        img_suffix (str): Defaults to ``'.png'``.
        seg_map_suffix (str): Defaults to ``'.png'``.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``data_prefix``, ``metainfo``, ``pipeline``,
            ``ann_file``...). ``reduce_zero_label`` must stay False.

    Raises:
        ValueError: without ``classes``, or with ``reduce_zero_label``.

    Examples:
        >>> dataset = dict(
        ...     type='PackedMultiLabelDataset', data_root='data/x',
        ...     metainfo=dict(classes=('a', 'b', 'c')),
        ...     data_prefix=dict(img_path='img_dir/train',
        ...                      seg_map_path='ann_dir/train'),
        ...     pipeline=[dict(type='LoadImageFromFile'),
        ...               dict(type='LoadMultiLabelAnnotations'),
        ...               dict(type='PackMultiLabelSegInputs')])
    """

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        if reduce_zero_label:
            raise ValueError('`reduce_zero_label` should be False for packed '
                             'multi-label labels (there is no background '
                             'class to drop), but got True')
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=False,
            **kwargs)

    @property
    def num_classes(self) -> int:
        """``C = len(metainfo['classes'])``."""
        classes = self._metainfo.get('classes')
        if not classes:
            raise ValueError(
                f'{type(self).__name__} should be given '
                '`metainfo=dict(classes=[...])`, but has no classes')
        return len(classes)

    def load_data_list(self) -> List[dict]:
        """MMSeg's listing, plus ``num_classes`` in every data info."""
        num_classes = self.num_classes
        data_list = super().load_data_list()
        for info in data_list:
            info['num_classes'] = num_classes
        return data_list

    def get_pixel_counter(self) -> dict:
        """``TASK_UTILS`` config of the packed-label pixel counter."""
        return dict(type='PackedLabelPixelCounter')
