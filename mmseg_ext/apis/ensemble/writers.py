# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The test split: masks, and the submission CSV spooled to disk.

:func:`ensemble_test` decides every image (thresholds and the
post-processing plan of a ``thresholds.json``), writes its mask PNG and
hands the task's submission record to a :class:`SubmissionSpool`. The CSV
layout is the task adapter's (:mod:`mmseg_ext.tasks`): the spool only keeps
rows on disk, merges ranks and writes the file once, atomically.
"""
import os
import os.path as osp
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmseg_ext.utils.dist import (advance_progress, chunk_bounds, dist_info,
                                  gather_chunks, run_on_main, shard,
                                  sum_over_ranks, sync_errors)
from mmseg_ext.utils.io import imwrite_atomic
from mmseg_ext.utils.multilabel import pack_multilabel, write_packed_label
from mmseg_ext.utils.postprocess import apply_op, plan_by_index
from .crf import crf_refiner
from .formats import load_thresholds
from .merge import Ensemble
from .search import f32_list, progress_bar

__all__ = ['SubmissionSpool', 'ensemble_test']


class SubmissionSpool:
    """Submission rows spooled to a temporary file, written at the end.

    Keeps only a ``(key, name, offset, size)`` index in memory (not the RLE
    strings, which for large masks are kilobytes per class), so writing a
    submission does not make peak memory grow with the number of images.
    The rows, their order and the CSV are the task's
    (:meth:`~mmseg_ext.tasks.BaseSegTask.submission_rows`,
    :meth:`~mmseg_ext.tasks.BaseSegTask.submission_key`,
    :meth:`~mmseg_ext.tasks.BaseSegTask.write_submission`; the shipped
    formats are documented on the adapters). The ``key`` of :meth:`add`
    orders the rows, so rows of several ranks merge in order.

    Under a process group each rank spools its own rows and
    :meth:`gather_to_main` streams them into rank 0's spool, which writes
    the one CSV.

    Args:
        kind (str | dict | BaseSegTask): The task (:func:`build_task`).
        path (str): The CSV to write (atomically, by :meth:`close`).
        classes (Sequence[str]): Class names (per-class rows).
    """

    def __init__(self, kind, path: str, classes: Sequence[str]) -> None:
        from mmseg_ext.tasks import build_task
        self.task = build_task(kind)
        self.kind, self.path, self.classes = (self.task.name, path,
                                              list(classes))
        folder = osp.dirname(osp.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self._file = tempfile.TemporaryFile(
            mode='w+',
            encoding='utf-8',
            newline='',
            dir=folder,
            prefix=f'.{osp.basename(path)}.spool')
        # (sort key, name, offset, size) per image
        self.index: List[Tuple[Union[str, int], str, int, int]] = []
        self._names = set()

    def add(self,
            name: str,
            rles: Union[str, Sequence[str]],
            key: Union[None, str, int] = None) -> None:
        """One image: its name and RLE(s), as the task's rows.

        Args:
            name (str): Hand-bone ``image_name`` / building ``img_id``.
            rles (str | Sequence[str]): The ``C`` RLEs / the RLE.
            key (str | int, optional): Sort key of the row(s) in the CSV.
                Defaults to the task's :meth:`submission_key` (hand bone:
                ``name``; building: the order of the calls).
        """
        self.add_text(name, self.task.submission_text(name, rles,
                                                      self.classes), key)

    def add_text(self,
                 name: str,
                 text: str,
                 key: Union[None, str, int] = None) -> None:
        """Spool the CSV text of one image's row(s) (see :meth:`add`)."""
        if name in self._names:
            raise ValueError(f'image {name!r} has two predictions; image '
                             'names should be unique in a submission')
        self._names.add(name)
        if key is None:
            key = self.task.submission_key(name, len(self.index))
        self._file.seek(0, os.SEEK_END)
        offset = self._file.tell()  # an opaque text-mode cookie
        self._file.write(text)
        self.index.append((key, name, offset, len(text)))

    def records(self, start: int, stop: int) -> List[Tuple]:
        """``(key, name, text)`` of the images ``start .. stop - 1`` (in
        the order they were added)."""
        out = []
        for key, name, offset, size in self.index[start:stop]:
            self._file.seek(offset)
            out.append((key, name, self._file.read(size)))
        return out

    def gather_to_main(self, max_bytes: int = 8 << 20) -> None:
        """Move the rows of every rank into rank 0's spool (every rank
        calls it; chunks of about ``max_bytes`` travel at a time). No-op
        without a process group."""
        rank, world_size = dist_info()
        if world_size == 1:
            return
        bounds = [] if rank == 0 else chunk_bounds(
            [size for *_, size in self.index], max_bytes)

        def consume(src, records):
            for key, name, text in records:
                self.add_text(name, text, key)

        gather_chunks(len(bounds), lambda i: self.records(*bounds[i]), consume)

    def _sorted_texts(self) -> Iterator[str]:
        for _, _, offset, size in sorted(self.index, key=lambda e: e[0]):
            self._file.seek(offset)
            yield self._file.read(size)

    def discard(self) -> None:
        """Drop the spooled rows; write nothing."""
        self._file.close()

    def close(self) -> int:
        """Write the CSV; return the number of rows (without header)."""
        try:
            return self.task.write_submission(self.path,
                                              self._sorted_texts(),
                                              len(self.index), self.classes)
        finally:
            self._file.close()


def _apply_plan(masks: np.ndarray, plan: Dict[int, Sequence]) -> np.ndarray:
    """A plan keyed by class index (:func:`plan_by_index`, resolved once
    per run) applied to ``(C, H, W)`` masks."""
    out = np.array(masks, dtype=np.uint8, copy=True)
    for c, op in plan.items():
        out[c] = apply_op(out[c], op)
    return out


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _resolve_thresholds(ensemble: Ensemble, thresholds,
                        use_postprocess) -> Tuple[np.ndarray, dict]:
    """``(C,)`` thresholds and the post-processing plan (by name) of a test
    run; a plan's class names become the ensemble's."""
    thr = ensemble.default_thresholds()
    if thresholds is None:
        return thr, {}
    if ensemble.strategy == 'hard':
        if _is_number(thresholds):
            raise ValueError('the hard strategy takes --k (votes needed) or '
                             'a thresholds.json of a hard --split val run, '
                             'not a number')
        if ensemble.k is not None:
            raise ValueError('give either --k or --thresholds for the hard '
                             'strategy, not both')
    num_classes = ensemble.num_classes
    spec = load_thresholds(thresholds, num_classes)
    if spec['strategy'] not in (None, ensemble.strategy):
        raise ValueError(f'{thresholds} was searched for the '
                         f'{spec["strategy"]!r} strategy, but this run uses '
                         f'{ensemble.strategy!r}; search again with --split '
                         'val')
    plan = spec['postprocess'] if use_postprocess else {}
    names = spec['classes']
    if plan and names is not None:
        if len(names) != num_classes:
            raise ValueError(f'{thresholds} names {len(names)} classes, but '
                             f'the members predict C={num_classes}')
        ensemble.classes = list(names)
    return spec['thresholds'], plan


def _test_crf(ensemble: Ensemble, thresholds, use_crf: bool,
              img_dir: Optional[str]):
    """The :class:`~.crf.CRFRefiner` of the ``"crf"`` entry of a
    thresholds.json (None: a number, no entry, no kept class or
    ``use_crf=False``)."""
    if not use_crf or thresholds is None or _is_number(thresholds) or \
            ensemble.decision != 'threshold':
        return None
    spec = load_thresholds(thresholds, ensemble.num_classes)
    names = spec['classes']
    if spec['crf'] and names is not None:
        if len(names) != ensemble.num_classes:
            raise ValueError(f'{thresholds} names {len(names)} classes, but '
                             f'the members predict C={ensemble.num_classes}')
        ensemble.classes = list(names)  # the kept classes are named so
    return crf_refiner(ensemble, spec['crf'], use_crf, img_dir,
                       str(thresholds))


def _write_prediction(path: str, pred: np.ndarray, decision: str) -> None:
    """Packed PNG (``C > 1`` masks), 0/255 PNG (``C == 1``) or class-index
    PNG (``'argmax'``), atomically."""
    if decision == 'argmax':
        imwrite_atomic(pred, path)
    elif pred.shape[0] == 1:
        imwrite_atomic(pred[0] * np.uint8(255), path)
    else:
        write_packed_label(path, pack_multilabel(pred))


def ensemble_test(ensemble: Ensemble,
                  out_dir: Optional[str] = None,
                  thresholds: Union[None, float, str] = None,
                  use_postprocess: bool = True,
                  submission=None,
                  submission_file: Optional[str] = None,
                  class_index: Optional[int] = None,
                  progress: bool = True,
                  use_crf: bool = True,
                  img_dir: Optional[str] = None) -> dict:
    """Predict the test split: masks and/or a submission CSV.

    Per image: merge, decide (thresholds from ``thresholds``: a number or
    ``thresholds.json`` of :func:`ensemble_val`, with its post-processing
    plan unless ``use_postprocess=False``; default 0.5, or ``(k - 0.5) / E``
    for ``'hard'``), then write ``{out_dir}/{stem}.png``: a packed label
    (``write_packed_label``) for ``C > 1`` masks, a 0/255 PNG for
    ``C == 1``, a class-index PNG for ``'argmax'``. Submission rows (the
    task adapter's) go to a
    :class:`SubmissionSpool` (a temporary file beside the CSV), so memory
    does not grow with the number of images; the CSV is written at the
    end, atomically. Unnamed class indices get the task's class names
    (:meth:`~mmseg_ext.tasks.BaseSegTask.class_names`).

    With the ``"crf"`` entry of a ``thresholds.json`` (``ensemble_val(...,
    crf=True)``) the kept classes of the merged map are refined by the
    dense CRF before thresholding (:mod:`.crf`), unless ``use_crf=False``.

    Args:
        submission (str | dict | BaseSegTask, optional): The task whose
            submission CSV to write (:func:`mmseg_ext.tasks.build_task`).
            Defaults to None (no CSV).
        use_crf (bool): Apply the thresholds.json's dense CRF. Defaults to
            True.
        img_dir (str, optional): Images of probability-folder members for
            the CRF (``{img_dir}/{stem}{img_suffix}``). Defaults to None.

    Returns:
        dict: ``num_images``, ``thresholds``, ``postprocess``, ``crf``
        (``{'classes', 'seconds_per_image'}`` or None) and the outputs.
    """
    from mmseg_ext.tasks import build_task

    if out_dir is None and submission is None:
        raise ValueError('the test split writes nothing: give --out-dir '
                         '(masks) and/or --submission with --out')
    task = None
    if submission is not None:
        task = build_task(submission)
        if not submission_file:
            raise ValueError('--submission needs --out FILE (the CSV)')
        task.check_submission(ensemble.decision)
    if ensemble.decision == 'argmax' and thresholds is not None:
        raise ValueError('`--thresholds` apply to the threshold decision, '
                         'but the decision is argmax (softmax members)')
    rank, world_size = dist_info()
    bar = progress_bar(len(ensemble)) if progress and rank == 0 else None
    thr, plan, spool, num, error = None, {}, None, 0, None
    refiner = None
    try:
        try:
            # Everything about the classes is known before the first image.
            if ensemble.decision == 'threshold':
                thr, plan = _resolve_thresholds(ensemble, thresholds,
                                                use_postprocess)
            refiner = _test_crf(ensemble, thresholds, use_crf, img_dir)
            by_index = plan_by_index(plan, ensemble.classes)
            if task is not None:
                spool = SubmissionSpool(
                    task, submission_file,
                    task.class_names(ensemble.classes, ensemble.num_classes))
            for item in ensemble.items(positions=shard(len(ensemble))):
                pred = ensemble.predict(item.probs, thr) if refiner is None \
                    else refiner.predict(ensemble, item, thr)
                if by_index:
                    pred = _apply_plan(pred, by_index)
                if out_dir is not None:
                    _write_prediction(
                        osp.join(out_dir, item.stem + '.png'), pred,
                        ensemble.decision)
                if spool is not None:
                    spool.add(*task.submission_record(
                        item, pred, ensemble.decision, class_index))
                num += 1
                advance_progress(bar, item.position, len(ensemble))
                del pred, item
        except Exception as err:  # noqa: B902 (raised on every rank)
            error = err
        sync_errors(error)
        num = sum_over_ranks(num)
        if spool is not None:
            spool.gather_to_main()
            if rank == 0:
                spool.close()
            else:
                spool.discard()
    except BaseException:
        if spool is not None:
            spool.discard()
        raise
    if world_size > 1:
        thr = run_on_main(lambda: thr)
        plan = run_on_main(lambda: plan)
    crf = None if refiner is None else refiner.summary(ensemble.classes)
    return dict(
        num_images=num,
        members=len(ensemble.members),
        thresholds=None if thr is None else f32_list(thr),
        postprocess=plan,
        crf=crf,
        out_dir=out_dir,
        submission=submission_file)
