# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Per-image, per-class Dice for multi-label segmentation."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable

from mmseg_ext.utils.dice import (dice_from_counts, image_counts,
                                  iou_from_counts)
from mmseg_ext.utils.io import dump_json_atomic
from mmseg_ext.utils.multilabel import as_unpacked

__all__ = ['MultiLabelDiceMetric', 'multilabel_counts', 'dice_iou_scores']


def multilabel_counts(pred: torch.Tensor,
                      gt: torch.Tensor,
                      ignore_index: Optional[int] = 255) -> np.ndarray:
    """Per-class counts of one image, computed on its device.

    Args:
        pred (Tensor): ``(C, H, W)`` binary masks (nonzero is positive).
        gt (Tensor): ``(C, H, W)`` targets in ``{0, 1, ignore_index}``.
        ignore_index (int | None): Ignored target value; those class-pixels
            count in neither ``X`` nor ``Y``. Defaults to 255.

    Returns:
        np.ndarray: ``(3, C)`` int64: ``|X & Y|``, ``|X|``, ``|Y|``.
    """
    if pred.shape != gt.shape or pred.dim() != 3:
        raise ValueError('`pred_sem_seg` and `gt_sem_seg` should both have '
                         f'shape (C, H, W), but got {tuple(pred.shape)} and '
                         f'{tuple(gt.shape)}')
    return image_counts(pred, gt, ignore_index)


def dice_iou_scores(counts: np.ndarray, eps: float = 1e-4) -> tuple:
    """Per-image, per-class Dice and IoU from :func:`multilabel_counts`.

    ``Dice = (2 |X & Y| + eps) / (|X| + |Y| + eps)`` and
    ``IoU = (|X & Y| + eps) / (|X | Y| + eps)``; both are 1 when ``X`` and
    ``Y`` are empty.

    Args:
        counts (np.ndarray): ``(N, 3, C)`` counts of ``N`` images.
        eps (float): Smoothing. Defaults to 1e-4.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(N, C)`` float64 Dice and IoU.
    """
    counts = np.asarray(counts, dtype=np.float64)
    inter, x, y = counts[:, 0], counts[:, 1], counts[:, 2]
    return (dice_from_counts(inter, x, y, eps, empty='one'),
            iou_from_counts(inter, x, y, eps, empty='one'))


@METRICS.register_module()
class MultiLabelDiceMetric(BaseMetric):
    """Mean per-image Dice of multi-label segmentation (competition metric).

    For image ``i`` and class ``c``, with ``X`` the predicted and ``Y`` the
    ground-truth pixels of the class (class-pixels equal to ``ignore_index``
    in the ground truth excluded from both):
    ``Dice_ic = (2 |X & Y| + eps) / (|X| + |Y| + eps)`` (1 when both are
    empty) and ``IoU_ic = (|X & Y| + eps) / (|X | Y| + eps)``. Scores are
    averaged over images per class, then over classes: ``mDice``,
    ``mIoU``. Values are fractions in ``[0, 1]`` (not percent).

    ``process`` computes the ``(3, C)`` counts on the device and keeps only
    them (memory does not grow with pixels); they are small picklable
    arrays, so mmengine's collection works in DDP. Ground truth may be
    unpacked ``(C, H, W)`` uint8 (from :class:`MultiLabelSegDataPreProcessor`)
    or still packed ``(K, H, W)`` int16 (unpacked here); predictions are
    ``(C, H, W)`` masks (``pred_sem_seg`` of
    :class:`MultiLabelEncoderDecoder`).

    Args:
        eps (float): Smoothing of Dice and IoU. Defaults to 1e-4.
        ignore_index (int | None): Ignored ground-truth value.
            Defaults to 255.
        per_class_json (str, optional): Also write the per-class scores as
            JSON to this path (atomically), e.g. for class-wise ensembling:
            ``{"classes", "dice", "iou", "mDice", "mIoU", "num_images",
            "eps"}``. Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names.
            Defaults to None.

    Returns:
        ``compute_metrics`` returns ``mDice``, ``mIoU`` and
        ``Dice.<class name>`` for each class.

    Raises:
        ValueError: on a bad ``eps``, or prediction and ground truth of
            different shapes.

    Examples:
        >>> val_evaluator = dict(type='MultiLabelDiceMetric',
        ...                      per_class_json='work_dirs/x/val_dice.json')
    """
    default_prefix: Optional[str] = None

    def __init__(self,
                 eps: float = 1e-4,
                 ignore_index: Optional[int] = 255,
                 per_class_json: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(
            collect_device=collect_device, prefix=prefix, **kwargs)
        if isinstance(eps, bool) or not isinstance(
                eps, (int, float)) or not eps > 0:
            raise ValueError(f'`eps` should be a number > 0, but got {eps!r}')
        self.eps = float(eps)
        self.ignore_index = ignore_index
        self.per_class_json = per_class_json

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store the ``(3, C)`` counts of each image."""
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data']
            gt = as_unpacked(sample['gt_sem_seg']['data'].to(pred.device),
                             pred.shape[0], self.ignore_index)
            self.results.append(
                multilabel_counts(pred, gt, self.ignore_index))

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        """Average over images per class, then over classes."""
        logger: MMLogger = MMLogger.get_current_instance()
        counts = np.stack(results)  # (N, 3, C)
        dice, iou = dice_iou_scores(counts, self.eps)
        class_dice, class_iou = dice.mean(0), iou.mean(0)
        num_classes = counts.shape[-1]
        names = list((self.dataset_meta or {}).get('classes') or [])
        if len(names) != num_classes:
            names = [str(c) for c in range(num_classes)]

        table = PrettyTable()
        table.add_column('Class', names)
        table.add_column('Dice', [f'{v:.4f}' for v in class_dice])
        table.add_column('IoU', [f'{v:.4f}' for v in class_iou])
        print_log(
            f'per class results ({len(counts)} images):\n' +
            table.get_string(),
            logger=logger)

        metrics = OrderedDict(
            mDice=float(class_dice.mean()), mIoU=float(class_iou.mean()))
        for name, value in zip(names, class_dice):
            metrics[f'Dice.{name}'] = float(value)
        if self.per_class_json:
            dump_json_atomic(
                dict(
                    classes=names,
                    dice=[float(v) for v in class_dice],
                    iou=[float(v) for v in class_iou],
                    mDice=metrics['mDice'],
                    mIoU=metrics['mIoU'],
                    num_images=int(len(counts)),
                    eps=self.eps), self.per_class_json)
        return dict(metrics)
