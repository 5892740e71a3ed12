# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The building competition's Dice, and its submission CSV writer."""
import csv
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS

from mmseg_ext.datasets.building_rle import read_rle_csv
from mmseg_ext.utils.dice import image_counts
from mmseg_ext.utils.io import atomic_path
from mmseg_ext.utils.multilabel import as_unpacked
from mmseg_ext.utils.rle import rle_encode
from mmseg_ext.utils.threshold_search import competition_dice, mean_dice

EMPTY_SUBMISSION_RLE = '-1'


def _mask_2d(data: torch.Tensor, class_index: int, name: str) -> torch.Tensor:
    """``(H, W)`` of a ``(H, W)``/``(C, H, W)`` tensor (class ``class_index``).
    """
    if data.dim() == 3:
        if not 0 <= class_index < data.shape[0]:
            raise ValueError(f'`class_index` should be in [0, '
                             f'{data.shape[0]}) for {name} of shape '
                             f'{tuple(data.shape)}, but got {class_index}')
        return data[class_index]
    if data.dim() == 2:
        return data
    raise ValueError(f'{name} should have shape (H, W) or (C, H, W), but got '
                     f'{tuple(data.shape)}')


def building_counts(pred: torch.Tensor,
                    gt: torch.Tensor,
                    class_index: int = 0,
                    ignore_index: Optional[int] = 255) -> Tuple[int, int, int]:
    """``(|X & Y|, |X|, |Y|)`` of one image.

    Args:
        pred (Tensor): ``(1, H, W)``/``(C, H, W)`` or ``(H, W)`` predicted
            mask (nonzero is building).
        gt (Tensor): Ground truth of the same ``H, W``: unpacked
            ``(C, H, W)`` uint8 in ``{0, 1, ignore_index}`` (multi-label
            pipeline), packed ``(K, H, W)`` int16 (unpacked here), or a
            plain ``(H, W)``/``(1, H, W)`` 0/1 map.
        class_index (int): Channel of the building class. Defaults to 0.
        ignore_index (int | None): Ignored ground-truth value, excluded from
            ``X`` and ``Y``. Defaults to 255.

    Returns:
        tuple[int, int, int]: The counts.
    """
    gt = as_unpacked(gt, pred.shape[0] if pred.dim() == 3 else 1,
                     ignore_index)
    pred = _mask_2d(pred, class_index, '`pred_sem_seg`')
    gt = _mask_2d(gt, class_index if gt.dim() == 3 and gt.shape[0] > 1 else 0,
                  '`gt_sem_seg`').to(pred.device)
    if pred.shape != gt.shape:
        raise ValueError('`pred_sem_seg` and `gt_sem_seg` should have the '
                         f'same (H, W), but got {tuple(pred.shape)} and '
                         f'{tuple(gt.shape)}')
    inter, x, y = image_counts(pred[None], gt[None], ignore_index)[:, 0]
    return int(inter), int(x), int(y)


@METRICS.register_module()
class BuildingDiceMetric(BaseMetric):
    """The building competition's Dice, plus the plain mean Dice.

    Per image, with ``X`` the predicted and ``Y`` the true building pixels
    (ground-truth pixels equal to ``ignore_index`` excluded from both):
    ``Dice = 2 |X & Y| / (|X| + |Y|)``. The competition averages it over
    images **skipping** those where ``X`` and ``Y`` are both empty; an empty
    truth with any predicted pixel scores 0 (:func:`competition_dice`). The
    plain mean counts empty/empty as 1 (:func:`mean_dice`).

    ``process`` keeps three integers per image (no masks), so memory does not
    grow with the image size and mmengine gathers them across DDP ranks.
    Works on ``pred_sem_seg`` ``(1, H, W)`` (or ``(C, H, W)`` with
    ``class_index``) of :class:`MultiLabelEncoderDecoder` against
    ``gt_sem_seg`` ``(1, H, W)`` uint8 ``{0, 1, 255}`` of the multi-label
    pipeline (packed int16 is unpacked), and also against a plain
    ``(H, W)``/``(1, H, W)`` 0/1 map.

    Returned keys (with the default prefix ``building``): ``score`` (the
    competition score, monitor it: ``'building/score'``), ``dice`` (plain
    mean), ``num_images``, ``num_scored``, ``num_empty_gt``,
    ``num_empty_gt_fp`` (empty truth with a false positive, each scoring 0)
    and ``num_missed`` (non-empty truth predicted empty). Values are
    fractions in ``[0, 1]``.

    Args:
        class_index (int): Channel of the building class. Defaults to 0.
        ignore_index (int | None): Ignored ground-truth value.
            Defaults to 255.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to
            ``'building'``.

    Examples:
        >>> val_evaluator = dict(type='BuildingDiceMetric')
        >>> default_hooks = dict(checkpoint=dict(
        ...     type='CheckpointHook', save_best='building/score',
        ...     rule='greater'))
    """
    default_prefix: Optional[str] = 'building'

    def __init__(self,
                 class_index: int = 0,
                 ignore_index: Optional[int] = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(
            collect_device=collect_device, prefix=prefix, **kwargs)
        if isinstance(class_index, bool) or not isinstance(
                class_index, int) or class_index < 0:
            raise ValueError('`class_index` should be an int >= 0, but got '
                             f'{class_index!r}')
        self.class_index = class_index
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store ``(|X & Y|, |X|, |Y|)`` of each image."""
        for sample in data_samples:
            if 'gt_sem_seg' not in sample:
                raise ValueError(
                    'BuildingDiceMetric needs `gt_sem_seg` (a validation set '
                    'with masks); for test.csv use BuildingSubmissionMetric')
            self.results.append(
                building_counts(sample['pred_sem_seg']['data'],
                                sample['gt_sem_seg']['data'],
                                self.class_index, self.ignore_index))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Competition score and plain mean Dice over the images."""
        counts = np.asarray(results, dtype=np.int64).reshape(-1, 3)
        score, num_scored = competition_dice(counts)
        empty_gt = counts[:, 2] == 0
        metrics = OrderedDict(
            score=score,
            dice=mean_dice(counts),
            num_images=int(len(counts)),
            num_scored=num_scored,
            num_empty_gt=int(empty_gt.sum()),
            num_empty_gt_fp=int((empty_gt & (counts[:, 1] > 0)).sum()),
            num_missed=int(((~empty_gt) & (counts[:, 1] == 0)).sum()))
        print_log(
            f'building Dice: competition score {score:.4f} over '
            f'{num_scored}/{len(counts)} images (empty/empty skipped; '
            f'{metrics["num_empty_gt_fp"]} empty tiles with false positives '
            f'score 0), plain mean {metrics["dice"]:.4f}',
            logger='current')
        return metrics


def write_submission_csv(path: str,
                         rows: Sequence[Tuple[str, str]],
                         header: Sequence[str] = ('img_id', 'mask_rle'),
                         empty_value: str = EMPTY_SUBMISSION_RLE) -> None:
    """Write ``img_id,mask_rle`` rows atomically; an empty RLE becomes
    ``empty_value`` (``-1``).

    Args:
        path (str): Output CSV.
        rows (Sequence[tuple[str, str]]): ``(img_id, rle)`` in output order.
        header (Sequence[str]): Defaults to ``('img_id', 'mask_rle')``.
        empty_value (str): Written for ``''``. Defaults to ``'-1'``.
    """
    with atomic_path(path) as tmp:
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f, lineterminator='\n')
            writer.writerow(list(header))
            writer.writerows((img_id, rle or empty_value)
                             for img_id, rle in rows)


@METRICS.register_module()
class BuildingSubmissionMetric(BaseMetric):
    """Write the competition submission CSV from test predictions.

    ``process`` encodes each ``pred_sem_seg`` (class ``class_index``) as
    competition RLE (:func:`mmseg_ext.utils.rle_encode`) and keeps the
    string with the image's key (``img_id`` from the metainfo if the pack
    transform kept it, else ``img_path``). mmengine gathers the strings
    from every DDP rank; rank 0 then writes ``out_file`` atomically with
    **every** row of ``ann_file`` (``test.csv``) in its order: ``-1`` for an
    empty prediction and for a row without prediction (counted, with a
    warning). A prediction for an image not in the CSV is an error.

    Args:
        ann_file (str): The test CSV (``img_id,img_path``); image paths are
            relative to its folder.
        out_file (str): Submission path. Defaults to ``'submission.csv'``.
        class_index (int): Channel of the building class. Defaults to 0.
        img_id_column (str): Defaults to ``'img_id'``.
        img_path_column (str): Defaults to ``'img_path'``.
        rle_column (str): Header of the RLE column. Defaults to
            ``'mask_rle'``.
        output_dir (str, optional): Folder for a relative ``out_file``
            (what ``tools/test.py --out DIR`` sets). Defaults to None.
        keep_results (bool): Accepted for ``tools/test.py --out``; unused.
        collect_device (str): Defaults to 'cpu'.
        prefix (str, optional): Defaults to ``'submission'``.

    Returns:
        ``compute_metrics`` returns ``num_rows``, ``num_empty`` and
        ``num_missing``.

    Examples:
        >>> test_evaluator = dict(type='BuildingSubmissionMetric',
        ...                       ann_file='data/building/test.csv',
        ...                       out_file='work_dirs/submission.csv')
    """
    default_prefix: Optional[str] = 'submission'

    def __init__(self,
                 ann_file: str,
                 out_file: str = 'submission.csv',
                 class_index: int = 0,
                 img_id_column: str = 'img_id',
                 img_path_column: str = 'img_path',
                 rle_column: str = 'mask_rle',
                 output_dir: Optional[str] = None,
                 keep_results: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(
            collect_device=collect_device, prefix=prefix, **kwargs)
        if not isinstance(ann_file, str) or not ann_file:
            raise ValueError('`ann_file` should be the path of test.csv, but '
                             f'got {ann_file!r}')
        self.ann_file = ann_file
        if output_dir is not None and not osp.isabs(out_file):
            out_file = osp.join(output_dir, out_file)
        self.out_file = out_file
        self.class_index = class_index
        self.img_id_column = img_id_column
        self.img_path_column = img_path_column
        self.rle_column = rle_column

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Encode each prediction; keep ``(key kind, key, rle)``."""
        for sample in data_samples:
            pred = _mask_2d(sample['pred_sem_seg']['data'], self.class_index,
                            '`pred_sem_seg`')
            rle = rle_encode((pred != 0).cpu().numpy())
            if sample.get('img_id') is not None:
                self.results.append(('img_id', str(sample['img_id']), rle))
            else:
                self.results.append(
                    ('img_path', osp.normpath(osp.abspath(
                        sample['img_path'])), rle))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, int]:
        """Write the CSV in ``ann_file`` order; see the class docstring."""
        rows, _ = read_rle_csv(
            self.ann_file,
            self.img_id_column,
            self.img_path_column,
            rle_column=None,
            rle_required=False)
        by_id = {row['img_id']: i for i, row in enumerate(rows)}
        by_path = {
            osp.normpath(osp.abspath(row['img_path'])): i
            for i, row in enumerate(rows)
        }
        rles: List[Optional[str]] = [None] * len(rows)
        for kind, key, rle in results:
            index = (by_id if kind == 'img_id' else by_path).get(key)
            if index is None:
                raise ValueError(
                    f'a prediction for {kind} {key!r} has no row in '
                    f'{self.ann_file}; the test dataloader and the '
                    'submission CSV disagree')
            rles[index] = rle
        missing = [rows[i]['img_id'] for i, r in enumerate(rles) if r is None]
        if missing:
            print_log(
                f'{len(missing)} of {len(rows)} rows of {self.ann_file} have '
                f'no prediction and are written as '
                f'{EMPTY_SUBMISSION_RLE}: {missing[:5]}'
                f'{" ..." if len(missing) > 5 else ""}',
                logger='current', level=30)
        write_submission_csv(
            self.out_file,
            [(row['img_id'], rle or '') for row, rle in zip(rows, rles)],
            header=(self.img_id_column, self.rle_column))
        num_empty = sum(1 for r in rles if not r)
        print_log(
            f'submission written to {self.out_file}: {len(rows)} rows, '
            f'{num_empty} empty ({EMPTY_SUBMISSION_RLE})', logger='current')
        return OrderedDict(
            num_rows=len(rows), num_empty=num_empty,
            num_missing=len(missing))


__all__ = [
    'BuildingDiceMetric', 'BuildingSubmissionMetric', 'building_counts',
    'write_submission_csv'
]
