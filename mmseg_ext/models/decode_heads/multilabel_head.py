# Copyright (c) mmseg_ext contributors. All rights reserved.
"""A wrapper turning any MMSeg decode head into a multi-label (sigmoid) head.
"""
import copy
from numbers import Number
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, SampleList
from torch import Tensor

from mmseg_ext.utils.dice import dice_from_counts

from .deep_supervision import deep_supervision_losses

__all__ = ['MultiLabelHead', 'multilabel_dice']

DEFAULT_LOSSES = (dict(type='MultiLabelBCELoss', loss_weight=1.0),
                  dict(type='SoftDiceLoss', mode='multilabel',
                       loss_weight=1.0))


def multilabel_dice(seg_logits: Tensor,
                    target: Tensor,
                    threshold: float = 0.5,
                    ignore_index: Optional[int] = 255,
                    eps: float = 1e-4) -> Tensor:
    """Mean over classes of the batch Dice of thresholded sigmoid outputs.

    Per class ``c``: ``(2 |X_c & Y_c| + eps) / (|X_c| + |Y_c| + eps)`` with
    ``X_c = sigmoid(logit) > threshold`` and ``Y_c = target == 1``, both
    summed over the non-ignored pixels of the whole batch (a class absent
    from both gives 1). A training-log quantity, no gradient.

    Args:
        seg_logits (Tensor): ``(N, C, H, W)`` logits.
        target (Tensor): ``(N, C, H, W)`` targets in ``{0, 1,
            ignore_index}``.
        threshold (float): Probability threshold. Defaults to 0.5.
        ignore_index (int | None): Ignored target value. Defaults to 255.
        eps (float): Smoothing. Defaults to 1e-4.

    Returns:
        Tensor: Scalar in ``[0, 1]``.
    """
    with torch.no_grad():
        valid = torch.ones_like(target, dtype=torch.bool) \
            if ignore_index is None else target != ignore_index
        pred = (seg_logits.detach().float().sigmoid() > threshold) & valid
        gt = (target == 1) & valid
        dims = (0, 2, 3)
        return dice_from_counts((pred & gt).sum(dims).float(),
                                pred.sum(dims).float(),
                                gt.sum(dims).float(), eps).mean()


@MODELS.register_module()
class MultiLabelHead(BaseModule):
    """Multi-label (one sigmoid per class) wrapper of any MMSeg decode head.

    The inner ``head`` (``UPerHead``, ``SegformerHead``, ``FCNHead`` ...) is
    built with ``out_channels = num_classes`` and produces ``(N, C, h, w)``
    logits; each class is an independent binary map (classes may overlap).
    Training targets are ``(N, C, H, W)`` uint8 in ``{0, 1, ignore_index}``
    (unpacked by :class:`MultiLabelSegDataPreProcessor`). ``loss_by_feat``
    resizes the logits to the target size (bilinear, the inner head's
    ``align_corners``) and calls every loss in MMSeg's style,
    ``loss(seg_logits, seg_label, weight=None, ignore_index=ignore_index)``
    (losses with the same ``loss_name`` are summed), and logs ``dice_seg``
    (:func:`multilabel_dice` at ``threshold``, ignored pixels excluded)
    instead of ``acc_seg``. ``num_classes=1`` is the binary head.

    An inner head with deep supervision (:class:`UNetPlusPlusHead`,
    :class:`UNet3PlusHead`) returns ``[main, aux_1, ...]`` in training; each
    auxiliary output gets the same losses, as ``aux{i}_loss_*`` times the
    inner head's ``deep_supervision_weights``. Samples with ``gt_dist_map``
    (:class:`GenerateDistanceMaps`) have it passed as ``dist_map`` to the
    losses with ``uses_dist_map`` (:class:`DistanceBoundaryLoss`).

    Usable as ``decode_head`` and as ``auxiliary_head`` (alone or in a list)
    of MMSeg's ``EncoderDecoder``; the inference sigmoid and thresholding
    live in :class:`MultiLabelEncoderDecoder`. It exposes what MMSeg's
    segmentors and :class:`ClassWeightHook` read: ``num_classes``,
    ``out_channels``, ``align_corners``, ``threshold``, ``ignore_index``,
    ``loss_decode``. The inner head's own ``loss_decode`` is left empty
    (pixel ``sampler`` s are not supported).

    Args:
        head (dict): Config of the inner decode head; ``num_classes`` may be
            given here or as ``num_classes``. Its ``loss_decode``,
            ``out_channels`` and ``threshold`` are set by this wrapper.
        num_classes (int, optional): ``C``. Defaults to None (the inner
            head's ``num_classes``).
        loss_decode (dict | list[dict]): Losses taking ``(N, C, H, W)``
            logits and targets. Defaults to ``MultiLabelBCELoss`` +
            ``SoftDiceLoss(mode='multilabel')``.
        threshold (float): Probability threshold of the logged Dice and the
            segmentor's default. Defaults to 0.5.
        ignore_index (int | None): Ignored target value passed to the
            losses. Defaults to 255.
        init_cfg (dict, optional): Initialisation config. Defaults to None
            (the inner head's own ``init_cfg`` applies).

    Returns:
        ``forward`` returns ``(N, C, h, w)`` logits; ``predict`` returns
        them resized to the (padded) input size, as MMSeg's heads.

    Raises:
        ValueError: on a missing or mismatching ``num_classes``, a
            threshold outside ``(0, 1)``, a ``head`` config that is not a
            dict, a ``sampler``; at loss time, on targets that are not
            ``(N, C, H, W)`` uint8.

    Examples:
        >>> decode_head = dict(
        ...     type='MultiLabelHead',
        ...     head=dict(type='UPerHead', in_channels=[96, 192, 384, 768],
        ...               in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
        ...               channels=512, num_classes=29),
        ...     loss_decode=[
        ...         dict(type='MultiLabelBCELoss', loss_weight=1.0),
        ...         dict(type='SoftDiceLoss', mode='multilabel',
        ...              loss_weight=1.0)],
        ...     threshold=0.5)
    """

    def __init__(self,
                 head: ConfigType,
                 num_classes: Optional[int] = None,
                 loss_decode: Union[Dict, Sequence[Dict]] = DEFAULT_LOSSES,
                 threshold: float = 0.5,
                 ignore_index: Optional[int] = 255,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(head, dict) or 'type' not in head:
            raise ValueError('`head` should be the config dict of a decode '
                             f'head (with `type`), but got {head!r}')
        head = copy.deepcopy(head)
        inner_classes = head.get('num_classes')
        if num_classes is None:
            num_classes = inner_classes
        elif inner_classes is not None and inner_classes != num_classes:
            raise ValueError(
                f'`num_classes` should match head.num_classes='
                f'{inner_classes}, but got {num_classes}')
        if isinstance(num_classes, bool) or not isinstance(
                num_classes, int) or num_classes < 1:
            raise ValueError('`num_classes` should be a positive int (here or'
                             f' in `head`), but got {num_classes!r}')
        if isinstance(threshold, bool) or not isinstance(
                threshold, Number) or not 0 < threshold < 1:
            raise ValueError('`threshold` should be a probability in (0, 1),'
                             f' but got {threshold!r}')
        if head.get('sampler') is not None:
            raise ValueError('`head.sampler` should be None (pixel samplers '
                             'need class-index labels), but got '
                             f'{head["sampler"]!r}')
        head.update(
            num_classes=num_classes,
            out_channels=num_classes,
            threshold=float(threshold),
            loss_decode=[])
        self.head = MODELS.build(head)
        self.num_classes = num_classes
        self.out_channels = num_classes
        self.threshold = float(threshold)
        self.ignore_index = ignore_index
        self.align_corners = getattr(self.head, 'align_corners', False)

        if isinstance(loss_decode, dict):
            self.loss_decode = MODELS.build(loss_decode)
        elif isinstance(loss_decode, (list, tuple)) and loss_decode:
            self.loss_decode = nn.ModuleList(
                [MODELS.build(cfg) for cfg in loss_decode])
        else:
            raise ValueError('`loss_decode` should be a loss config dict or '
                             f'a non-empty list of them, but got '
                             f'{loss_decode!r}')

    @property
    def losses(self) -> List[nn.Module]:
        """The losses as a list."""
        if isinstance(self.loss_decode, nn.ModuleList):
            return list(self.loss_decode)
        return [self.loss_decode]

    def forward(self, inputs: Union[Tuple[Tensor], List[Tensor]]) -> Tensor:
        """``(N, C, h, w)`` logits of the inner head."""
        return self.head(inputs)

    def loss(self, inputs: Tuple[Tensor], batch_data_samples: SampleList,
             train_cfg: ConfigType = None) -> Dict[str, Tensor]:
        """Forward and :meth:`loss_by_feat`."""
        return self.loss_by_feat(self.forward(inputs), batch_data_samples)

    def predict(self, inputs: Tuple[Tensor], batch_img_metas: List[dict],
                test_cfg: ConfigType = None) -> Tensor:
        """Forward and :meth:`predict_by_feat`: logits at the input size."""
        return self.predict_by_feat(self.forward(inputs), batch_img_metas)

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """Resize logits to the (padded) input size, as the inner head."""
        return self.head.predict_by_feat(seg_logits, batch_img_metas)

    def stack_targets(self, batch_data_samples: SampleList) -> Tensor:
        """``(N, C, H, W)`` uint8 targets of the batch, checked."""
        targets = []
        for i, sample in enumerate(batch_data_samples):
            gt = sample.gt_sem_seg.data
            if gt.dtype != torch.uint8 or gt.dim() != 3 or \
                    gt.shape[0] != self.num_classes:
                raise ValueError(
                    f'`gt_sem_seg` of sample {i} should be unpacked uint8 of '
                    f'shape ({self.num_classes}, H, W) for MultiLabelHead, '
                    f'but got {gt.dtype} {tuple(gt.shape)}; use '
                    'MultiLabelSegDataPreProcessor with packed labels')
            targets.append(gt)
        return torch.stack(targets)

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Losses and ``dice_seg`` of ``(N, C, h, w)`` logits.

        Args:
            seg_logits (Tensor | list[Tensor]): ``(N, C, h, w)`` logits,
                or ``[main, aux_1, ...]`` of an inner head with deep
                supervision (``aux{i}_`` losses, times the inner head's
                ``deep_supervision_weights``).
            batch_data_samples (list[SegDataSample]): With unpacked
                ``(C, H, W)`` uint8 ``gt_sem_seg``.

        Returns:
            dict[str, Tensor]: One entry per ``loss_name`` and ``dice_seg``.
        """
        seg_label = self.stack_targets(batch_data_samples)
        dist_map = self.stack_dist_maps(batch_data_samples, seg_label)
        # an inner head with deep supervision returns [main, aux...] in
        # training (see deep_supervision.py): aux{i}_loss_* are added
        return deep_supervision_losses(
            lambda logits: self._loss_single(logits, seg_label, dist_map),
            seg_logits, getattr(self.head, 'deep_supervision_weights', None))

    @staticmethod
    def stack_dist_maps(batch_data_samples: SampleList,
                        seg_label: Tensor) -> Optional[Tensor]:
        """``(N, C, H, W)`` ``gt_dist_map`` of the batch (0 on the padding
        ``stack_batch`` added to the targets), or None if a sample has
        none (see :class:`GenerateDistanceMaps`)."""
        if not all('gt_dist_map' in s for s in batch_data_samples):
            return None
        h, w = seg_label.shape[2:]
        maps = []
        for sample in batch_data_samples:
            dist = sample.gt_dist_map.data.to(seg_label.device)
            # stack_batch pads targets at the right and bottom
            dist = F.pad(dist, (0, w - dist.shape[-1], 0, h - dist.shape[-2]))
            maps.append(dist)
        return torch.stack(maps)

    def _loss_single(self, seg_logits: Tensor, seg_label: Tensor,
                     dist_map: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Losses and ``dice_seg`` of one ``(N, C, h, w)`` logits tensor;
        losses with ``uses_dist_map`` also get ``dist_map``."""
        seg_logits = resize(
            input=seg_logits,
            size=seg_label.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        loss = dict()
        for loss_decode in self.losses:
            extra = dict(dist_map=dist_map) if dist_map is not None and \
                getattr(loss_decode, 'uses_dist_map', False) else {}
            value = loss_decode(
                seg_logits,
                seg_label,
                weight=None,
                ignore_index=self.ignore_index,
                **extra)
            name = loss_decode.loss_name
            loss[name] = loss[name] + value if name in loss else value
        loss['dice_seg'] = multilabel_dice(
            seg_logits,
            seg_label,
            threshold=self.threshold,
            ignore_index=self.ignore_index)
        return loss

    def extra_repr(self) -> str:
        """Extra repr."""
        return (f'num_classes={self.num_classes}, threshold='
                f'{self.threshold}, ignore_index={self.ignore_index}, '
                f'align_corners={self.align_corners}')
