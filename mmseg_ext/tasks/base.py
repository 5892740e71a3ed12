# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The base class of task adapters: everything a task does differently.

A *task* is a competition or data set with its own class list, ground-truth
layout, submission CSV and pseudo-label layout (hand bones, buildings, ...).
Generic code (:mod:`mmseg_ext.apis`, ``tools/ensemble.py``,
``tools/pseudo_label.py``, ``tools/kfold.py``) asks the task's adapter and
never names a task. An adapter is registered in MMSeg's ``TASK_UTILS`` and
found from a dataset config (:func:`mmseg_ext.tasks.task_from_dataset`) or
by its short CLI name (:func:`mmseg_ext.tasks.build_task`).

The defaults here are those of a generic multi-label task on
:class:`~mmseg_ext.datasets.PackedMultiLabelDataset`-style data, so a new
task overrides only what differs:

- metadata: ``classes`` / ``palette`` from the ``METAINFO`` of the first of
  ``dataset_types``;
- ground truth: packed multi-label PNGs (:meth:`read_targets`);
- submission: ``image_name,class,rle``, one row per image and class, images
  sorted by name (:meth:`submission_record` ... :meth:`write_submission`);
- pseudo-labels: ``{out}/img_dir/{name}`` images and ``{out}/ann_dir/
  {stem}.png`` packed labels (:meth:`list_unlabelled_images` ...
  :meth:`pseudo_label_dataset`);
- folds: the dataset's ``fold`` argument (:attr:`fold_keys`).
"""
import csv
import io
import os
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from mmseg_ext.utils.io import atomic_path

__all__ = ['BaseSegTask']

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp')


def write_lines(path: str, lines: Sequence[str]) -> None:
    """Write one line per item, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.writelines(f'{line}\n' for line in lines)


class BaseSegTask:
    """One task's rules, asked by the generic ensemble, pseudo-label and
    k-fold code.

    Subclasses set the class attributes and override the methods whose
    default (a generic multi-label task, see the module doc) does not fit,
    then register with ``@TASK_UTILS.register_module()``.

    Attributes:
        name (str): Short CLI name (``tools/ensemble.py --submission NAME``,
            ``--task NAME``), e.g. ``'hand_bone'``.
        title (str): Name in messages, e.g. ``'hand-bone'`` (default
            ``name``).
        dataset_types (tuple[str]): Registered dataset types of the task;
            the first gives ``classes``/``palette`` (its ``METAINFO``).
        fold_keys (tuple[str]): Fold arguments of those datasets, set by
            :meth:`set_fold`: ``('fold',)`` or ``('fold', 'num_folds')``.
        gt_format (str): ``'packed'`` or ``'label'``: how
            :meth:`read_targets` reads a ground-truth PNG.
        submission_header (tuple[str]): Header row of the submission CSV.
        takes_class_index (bool): Whether the submission / pseudo-labels
            pick one channel (``--class-index``).
        unsure_policy (str): What happens to unsure pseudo-label pixels
            (written to the manifest).

    Examples:
        >>> from mmseg.registry import TASK_UTILS
        >>> @TASK_UTILS.register_module()
        ... class ToyTask(BaseSegTask):
        ...     name = 'toy'
        ...     dataset_types = ('ToyDataset', )
    """
    name: str = ''
    title: str = ''
    dataset_types: Tuple[str, ...] = ()
    fold_keys: Tuple[str, ...] = ('fold', )
    gt_format: str = 'packed'
    submission_header: Tuple[str, ...] = ('image_name', 'class', 'rle')
    takes_class_index: bool = False
    unsure_policy: str = ('ignored: a pixel unsure for any class has its '
                          'valid bit clear')

    # ------------------------------------------------------------ metadata
    @property
    def metainfo(self) -> dict:
        """``METAINFO`` of the first of :attr:`dataset_types` (``{}`` if
        there is none or it is not registered)."""
        from mmseg.registry import DATASETS
        if not self.dataset_types:
            return {}
        cls = DATASETS.get(self.dataset_types[0])
        return dict(getattr(cls, 'METAINFO', None) or {})

    @property
    def classes(self) -> Tuple[str, ...]:
        """The class names (the dataset's ``METAINFO['classes']``)."""
        return tuple(self.metainfo.get('classes') or ())

    @property
    def palette(self) -> List[List[int]]:
        """The class colours (the dataset's ``METAINFO['palette']``)."""
        return list(self.metainfo.get('palette') or [])

    def class_names(self, names: Sequence[str],
                    num_classes: int) -> List[str]:
        """``names`` unless they are unnamed indices (``'0'``, ``'1'``, ...)
        or missing, then :attr:`classes` where there are ``num_classes``
        of them.

        Args:
            names (Sequence[str]): Names known so far (may be empty).
            num_classes (int): ``C`` of the predictions.

        Returns:
            list[str]: ``C`` names.
        """
        names = list(names or [])
        unnamed = names == [str(c) for c in range(len(names))]
        if (not names or unnamed) and len(self.classes) == num_classes:
            return list(self.classes)
        return names or [str(c) for c in range(num_classes)]

    @property
    def label(self) -> str:
        """:attr:`title`, else :attr:`name`, else the class name."""
        return self.title or self.name or type(self).__name__

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name={self.name!r})'

    # --------------------------------------------------------- ground truth
    def read_targets(self, path: str, num_classes: int,
                     gt_format: Optional[str] = None) -> np.ndarray:
        """``(C, H, W)`` uint8 targets in ``{0, 1, 255}`` from a PNG.

        Args:
            path (str): The ground-truth file.
            num_classes (int): ``C``.
            gt_format (str, optional): ``'packed'`` (packed multi-label
                PNG) or ``'label'`` (class-index PNG, 255 ignored).
                Defaults to :attr:`gt_format`.

        Raises:
            FileNotFoundError: if the file cannot be read.
        """
        import cv2

        from mmseg_ext.utils.multilabel import (read_packed_label,
                                                unpack_multilabel)
        gt_format = gt_format or self.gt_format
        if gt_format == 'packed':
            return unpack_multilabel(read_packed_label(path, num_classes),
                                     num_classes)
        from mmseg_ext.apis.ensemble.members import label_to_targets
        label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if label is None:
            raise FileNotFoundError(f'ground truth {path!r} does not exist '
                                    'or cannot be read')
        return label_to_targets(label, num_classes)

    def test_split_args(self) -> dict:
        """Dataset arguments that select the (unlabelled) test images.
        Default: none (point the test loader at the test images yourself).
        """
        return {}

    def test_split_options(self, key: str = 'test_dataloader.dataset'
                           ) -> List[str]:
        """:meth:`test_split_args` as ``--cfg-options`` for the dataset at
        ``key`` (fold configs test on their validation fold)."""
        return [f'{key}.{k}={v}' for k, v in self.test_split_args().items()]

    # ---------------------------------------------------------------- folds
    def set_fold(self, dataset_cfg: dict, fold: int, num_folds: int) -> None:
        """Set the fold arguments (:attr:`fold_keys`) of one dataset dict
        of this task, in place."""
        values = dict(fold=fold, num_folds=num_folds)
        for key in self.fold_keys:
            dataset_cfg[key] = values[key]

    # ----------------------------------------------------------- submission
    def check_submission(self, decision: str) -> None:
        """Raise ``ValueError`` if a submission cannot be written from
        predictions of ``decision`` (``'threshold'``/``'argmax'``)."""
        if decision != 'threshold':
            raise ValueError(f'the {self.label} submission needs multi-label '
                             'masks (threshold decision), but the decision '
                             f'is {decision}')

    def submission_record(self, item, pred: np.ndarray, decision: str,
                          class_index: Optional[int]) -> Tuple:
        """``(name, rles, key)`` of one predicted image for the spool.

        Args:
            item (EnsembleItem): The image (``stem``, ``name``, ``img_id``,
                ``position``).
            pred (np.ndarray): ``(C, H, W)`` masks or an ``(H, W)`` label
                map (``'argmax'``).
            decision (str): ``'threshold'`` or ``'argmax'``.
            class_index (int, optional): The channel, for tasks with
                :attr:`takes_class_index`.

        Returns:
            tuple: ``(name, rles, key)``: the row name, one RLE per class
            (or one RLE), and the sort key (None: :meth:`submission_key`).
        """
        from mmseg_ext.utils.rle import rle_encode
        return item.name, [rle_encode(m) for m in pred], None

    def submission_rows(self, name: str, rles, classes: Sequence[str]
                        ) -> List[Tuple]:
        """The CSV rows of one image: ``(name, class, rle)`` per class."""
        if len(rles) != len(classes):
            raise ValueError(f'image {name!r} should have {len(classes)} '
                             f'RLEs, but got {len(rles)}')
        return [(name, c, r) for c, r in zip(classes, rles)]

    def submission_key(self, name: str, order: int):
        """Sort key of an image's rows when none is given: its name."""
        return name

    def submission_text(self, name: str, rles,
                        classes: Sequence[str]) -> str:
        """CSV text of :meth:`submission_rows`."""
        buf = io.StringIO()
        csv.writer(buf, lineterminator='\n').writerows(
            self.submission_rows(name, rles, classes))
        return buf.getvalue()

    def write_submission(self, path: str, texts: Iterable[str],
                         num_images: int, classes: Sequence[str]) -> int:
        """Write the CSV atomically: the header, then ``texts`` (each
        image's rows, in key order). Returns the number of rows."""
        with atomic_path(path) as tmp:
            with open(tmp, 'w', encoding='utf-8', newline='') as out:
                out.write(','.join(self.submission_header) + '\n')
                for text in texts:
                    out.write(text)
        return num_images * len(classes)

    # -------------------------------------------------------- pseudo-labels
    def list_unlabelled_images(self, images: str) -> List[dict]:
        """The unlabelled images, sorted: a folder of images.

        Returns:
            list[dict]: ``img_path`` (absolute), ``stem`` (key of the
            probability files), ``rel`` (output name), ``img_id``.
        """
        if not osp.isdir(images):
            raise FileNotFoundError(f'{self.label} images {images!r} should '
                                    'be a folder of images')
        items = []
        for name in sorted(os.listdir(images)):
            if name.startswith('.') or osp.splitext(
                    name)[1].lower() not in IMAGE_EXTS:
                continue
            stem = osp.splitext(name)[0]
            items.append(
                dict(
                    img_path=osp.abspath(osp.join(images, name)),
                    stem=stem,
                    rel=name,
                    img_id=stem))
        return items

    def pseudo_label_probs(self, probs: List[np.ndarray],
                           weights: Optional[np.ndarray],
                           class_index: Optional[int], prob_file: str
                           ) -> Tuple[List[np.ndarray], Optional[np.ndarray]]:
        """Check (and select) the channels of one image's member maps.

        Returns:
            tuple: The ``E`` ``(C', H, W)`` maps and the weights to merge
            them with.

        Raises:
            ValueError: if ``C`` is not the task's number of classes.
        """
        c = probs[0].shape[0]
        if self.classes and c != len(self.classes):
            raise ValueError(
                f'{prob_file}: {self.label} probabilities should have C='
                f'{len(self.classes)} classes, but got C={c}')
        return probs, weights

    def pseudo_label_outputs(self, out_dir: str, item: dict) -> Dict[str, str]:
        """The files written for one kept image (``image`` and, for tasks
        with label files, ``label``)."""
        stem = osp.splitext(item['rel'])[0]
        return dict(
            image=osp.join(out_dir, 'img_dir', item['rel']),
            label=osp.join(out_dir, 'ann_dir', stem + '.png'))

    def write_pseudo_label(self, outputs: Dict[str, str], item: dict,
                           positive: np.ndarray, ignore: np.ndarray
                           ) -> Tuple[dict, Optional[list]]:
        """Write one kept image's label.

        Args:
            outputs (dict): :meth:`pseudo_label_outputs`.
            item (dict): The image (:meth:`list_unlabelled_images`).
            positive (np.ndarray): ``(C, H, W)`` bool confident positives.
            ignore (np.ndarray): ``(H, W)`` bool, unsure for some class.

        Returns:
            tuple[dict, list | None]: Manifest fields of the image and its
            index row (None: the task has no index rows).
        """
        from mmseg_ext.utils.multilabel import (pack_multilabel,
                                                write_packed_label)
        positive[:, ignore] = False
        write_packed_label(outputs['label'], pack_multilabel(positive, ignore))
        return dict(
            rel=item['rel'],
            positive_fraction=round(float(positive.any(0).mean()), 6)), None

    def pseudo_label_item(self, entry: dict) -> dict:
        """The ``item`` (``rel``) of a manifest entry of an earlier run, to
        find its files (:meth:`pseudo_label_outputs`)."""
        return dict(rel=entry.get('rel') or osp.basename(entry['image']))

    def write_pseudo_index(self, out_dir: str, kept: List[dict],
                           rows: List[list], num_folds: int) -> None:
        """Write the index of the kept images (after every label), e.g.
        split files or a CSV. Default: none (the folders are the index).
        """

    def pseudo_label_dataset(self, out_dir: str,
                             kept: Sequence[dict] = ()) -> dict:
        """The dataset config that reads a pseudo-label root.

        Args:
            out_dir (str): The root.
            kept (Sequence[dict]): The kept manifest entries (the default
                layout takes the image suffix from them).
        """
        suffixes = {osp.splitext(e['rel'])[1] for e in kept if 'rel' in e}
        return dict(
            type=self.dataset_types[0] if self.dataset_types else None,
            data_root=osp.abspath(out_dir),
            data_prefix=dict(img_path='img_dir', seg_map_path='ann_dir'),
            img_suffix=suffixes.pop() if len(suffixes) == 1 else '.png',
            seg_map_suffix='.png')
