# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Signed distance maps of the ground truth, computed in the pipeline.

For :class:`~mmseg_ext.models.losses.DistanceBoundaryLoss`. Computing them
here, after the crop and the geometric augmentations, costs the data
loader's workers (in parallel with the model's step) instead of the
training loop, on the crop only; MMSeg's ``HuasdorffDisstanceLoss``
computes its maps per batch on the host, inside the step.
"""
from numbers import Number
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from mmseg_ext.utils.distance_maps import packed_signed_distance_maps
from mmseg_ext.utils.multilabel import num_packed_channels

__all__ = ['GenerateDistanceMaps']


@TRANSFORMS.register_module()
class GenerateDistanceMaps(BaseTransform):
    """Signed distance map of each class of a packed ``gt_seg_map``.

    The maps of :func:`mmseg_ext.utils.distance_maps.signed_distance_maps`
    (Kervadec et al., 2019: negative inside, 0 on the inner boundary,
    positive outside; 0 on ignored pixels and for a class that is absent or
    fills the crop). Put it after every geometric transform (crop, flip,
    rotation, Albu), right before the packing transform;
    :class:`PackMultiLabelSegInputs` packs the result as
    ``data_sample.gt_dist_map`` and :class:`MultiLabelHead` hands it to the
    losses that take one. (Softmax heads: MMSeg's decode heads pass no
    extra targets to their losses, so the loss computes the maps of its
    class-index labels itself.)

    Required Keys:

    - gt_seg_map (np.ndarray): the packed ``(H, W, K)`` uint16 map
      (``(H, W)`` for ``K = 1``, a zero third channel for ``K = 2``).
    - num_classes (int, optional): used when the transform has none.

    Added Keys:

    - gt_dist_map (np.ndarray): ``(C, H, W)`` float16.

    Args:
        num_classes (int, optional): ``C``. Defaults to None (from
            ``results['num_classes']``, which ``LoadMultiLabelAnnotations``
            sets).
        max_distance (float, optional): Clip the distances to
            ``[-max_distance, max_distance]``, which also makes them much
            cheaper (see :mod:`mmseg_ext.utils.distance_maps`). Defaults
            to None (exact).

    Raises:
        ValueError: On a bad argument, an unknown ``C``, a map of the
            wrong shape or dtype.

    Examples:
        >>> train_pipeline = [
        ...     dict(type='LoadImageFromFile'),
        ...     dict(type='LoadMultiLabelAnnotations'),
        ...     dict(type='RandomCrop', crop_size=(1024, 1024)),
        ...     dict(type='RandomFlip', prob=0.5),
        ...     dict(type='GenerateDistanceMaps', max_distance=32),
        ...     dict(type='PackMultiLabelSegInputs')]
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 max_distance: Optional[float] = None) -> None:
        if num_classes is not None and (isinstance(num_classes, bool)
                                        or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError('`num_classes` should be None or a positive '
                             f'int, but got {num_classes!r}')
        if max_distance is not None and (
                isinstance(max_distance, bool)
                or not isinstance(max_distance, Number)
                or not 0 < max_distance < float('inf')):
            raise ValueError('`max_distance` should be None or a finite '
                             f'number > 0, but got {max_distance!r}')
        self.num_classes = num_classes
        self.max_distance = None if max_distance is None else \
            float(max_distance)

    def _num_classes(self, results: dict) -> int:
        num = self.num_classes or results.get('num_classes')
        if num is None:
            raise ValueError(
                '`num_classes` should be given to GenerateDistanceMaps or be '
                'in the results (LoadMultiLabelAnnotations puts it there), '
                f"but got none for {results.get('seg_map_path')!r}")
        return int(num)

    def transform(self, results: dict) -> dict:
        """Add ``gt_dist_map``; see the class docstring."""
        gt = np.asarray(results['gt_seg_map'])
        num = self._num_classes(results)
        k = num_packed_channels(num)
        if gt.dtype != np.uint16 or gt.ndim not in (2, 3) or (
                gt.ndim == 3 and gt.shape[-1] < k) or (gt.ndim == 2
                                                       and k != 1):
            raise ValueError(
                'GenerateDistanceMaps needs a packed (H, W, K='
                f'{k}) uint16 map of C={num} classes, but got {gt.shape} '
                f"{gt.dtype} for {results.get('seg_map_path')!r}")
        results['gt_dist_map'] = packed_signed_distance_maps(
            gt, num, self.max_distance)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'max_distance={self.max_distance})')
