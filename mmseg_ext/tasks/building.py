# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The satellite building task: one building class, RLE CSV labels.

Submission: ``img_id,mask_rle`` in input order, ``-1`` for an empty mask.
Pseudo-labels: ``{out}/train.csv`` (``img_id,img_path,mask_rle``) and
``{out}/train_img/`` links, read by ``BuildingRLEDataset(data_root=OUT,
ann_file='train.csv', split='all')``; an RLE cannot carry ignored pixels, so
unsure pixels count as background.
"""
import csv
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from mmseg.registry import TASK_UTILS

from mmseg_ext.utils.io import atomic_path
from mmseg_ext.utils.rle import rle_encode
from .base import BaseSegTask

__all__ = ['BuildingTask']


@TASK_UTILS.register_module()
class BuildingTask(BaseSegTask):
    """Adapter of the building competition (``BuildingRLEDataset``).

    Predictions may have several channels: ``class_index`` picks the
    building one (default: channel 0 of threshold masks; class 1 of a
    2-class softmax label map).

    Examples:
        >>> from mmseg_ext.tasks import build_task
        >>> build_task('building').submission_header
        ('img_id', 'mask_rle')

    Pseudo-labels (``tools/pseudo_label.py``) give a competition CSV read by
    :class:`mmseg_ext.datasets.BuildingRLEDataset`::

        {out_dir}/train.csv                 # img_id,img_path,mask_rle
        {out_dir}/train_img/{name}          # link to (or copy of) the image
        {out_dir}/manifest.json

    with ``img_path`` relative to the CSV's folder (``./train_img/...``) and
    ``-1`` for an empty mask; read it with ``BuildingRLEDataset(
    data_root=out_dir, ann_file='train.csv', split='all')``. An RLE cannot
    carry ignored pixels, so unsure pixels of a kept image count as
    **background** (negative): bound their share with ``max_unsure``.
    """
    name = 'building'
    title = 'building'
    dataset_types = ('BuildingRLEDataset', )
    fold_keys = ('fold', 'num_folds')
    submission_header = ('img_id', 'mask_rle')
    takes_class_index = True
    unsure_policy = 'background: unsure pixels are negative in the RLE'

    # ----------------------------------------------------------- submission
    def check_submission(self, decision: str) -> None:
        """Both decisions give a building mask (:meth:`building_mask`)."""

    @staticmethod
    def building_mask(pred: np.ndarray, decision: str,
                      class_index: Optional[int]) -> np.ndarray:
        """The ``(H, W)`` bool building mask of a prediction.

        Raises:
            ValueError: if ``class_index`` is not a channel of ``pred``.
        """
        if decision == 'argmax':
            if class_index is None:
                class_index = 1  # softmax classes: background, building
            return pred == class_index
        c = pred.shape[0]
        class_index = 0 if class_index is None else class_index
        if not 0 <= class_index < c:
            raise ValueError(f'--class-index should be in [0, C={c}), but '
                             f'got {class_index}')
        return pred[class_index] != 0

    def submission_record(self, item, pred: np.ndarray, decision: str,
                          class_index: Optional[int]) -> Tuple:
        """``(img_id, rle, position)``: rows keep the input order."""
        mask = self.building_mask(pred, decision, class_index)
        return item.img_id, rle_encode(mask), item.position

    def submission_rows(self, name: str, rles,
                        classes: Sequence[str]) -> List[Tuple]:
        return [(name, rles)]

    def submission_key(self, name: str, order: int):
        """The order of the calls."""
        return order

    def write_submission(self, path: str, texts: Iterable[str],
                         num_images: int, classes: Sequence[str]) -> int:
        """Through the building metric's writer (``-1`` for empty)."""
        from mmseg_ext.evaluation.metrics.building_dice_metric import \
            write_submission_csv as write_building_csv

        def rows():
            for text in texts:
                row = next(csv.reader([text]))
                yield row[0], row[1]

        write_building_csv(path, rows())
        return num_images

    # -------------------------------------------------------- pseudo-labels
    def list_unlabelled_images(self, images: str) -> List[dict]:
        """A folder of images (``img_id`` = stem) or a CSV with ``img_id``
        and ``img_path`` columns (paths relative to its folder)."""
        if osp.isdir(images):
            return super().list_unlabelled_images(images)
        from mmseg_ext.datasets.building_rle import read_rle_csv
        rows, _ = read_rle_csv(images, rle_required=False)
        items = []
        for row in rows:
            name = osp.basename(row['img_path'])
            items.append(
                dict(
                    img_path=osp.abspath(row['img_path']),
                    stem=osp.splitext(name)[0],
                    rel=name,
                    img_id=row['img_id']))
        return items

    def pseudo_label_probs(self, probs: List[np.ndarray],
                           weights: Optional[np.ndarray],
                           class_index: Optional[int], prob_file: str):
        """The building channel (``class_index``; default the last of
        ``C <= 2``) and its weights."""
        c = probs[0].shape[0]
        index = class_index
        if index is None:
            if c > 2:
                raise ValueError(
                    f'{prob_file}: has C={c} classes; give the building '
                    'channel (`class_index`, --class-index)')
            index = c - 1
        if not 0 <= index < c:
            raise ValueError(f'`class_index` should be in [0, {c}) for '
                             f'{prob_file}, but got {index}')
        if weights is not None and weights.ndim == 2:
            weights = weights[:, index:index + 1]
        return [p[index:index + 1] for p in probs], weights

    def pseudo_label_outputs(self, out_dir: str, item: dict) -> Dict[str, str]:
        return dict(image=osp.join(out_dir, 'train_img', item['rel']))

    def write_pseudo_label(self, outputs: Dict[str, str], item: dict,
                           positive: np.ndarray, ignore: np.ndarray):
        """No label file: a ``train.csv`` row (unsure is background)."""
        mask = positive[0]
        row = [
            item['img_id'], f'./train_img/{item["rel"]}',
            rle_encode(mask) or '-1'
        ]
        entry = dict(
            img_id=item['img_id'],
            positive_fraction=round(float(mask.mean()), 6),
            file=osp.basename(row[1]))
        return entry, row

    def pseudo_label_item(self, entry: dict) -> dict:
        rel = entry.get('rel') or osp.basename(entry['image'])
        return dict(rel=entry.get('file', rel))

    def write_pseudo_index(self, out_dir: str, kept: List[dict],
                           rows: List[list], num_folds: int) -> None:
        """``train.csv``: ``img_id,img_path,mask_rle``."""
        with atomic_path(osp.join(out_dir, 'train.csv')) as tmp:
            with open(tmp, 'w', newline='', encoding='utf-8') as f:
                writer = csv.writer(f, lineterminator='\n')
                writer.writerow(['img_id', 'img_path', 'mask_rle'])
                writer.writerows(rows)

    def pseudo_label_dataset(self, out_dir: str, kept=()) -> dict:
        return dict(
            type='BuildingRLEDataset',
            data_root=osp.abspath(out_dir),
            ann_file='train.csv',
            split='all')
