# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Write the hand-bone competition's submission CSV from predictions.

The CSV has the header ``image_name,class,rle`` and one row per (image,
class): images sorted by file name (``image1661130828152_R.png``), classes in
the dataset's order (``finger-1`` ... ``Ulna``), ``rle`` in the
competition's run-length format (1-indexed ``start length`` pairs over the
row-major mask at the image's original size; an empty mask is an empty
field), so ``images x 29`` rows.
"""
import csv
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS

from mmseg_ext.datasets.hand_bone import HAND_BONE_CLASSES
from mmseg_ext.utils.io import atomic_path
from mmseg_ext.utils.multilabel import pack_multilabel, write_packed_label
from mmseg_ext.utils.rle import rle_encode

__all__ = [
    'HandBoneSubmissionMetric', 'encode_multilabel_masks',
    'write_hand_bone_csv', 'write_submission_csv', 'read_submission_csv'
]

SUBMISSION_HEADER = ('image_name', 'class', 'rle')


def encode_multilabel_masks(masks: np.ndarray) -> List[str]:
    """RLE of each class of a ``(C, H, W)`` binary mask stack.

    Args:
        masks (np.ndarray): ``(C, H, W)`` masks; nonzero is foreground.

    Returns:
        list[str]: ``C`` competition RLE strings (``''`` for empty).
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError('`masks` should have shape (C, H, W), but got '
                         f'{masks.shape}')
    if masks.dtype != np.bool_:
        masks = masks != 0
    return [rle_encode(m) for m in masks]


def write_hand_bone_csv(path: str,
                        records: Iterable[Tuple[str, Sequence[str]]],
                        classes: Sequence[str] = HAND_BONE_CLASSES) -> int:
    """Write ``image_name,class,rle`` rows atomically, sorted by image.

    Args:
        path (str): Output CSV.
        records (Iterable[tuple[str, Sequence[str]]]): ``(image_name,
            rles)`` with one RLE per class, in ``classes`` order.
        classes (Sequence[str]): Class names. Defaults to the 29 classes.

    Returns:
        int: Number of rows written (without the header).

    Raises:
        ValueError: if an image appears twice or has a wrong number of RLEs.
    """
    by_name: Dict[str, Sequence[str]] = {}
    for name, rles in records:
        if name in by_name:
            raise ValueError(f'image {name!r} has two predictions; image '
                             'names should be unique in a submission')
        if len(rles) != len(classes):
            raise ValueError(f'image {name!r} should have {len(classes)} '
                             f'RLEs (one per class), but got {len(rles)}')
        by_name[name] = rles
    rows = 0
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8', newline='') as f:
            writer = csv.writer(f, lineterminator='\n')
            writer.writerow(SUBMISSION_HEADER)
            for name in sorted(by_name):
                for cls, rle in zip(classes, by_name[name]):
                    writer.writerow((name, cls, rle))
                    rows += 1
    return rows


#: The old name, kept for existing callers. New code says
#: ``write_hand_bone_csv``: the building metric has another function of
#: this name (``building_dice_metric.write_submission_csv``).
write_submission_csv = write_hand_bone_csv


def read_submission_csv(path: str) -> List[Tuple[str, str, str]]:
    """Rows ``(image_name, class, rle)`` of a submission CSV, in file order.

    Raises:
        ValueError: naming the file and line for a bad header or row.
    """
    with open(path, encoding='utf-8', newline='') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if tuple(header or ()) != SUBMISSION_HEADER:
            raise ValueError(f'{path}: the header should be '
                             f'{",".join(SUBMISSION_HEADER)}, but got '
                             f'{header!r}')
        rows = []
        for line, row in enumerate(reader, start=2):
            if len(row) != 3:
                raise ValueError(f'{path}:{line}: a row should have 3 fields '
                                 f'(image_name,class,rle), but got {row!r}')
            rows.append(tuple(row))
    return rows


@METRICS.register_module()
class HandBoneSubmissionMetric(BaseMetric):
    """Write the hand-bone submission CSV instead of computing a score.

    ``process`` RLE-encodes each image's ``pred_sem_seg.data``, the
    ``(C, H, W)`` binary masks of the multi-label segmentor at the original
    image size, into ``C`` compact strings keyed by the image's file name
    (so every rank keeps strings, not masks). ``compute_metrics`` runs on
    rank 0 after mmengine gathered the results of every rank, so a
    distributed test writes one CSV: ``image_name,class,rle`` for every
    (image, class), images sorted by name, classes in order, written
    atomically. Use it as the test evaluator (``tools/hand_bone_submission.py``
    does so).

    Args:
        output_file (str): The CSV to write.
        classes (Sequence[str], optional): Class names in channel order;
            None for the dataset's ``metainfo['classes']`` (the 29 hand-bone
            classes if there is none). Defaults to None.
        pred_dir (str, optional): Also write each prediction as a packed
            label PNG ``{pred_dir}/{image_name}``
            (:func:`~mmseg_ext.utils.multilabel.write_packed_label`), which
            ``tools/hand_bone_submission.py --pred-dir`` turns into a CSV
            again. Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the returned keys.
            Defaults to None (``'submission'``).

    Returns:
        From ``compute_metrics``: ``{'num_images': N, 'num_rows': N * C}``.

    Raises:
        ValueError: if a prediction is not ``(C, H, W)`` at the image's
            ``ori_shape`` with ``C = len(classes)``, or an image name
            repeats.

    Examples:
        >>> test_evaluator = dict(type='HandBoneSubmissionMetric',
        ...                       output_file='work_dirs/submission.csv')
    """
    default_prefix = 'submission'

    def __init__(self,
                 output_file: str,
                 classes: Optional[Sequence[str]] = None,
                 pred_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        if not isinstance(output_file, str) or not output_file:
            raise ValueError('`output_file` should be a CSV path, but got '
                             f'{output_file!r}')
        if classes is not None and (isinstance(classes, str) or
                                    len(classes) == 0):
            raise ValueError('`classes` should be a non-empty sequence of '
                             f'class names or None, but got {classes!r}')
        super().__init__(
            collect_device=collect_device, prefix=prefix, **kwargs)
        self.output_file = output_file
        self.classes = None if classes is None else tuple(classes)
        self.pred_dir = pred_dir

    def _classes(self) -> Tuple[str, ...]:
        if self.classes is not None:
            return self.classes
        meta = self.dataset_meta or {}
        return tuple(meta.get('classes') or HAND_BONE_CLASSES)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """RLE-encode each sample's ``(C, H, W)`` predicted masks."""
        classes = self._classes()
        for sample in data_samples:
            name = osp.basename(sample['img_path'])
            masks = sample['pred_sem_seg']['data']
            if hasattr(masks, 'cpu'):
                masks = masks.cpu().numpy()
            masks = np.asarray(masks)
            ori_shape = tuple(sample.get('ori_shape', masks.shape[-2:]))[:2]
            if masks.ndim != 3 or masks.shape[0] != len(classes) or \
                    masks.shape[1:] != ori_shape:
                raise ValueError(
                    f'`pred_sem_seg.data` of {name} should be (C, H, W) = '
                    f'({len(classes)}, {ori_shape[0]}, {ori_shape[1]}) binary '
                    f'masks at the original image size, but got '
                    f'{masks.shape}; use the multi-label segmentor '
                    '(MultiLabelEncoderDecoder), which predicts one mask per '
                    'class at the original size')
            masks = masks != 0
            if self.pred_dir is not None:
                write_packed_label(
                    osp.join(self.pred_dir, name), pack_multilabel(masks))
            self.results.append((name, encode_multilabel_masks(masks)))

    def compute_metrics(self, results: list) -> Dict[str, int]:
        """Write the CSV (rank 0, every rank's results gathered)."""
        classes = self._classes()
        rows = write_hand_bone_csv(self.output_file, results, classes)
        print_log(
            f'submission with {len(results)} images x {len(classes)} '
            f'classes written to {self.output_file}', logger='current')
        return dict(num_images=len(results), num_rows=rows)
