# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Data preprocessor that unpacks packed multi-label targets on the device."""
from collections import defaultdict
from numbers import Number
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS

from mmseg_ext.utils.multilabel import (VALID_BIT, as_unpacked, is_packed,
                                        num_packed_channels,
                                        pipeline_channels)

__all__ = ['MultiLabelSegDataPreProcessor']


@MODELS.register_module()
class MultiLabelSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that unpacks multi-label targets.

    Normalises, pads and stacks exactly as MMSeg's ``SegDataPreProcessor``
    (the packed ``(K, H, W)`` int16 targets of
    :class:`PackMultiLabelSegInputs` are padded with ``seg_pad_val``; since
    0 and 255 leave the valid bit clear, padded pixels are *ignored*). Then,
    on the model's device, in training **and** in val/test (so metrics see
    unpacked targets), every ``data_sample.gt_sem_seg.data`` becomes a
    ``(C, H, W)`` uint8 tensor in ``{0, 1, ignore_index}``
    (:func:`mmseg_ext.utils.unpack_multilabel_torch`; samples of one size
    are unpacked together).

    Which targets are accepted (the dtype tells them apart):

    - int16 ``(K, H, W)``: packed (from :class:`PackMultiLabelSegInputs`);
      unpacked. ``(3, H, W)`` for ``K = 2`` (the pipeline's zero channel)
      is accepted too.
    - uint8 ``(C, H, W)``: already unpacked (a second call, or data built
      by hand); left as is, so unpacking is idempotent. In training, their
      ``seg_pad_val`` padding (if it is not ``ignore_index``) is set to
      ``ignore_index``.
    - anything else (e.g. int64 from MMSeg's ``PackSegInputs``): an error.

    Args:
        num_classes (int): ``C``, the number of classes.
        ignore_index (int): Value of ignored class-pixels in the unpacked
            targets; set the same on the head and metric. Defaults to 255.
        seg_pad_val (int): Padding of the packed targets; must leave bit 15
            clear (``0 <= seg_pad_val < 32768``), so padding is ignored.
            Defaults to 255.
        **kwargs: The other arguments of ``SegDataPreProcessor`` (``mean``,
            ``std``, ``size``, ``size_divisor``, ``pad_val``,
            ``bgr_to_rgb``, ``test_cfg`` ...).

    Raises:
        ValueError: on a bad ``num_classes``, ``ignore_index`` or
            ``seg_pad_val``; at forward on targets of another dtype or
            channel count.

    Examples:
        >>> data_preprocessor = dict(
        ...     type='MultiLabelSegDataPreProcessor', num_classes=29,
        ...     mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        ...     bgr_to_rgb=True, size=(512, 512))
    """

    def __init__(self,
                 num_classes: int,
                 ignore_index: int = 255,
                 seg_pad_val: Number = 255,
                 **kwargs) -> None:
        if isinstance(num_classes, bool) or not isinstance(
                num_classes, int) or num_classes < 1:
            raise ValueError('`num_classes` should be a positive int, but '
                             f'got {num_classes!r}')
        if isinstance(ignore_index, bool) or not isinstance(
                ignore_index, int) or not 0 <= ignore_index <= 255:
            raise ValueError('`ignore_index` should be an int in [0, 255] '
                             '(targets are uint8), but got '
                             f'{ignore_index!r}')
        if ignore_index in (0, 1):
            raise ValueError('`ignore_index` should not be 0 or 1 (target '
                             f'values), but got {ignore_index}')
        if isinstance(seg_pad_val, bool) or not isinstance(
                seg_pad_val, int) or not 0 <= seg_pad_val < (1 << VALID_BIT):
            raise ValueError(
                '`seg_pad_val` should be an int in [0, 32767] (bit 15, the '
                'valid bit, clear, so padding reads as ignored), but got '
                f'{seg_pad_val!r}')
        super().__init__(seg_pad_val=seg_pad_val, **kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.num_packed_channels = num_packed_channels(num_classes)

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Preprocess as the parent, then unpack the targets."""
        data = super().forward(data, training)
        samples = data.get('data_samples')
        if samples:
            self.unpack_data_samples(samples, padded=training)
        return data

    def unpack_data_samples(self,
                            data_samples: Sequence,
                            padded: bool = False) -> Sequence:
        """Unpack the ``gt_sem_seg`` of ``data_samples`` in place.

        Args:
            data_samples (Sequence[SegDataSample]): Samples whose
                ``gt_sem_seg.data`` is packed ``(K, H, W)`` int16 or already
                unpacked ``(C, H, W)`` uint8 (left as is).
            padded (bool): The targets were just padded by ``stack_batch``
                (training), as ``padding_size`` in the metainfo says; the
                padding of unpacked uint8 targets is then set to
                ``ignore_index``. Defaults to False.

        Returns:
            Sequence[SegDataSample]: ``data_samples``.
        """
        groups: Dict[tuple, List[int]] = defaultdict(list)
        for i, sample in enumerate(data_samples):
            if 'gt_sem_seg' not in sample:
                continue
            gt = sample.gt_sem_seg.data
            if gt.dtype == torch.uint8:
                self._check_unpacked(gt, i)
                if padded:
                    self._ignore_padding(sample)
            elif is_packed(gt):
                k = self.num_packed_channels
                if gt.dim() != 3 or gt.shape[0] not in (
                        k, pipeline_channels(self.num_classes)):
                    raise ValueError(
                        f'packed `gt_sem_seg` of sample {i} should have shape'
                        f' ({k}, H, W) for num_classes={self.num_classes}, '
                        f'but got {tuple(gt.shape)}')
                groups[(tuple(gt.shape[1:]), gt.device)].append(i)
            else:
                raise ValueError(
                    f'`gt_sem_seg` of sample {i} should be packed int16 '
                    '(K, H, W) from PackMultiLabelSegInputs or unpacked '
                    f'uint8 (C, H, W), but got {gt.dtype} '
                    f'{tuple(gt.shape)}; use LoadMultiLabelAnnotations or '
                    'PackLabelRegions and PackMultiLabelSegInputs')
        for indices in groups.values():
            # [:K] drops the zero channel a K = 2 map has in the pipeline.
            packed = torch.stack([
                data_samples[i].gt_sem_seg.data[:self.num_packed_channels]
                for i in indices
            ])
            unpacked = as_unpacked(packed, self.num_classes,
                                   self.ignore_index)
            for i, target in zip(indices, unpacked):
                gt_sem_seg = data_samples[i].gt_sem_seg
                del gt_sem_seg.data
                gt_sem_seg.data = target
        return data_samples

    def _check_unpacked(self, gt: torch.Tensor, i: int) -> None:
        if gt.dim() != 3 or gt.shape[0] != self.num_classes:
            raise ValueError(
                f'unpacked uint8 `gt_sem_seg` of sample {i} should have shape'
                f' ({self.num_classes}, H, W), but got {tuple(gt.shape)}')

    def _ignore_padding(self, sample) -> None:
        """Mark ``seg_pad_val`` padding of an unpacked target as ignored."""
        if self.seg_pad_val == self.ignore_index:
            return
        padding: Optional[Sequence[int]] = sample.metainfo.get('padding_size')
        if not padding or not any(padding):
            return
        left, right, top, bottom = (int(p) for p in padding)
        gt = sample.gt_sem_seg.data
        h, w = gt.shape[-2:]
        if left:
            gt[..., :left] = self.ignore_index
        if right:
            gt[..., w - right:] = self.ignore_index
        if top:
            gt[..., :top, :] = self.ignore_index
        if bottom:
            gt[..., h - bottom:, :] = self.ignore_index
