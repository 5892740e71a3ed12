# Copyright (c) mmseg_ext contributors. All rights reserved.
"""MMSeg's ``IoUMetric`` that also writes per-class scores as JSON, and the
one reader of that JSON (also written by ``MultiLabelDiceMetric``)."""
import json
import math
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.io import dump_json_atomic

__all__ = [
    'PerClassIoUMetric', 'per_class_scores', 'read_per_class_json',
    'PerClassJSONError'
]


class PerClassJSONError(InputError):
    """A per-class JSON that cannot be read (names the file and field)."""


def read_per_class_json(path: str,
                        keys: Sequence[str] = ('dice', 'iou'),
                        require_classes: bool = False) -> dict:
    """Read a per-class JSON of ``MultiLabelDiceMetric`` /
    :class:`PerClassIoUMetric` (``{"classes", "dice", "iou", ...}``).

    Used by ``tools/ensemble.py --scores`` (classwise vote) and the k-fold
    out-of-fold tables, so both accept and reject the same files.

    Args:
        path (str): The JSON file.
        keys (Sequence[str]): Score lists to read. Defaults to
            ``('dice', 'iou')``.
        require_classes (bool): Whether the ``classes`` list must be there.
            Defaults to False.

    Returns:
        dict: ``classes`` (list of str, or None) and, per key, a ``(C,)``
        float64 array with NaN where the file has ``null`` (a class never
        seen).

    Raises:
        FileNotFoundError: if the file does not exist.
        PerClassJSONError: (a ``ValueError``) for invalid JSON, a missing
            field, lists of different lengths, or a value that is not a
            finite number or ``null`` (naming the file, field and class).

    Examples:
        >>> scores = read_per_class_json('work_dirs/x/val_scores.json')
        >>> scores['classes'], scores['dice']
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'per-class JSON {path!r} does not exist')
    with open(path, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise PerClassJSONError(
                path=path, reason=f'not valid JSON ({err})') from err
    fields = ([] if not require_classes else ['classes']) + list(keys)
    if not isinstance(data, dict):
        raise PerClassJSONError(
            path=path, value=data,
            expected=f'an object with {fields} lists (MultiLabelDiceMetric'
            '/PerClassIoUMetric per_class_json)')
    classes = data.get('classes')
    if classes is not None or require_classes:
        if not isinstance(classes, list):
            raise PerClassJSONError(
                path=path, where="field 'classes'", value=classes,
                expected=f'a list of class names (the file should hold '
                f'{fields} lists)')
        bad = [c for c in classes if not isinstance(c, str)]
        if bad:
            raise PerClassJSONError(
                path=path, where="field 'classes'", value=bad[0],
                expected='class names as JSON strings')
    out = dict(classes=classes)
    for key in keys:
        values = data.get(key)
        num = len(classes) if classes is not None else None
        if not isinstance(values, list) or (num is not None
                                            and len(values) != num):
            what = 'a list of numbers' if num is None else \
                f'a list of {num} numbers (one per class)'
            raise PerClassJSONError(
                path=path, where=f'field {key!r}', value=values,
                expected=f'{what}, null for an unseen class')
        row = np.full(len(values), np.nan)
        for c, v in enumerate(values):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                    not math.isfinite(v):
                name = classes[c] if classes is not None else c
                raise PerClassJSONError(
                    path=path, where=f'field {key!r}, class {name!r}',
                    value=v, expected='a finite number or null')
            row[c] = float(v)
        out[key] = row
    return out


def per_class_scores(area_intersect: np.ndarray,
                     area_pred: np.ndarray,
                     area_label: np.ndarray) -> tuple:
    """Dataset-level Dice and IoU per class from summed areas.

    ``Dice_c = 2 I_c / (P_c + L_c)`` and ``IoU_c = I_c / (P_c + L_c - I_c)``
    (MMSeg's definitions); NaN where the class is in neither prediction nor
    ground truth.

    Args:
        area_intersect (np.ndarray): ``(C,)`` summed intersections.
        area_pred (np.ndarray): ``(C,)`` summed predicted areas.
        area_label (np.ndarray): ``(C,)`` summed ground-truth areas.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(C,)`` float64 Dice and IoU.
    """
    inter = np.asarray(area_intersect, np.float64)
    total = np.asarray(area_pred, np.float64) + np.asarray(
        area_label, np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        dice = np.where(total > 0, 2 * inter / np.maximum(total, 1), np.nan)
        union = total - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return dice, iou


def _json_float(value: float) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """MMSeg's ``IoUMetric`` plus a per-class JSON for class-wise ensembling.

    Everything of :class:`mmseg.evaluation.IoUMetric` is unchanged (the
    logged table and the returned ``aAcc``/``mIoU``/... in percent).
    Additionally ``compute_metrics`` writes, atomically, the layout of
    :class:`MultiLabelDiceMetric`'s ``per_class_json``::

        {"classes": [...], "dice": [...], "iou": [...], "mDice": x,
         "mIoU": x, "num_images": N, "averaging": "dataset"}

    Values are **fractions in [0, 1]** (not percent). As in ``IoUMetric``
    the scores are dataset-level: areas are summed over the images, then
    ``Dice_c = 2 I_c / (P_c + L_c)``, ``IoU_c = I_c / (P_c + L_c - I_c)``;
    a class in neither prediction nor ground truth has ``null`` (NaN) and is
    left out of ``mDice``/``mIoU`` (``nanmean``; ``nan_to_num`` replaces
    it, as in ``IoUMetric``). ``tools/ensemble.py --scores`` reads these
    files (``null`` ranks last).

    Args:
        per_class_json (str, optional): Where to write the JSON. None writes
            nothing (plain ``IoUMetric``). Defaults to None.
        **kwargs: As :class:`mmseg.evaluation.IoUMetric` (``ignore_index``,
            ``iou_metrics``, ``nan_to_num``, ``output_dir``,
            ``format_only``, ...).

    Raises:
        ValueError: if ``per_class_json`` is not a non-empty string or None.

    Examples:
        >>> val_evaluator = dict(type='PerClassIoUMetric',
        ...                      iou_metrics=['mIoU', 'mDice'],
        ...                      per_class_json='work_dirs/x/val_scores.json')
    """

    def __init__(self, per_class_json: Optional[str] = None, **kwargs) -> None:
        if per_class_json is not None and (not isinstance(
                per_class_json, str) or not per_class_json):
            raise ValueError('`per_class_json` should be a JSON path or None, '
                             f'but got {per_class_json!r}')
        super().__init__(**kwargs)
        self.per_class_json = per_class_json

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """``IoUMetric``'s metrics; also writes ``per_class_json``."""
        metrics = super().compute_metrics(results)
        if self.per_class_json and not self.format_only:
            self.dump_per_class(results, self.per_class_json)
        return metrics

    def dump_per_class(self, results: List[tuple], path: str) -> dict:
        """Write (and return) the per-class JSON of ``results``.

        Args:
            results (list[tuple]): ``process`` results: per image
                ``(intersect, union, pred_area, label_area)`` ``(C,)``.
            path (str): Output path.

        Returns:
            dict: The JSON content.
        """
        if not results:
            raise ValueError('PerClassIoUMetric got no results to write to '
                             f'{path}')
        sums = [
            torch.stack([torch.as_tensor(r[i]) for r in results]).sum(0)
            .double().cpu().numpy() for i in (0, 2, 3)
        ]
        dice, iou = per_class_scores(*sums)
        if self.nan_to_num is not None:
            dice = np.nan_to_num(dice, nan=self.nan_to_num)
            iou = np.nan_to_num(iou, nan=self.nan_to_num)
        classes = list((self.dataset_meta or {}).get('classes') or [])
        if len(classes) != len(dice):
            classes = [str(c) for c in range(len(dice))]
        with warnings.catch_warnings():  # all-NaN: mean of empty slice
            warnings.simplefilter('ignore', RuntimeWarning)
            m_dice, m_iou = np.nanmean(dice), np.nanmean(iou)
        content = dict(
            classes=classes,
            dice=[_json_float(v) for v in dice],
            iou=[_json_float(v) for v in iou],
            mDice=_json_float(m_dice),
            mIoU=_json_float(m_iou),
            num_images=len(results),
            averaging='dataset')
        dump_json_atomic(content, path)
        return content
