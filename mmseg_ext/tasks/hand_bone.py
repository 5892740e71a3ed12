# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The hand-bone X-ray task: 29 overlapping bones, packed multi-label PNGs.

Submission: ``image_name,class,rle``, one row per image and class (images
sorted by name, classes in ``HandBoneDataset.METAINFO`` order). Pseudo-labels:
a dataset root in the competition layout (``train/DCM`` links,
``train/packed_labels``, ``splits/all.txt`` and ``splits/fold{k}_train.txt``)
read by ``HandBoneDataset(data_root=OUT, split='all')``.
"""
import os.path as osp
from typing import Dict, List

from mmseg.registry import TASK_UTILS

from mmseg_ext.datasets.converters.hand_bone import (HAND_BONE_LAYOUT,
                                                     list_hand_bone_images)
from mmseg_ext.evaluation.metrics.hand_bone_submission import \
    SUBMISSION_HEADER
from .base import BaseSegTask, write_lines

__all__ = ['HandBoneTask']


@TASK_UTILS.register_module()
class HandBoneTask(BaseSegTask):
    """Adapter of the hand-bone competition (``HandBoneDataset``).

    Folds come from the converter's split files (``fold``); the test split
    is ``split='test'`` (images under ``test/DCM``, no labels).

    Examples:
        >>> from mmseg_ext.tasks import build_task
        >>> task = build_task('hand_bone')
        >>> len(task.classes), task.classes[0]
        (29, 'finger-1')

    Pseudo-labels (``tools/pseudo_label.py``) give a new dataset root in
    the competition layout, read by
    :class:`mmseg_ext.datasets.HandBoneDataset`::

        {out_dir}/train/DCM/{ID}/{name}.png            # link to / copy of
                                                       #   the unlabelled image
        {out_dir}/train/packed_labels/{ID}/{name}.png  # packed pseudo-label
        {out_dir}/splits/all.txt                       # every kept image
        {out_dir}/splits/fold{k}_train.txt             # the same, k < K folds
        {out_dir}/manifest.json                        # report

    Use ``HandBoneDataset(data_root=out_dir, split='all')`` (or
    ``split='train', fold=k`` for any ``k < num_folds``: every fold trains on
    every pseudo image; no ``fold{k}_val.txt`` is written, pseudo images never
    validate). The packed format ignores whole pixels only (the valid bit, see
    :mod:`mmseg_ext.utils.multilabel`), so **a pixel unsure for any class is
    ignored for every class**; its confident classes are dropped too. There are
    no polygon JSONs (``train/outputs_json``): do not run the hand-bone
    converter on this root (it needs them and would not keep the ignored
    pixels).
    """
    name = 'hand_bone'
    title = 'hand-bone'
    dataset_types = ('HandBoneDataset', )
    submission_header = SUBMISSION_HEADER

    def test_split_args(self) -> dict:
        """``split='test'``: the images under ``test/DCM``."""
        return dict(split='test')

    def list_unlabelled_images(self, images: str) -> List[dict]:
        """``{ID}/{name}.png`` under ``images`` (e.g. ``test/DCM``)."""
        if not osp.isdir(images):
            raise FileNotFoundError(
                f'hand-bone images {images!r} should be a folder of '
                '{ID}/{name}.png (e.g. data/hand_bone/test/DCM)')
        items = []
        for rel in list_hand_bone_images(images):
            if '/' not in rel:
                raise ValueError(
                    f'hand-bone image {osp.join(images, rel)!r} should be in '
                    'a patient folder ({ID}/{name}.png)')
            items.append(
                dict(
                    img_path=osp.abspath(osp.join(images, rel)),
                    stem=osp.splitext(osp.basename(rel))[0],
                    rel=rel,
                    img_id=None))
        return items

    def pseudo_label_outputs(self, out_dir: str, item: dict) -> Dict[str, str]:
        """``train/DCM/{rel}`` and ``train/packed_labels/{rel}``."""
        return dict(
            image=osp.join(out_dir, HAND_BONE_LAYOUT['train_images'],
                           item['rel']),
            label=osp.join(out_dir, HAND_BONE_LAYOUT['labels'], item['rel']))

    def write_pseudo_index(self, out_dir: str, kept: List[dict],
                           rows: List[list], num_folds: int) -> None:
        """``splits/fold{k}_train.txt`` (``k < num_folds``) and
        ``splits/all.txt``, each listing every kept image."""
        split_dir = osp.join(out_dir, HAND_BONE_LAYOUT['splits'])
        rels = sorted(e['rel'] for e in kept)
        for k in range(num_folds):
            write_lines(osp.join(split_dir, f'fold{k}_train.txt'), rels)
        write_lines(osp.join(split_dir, 'all.txt'), rels)

    def pseudo_label_dataset(self, out_dir: str, kept=()) -> dict:
        return dict(
            type='HandBoneDataset', data_root=osp.abspath(out_dir),
            split='all')
