# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The merge engine: members, a strategy and a decision, image by image.

Per image, each member's ``(C, H, W)`` probabilities are quantised to uint8
right away (:func:`mmseg_ext.utils.ensemble.quantize_probs`), then merged by
a strategy of :mod:`mmseg_ext.utils.ensemble`:

- ``'soft'``: :func:`soft_vote`, weights ``(E,)`` or ``(E, C)``;
- ``'hard'``: :func:`vote_fraction`, the fraction of members voting for a
  class (a ``k``-of-``E`` vote is ``fraction > (k - 0.5) / E``, exactly
  :func:`hard_vote`);
- ``'classwise'``: :func:`classwise_select` with ``(E, C)`` validation
  scores (per-class JSONs of ``MultiLabelDiceMetric``/``PerClassIoUMetric``).

and decided either by per-class thresholds (``'threshold'``: multi-label
and binary members, ``(C, H, W)`` masks) or by ``'argmax'`` (softmax
members, an ``(H, W)`` label map).

The number of classes ``C``, their names and the task are resolved once,
when the :class:`Ensemble` is built (from the members' datasets, the saved
files' headers and the options), not while iterating.

Streaming: :class:`Ensemble` yields one image at a time; only that image's
``E`` uint8 maps and its merged ``(C, H, W)`` float32 map are alive, and the
merge runs over chunks of classes, so peak memory does not grow with the
number of images.
"""
import os.path as osp
from collections import Counter
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from mmseg_ext.utils.ensemble import (STRATEGIES, classwise_select,
                                      dequantize_probs, soft_vote)
from .formats import PROB_SUFFIX, check_member_weights, save_probs
from .members import ModelMember, ProbDirMember, _stem, sample_targets

__all__ = [
    'DECISIONS', 'vote_fraction', 'EnsembleItem', 'Ensemble',
    'MERGE_CHUNK_BYTES'
]

DECISIONS = ('threshold', 'argmax')
# Bytes of float32 member probabilities merged at once (per class chunk).
MERGE_CHUNK_BYTES = 256 << 20


def _realpath(path: str) -> str:
    return osp.normcase(osp.realpath(path))


def vote_fraction(members: Sequence[np.ndarray],
                  threshold: Union[float, Sequence[float]] = 0.5
                  ) -> np.ndarray:
    """Fraction of the ``E`` members voting for each class and pixel.

    A member votes where its probability is ``> threshold`` (as
    :func:`hard_vote`) or where its bool mask is True. ``fraction >
    (k - 0.5) / E`` is exactly ``hard_vote(members, k, threshold)``.

    Args:
        members (Sequence[np.ndarray]): ``E`` arrays ``(C, H, W)``: uint8
            or float probabilities, or bool masks.
        threshold (float | Sequence[float]): Global or ``(C,)``.

    Returns:
        np.ndarray: ``(C, H, W)`` float32 in ``{0, 1/E, ..., 1}``.
    """
    if len(members) == 0:
        raise ValueError('an ensemble needs at least one member, but got 0')
    thr = np.asarray(threshold, np.float32).reshape(-1, 1, 1)
    votes = None
    for m in members:
        m = np.asarray(m)
        positive = m if m.dtype == np.bool_ else dequantize_probs(m) > thr
        votes = positive.astype(np.uint16) if votes is None else \
            votes + positive
    return votes.astype(np.float32) / np.float32(len(members))


def _class_chunk(num_members: int, height: int, width: int) -> int:
    per_class = max(1, num_members * height * width * 4)
    return max(1, MERGE_CHUNK_BYTES // per_class)


class EnsembleItem:
    """One image of an :class:`Ensemble` pass.

    Attributes:
        stem (str): Image file stem (key of probability files and masks).
        name (str): Image file name (hand-bone ``image_name``).
        img_id (str): Building ``img_id`` (metainfo ``img_id`` if the
            member's pipeline keeps it, else the stem).
        probs (list[np.ndarray]): ``E`` uint8 ``(C, H, W)`` maps.
        targets (np.ndarray | None): ``(C, H, W)`` uint8 targets in
            ``{0, 1, 255}`` when asked for.
        position (int): Index of the image in the ensemble's full list
            (the order of a building submission across ranks).
        img_path (str | None): The image file of the first model member's
            sample (None with only probability folders; the dense CRF
            reads it).
    """

    def __init__(self,
                 stem,
                 name,
                 img_id,
                 probs,
                 targets=None,
                 position=0,
                 img_path=None):
        self.stem, self.name, self.img_id = stem, name, img_id
        self.probs, self.targets = probs, targets
        self.position = position
        self.img_path = img_path


class Ensemble:
    """Members, a merge strategy and a decision, streamed image by image.

    Members are given in order (model members first, then probability
    folders, as ``tools/ensemble.py`` builds them); ``weights`` and
    ``scores`` follow that order. Model members iterate their datasets in
    lockstep: the datasets must list the same images (same real paths) in
    the same order. Probability folders are looked up by image stem; with
    only folders, all must hold the same stems (sorted order).

    Args:
        members (list[ModelMember | ProbDirMember]): ``E >= 1`` members.
        strategy (str): ``'soft'``, ``'hard'`` or ``'classwise'``.
            Defaults to ``'soft'``.
        weights (np.ndarray, optional): ``(E,)``/``(E, C)`` soft weights.
        scores (np.ndarray, optional): ``(E, C)`` classwise scores
            (required for ``'classwise'``).
        k (int, optional): Votes needed for ``'hard'`` (None: majority).
        member_threshold (float): Binarisation of each member for
            ``'hard'`` with ``'threshold'`` decision. Defaults to 0.5.
        decision (str, optional): ``'threshold'`` or ``'argmax'``; None:
            ``'argmax'`` if every model member is a softmax segmentor,
            else ``'threshold'``.
        gt_dir (str, optional): Ground truth for probability-only members:
            ``{gt_dir}/{stem}{gt_suffix}``. Defaults to None.
        gt_format (str, optional): ``'packed'`` (packed multi-label PNG) or
            ``'label'`` (class-index PNG, 255 ignored). Defaults to the
            task's :attr:`~BaseSegTask.gt_format`, else ``'packed'``.
        gt_suffix (str): Defaults to ``'.png'``.
        classes (Sequence[str], optional): Class names (default: the first
            model member's dataset classes, else the task's when it has
            ``C`` of them, else indices).
        save_probs_dir (str, optional): Save each model member's uint8
            probabilities under ``{dir}/{i}_{config stem}/{stem}.npy``.
        img_suffix (str): Suffix of image names for probability-only
            members (hand-bone ``image_name``). Defaults to ``'.png'``.
        task (str | dict | BaseSegTask, optional): The task (ground truth,
            submission); default: that of the first model member's
            dataset, else None (no task-specific rule).

    Attributes:
        num_classes (int): ``C``, resolved here once.
        classes (list[str]): ``C`` names, resolved here once.
        task (BaseSegTask | None): The task.

    Raises:
        ValueError: on option mismatches (weights/scores count, image lists
            that disagree, ...), with the fix.
    """

    def __init__(self,
                 members: Sequence,
                 strategy: str = 'soft',
                 weights: Optional[np.ndarray] = None,
                 scores: Optional[np.ndarray] = None,
                 k: Optional[int] = None,
                 member_threshold: float = 0.5,
                 decision: Optional[str] = None,
                 gt_dir: Optional[str] = None,
                 gt_format: Optional[str] = None,
                 gt_suffix: str = '.png',
                 classes: Optional[Sequence[str]] = None,
                 save_probs_dir: Optional[str] = None,
                 img_suffix: str = '.png',
                 task=None) -> None:
        from mmseg_ext.tasks import build_task
        self.members = list(members)
        e = len(self.members)
        if e == 0:
            raise ValueError('an ensemble needs at least one member: give '
                             '--member CONFIG CHECKPOINT and/or --prob-dirs '
                             'DIR ...')
        if strategy not in STRATEGIES:
            raise ValueError(f'`strategy` should be one of {STRATEGIES}, but '
                             f'got {strategy!r}')
        self.strategy = strategy
        if weights is not None:
            if strategy != 'soft':
                raise ValueError('`weights` apply to the soft strategy only, '
                                 f'but the strategy is {strategy!r}')
            weights = check_member_weights(weights, e)
        self.weights = weights
        if strategy == 'classwise':
            if scores is None:
                raise ValueError('the classwise strategy needs `scores` '
                                 '(--scores, one per-class JSON per member)')
            scores = np.asarray(scores, np.float64)
            if scores.ndim != 2 or scores.shape[0] != e:
                raise ValueError(
                    f'`scores` should be (E, C) with E={e} members (one '
                    f'per-class JSON each), but got shape {scores.shape}')
        elif scores is not None:
            raise ValueError('`scores` apply to the classwise strategy only, '
                             f'but the strategy is {strategy!r}')
        self.scores = scores
        if k is not None:
            if strategy != 'hard':
                raise ValueError('`k` applies to the hard strategy only, but '
                                 f'the strategy is {strategy!r}')
            if isinstance(k, bool) or not isinstance(
                    k, (int, np.integer)) or not 1 <= k <= e:
                raise ValueError(f'`k` should be an int in [1, E={e}], but '
                                 f'got {k!r}')
        self.k = k
        self.member_threshold = float(member_threshold)

        modes = {m.mode for m in self.members if m.mode is not None}
        if decision is None:
            decision = 'argmax' if modes == {'softmax'} else 'threshold'
            if 'softmax' in modes and len(modes) > 1:
                raise ValueError(
                    'model members mix softmax and sigmoid (binary/'
                    f'multi-label) segmentors {sorted(modes)}; choose the '
                    'decision explicitly (--decision threshold|argmax)')
        if decision not in DECISIONS:
            raise ValueError(f'`decision` should be one of {DECISIONS}, but '
                             f'got {decision!r}')
        self.decision = decision
        self.model_members = [
            m for m in self.members if isinstance(m, ModelMember)
        ]
        if task is None and self.model_members:
            task = self.model_members[0].task
        self.task = None if task is None else build_task(task)
        if gt_format is None:
            gt_format = self.task.gt_format if self.task else 'packed'
        if gt_format not in ('packed', 'label'):
            raise ValueError("`gt_format` should be 'packed' or 'label', but "
                             f'got {gt_format!r}')
        if gt_dir is not None and not osp.isdir(gt_dir):
            raise FileNotFoundError(f'ground-truth folder {gt_dir!r} does not '
                                    'exist')
        self.gt_dir, self.gt_format, self.gt_suffix = (gt_dir, gt_format,
                                                       gt_suffix)
        self.save_probs_dir = save_probs_dir
        self.img_suffix = img_suffix
        self.index = self._check_image_lists()
        self.num_classes = self._resolve_num_classes()
        self.classes = self._resolve_classes(classes)
        self._save_dirs = {}
        if save_probs_dir is not None:
            for i, m in enumerate(self.members):
                if isinstance(m, ModelMember):
                    self._save_dirs[i] = osp.join(
                        save_probs_dir, f'{i}_{_stem(m.config)}')

    # ---------------------------------------------------------- images
    def _check_image_lists(self) -> List[Tuple[str, Optional[int]]]:
        """``(stem, dataset index)`` of every image, checked across members.
        """
        models = self.model_members
        folders = [m for m in self.members if isinstance(m, ProbDirMember)]
        if models:
            ref = models[0]
            paths = [ref.img_path(i) for i in range(len(ref))]
            for other in models[1:]:
                if len(other) != len(ref):
                    raise ValueError(
                        f'members list different images: {ref.name} has '
                        f'{len(ref)} and {other.name} has {len(other)}; all '
                        'member configs should use the same dataset '
                        '(--cfg-options can set the data root)')
                for i, path in enumerate(paths):
                    if _realpath(other.img_path(i)) != _realpath(path):
                        raise ValueError(
                            f'members list different images at index {i}: '
                            f'{ref.name} has {path!r} and {other.name} has '
                            f'{other.img_path(i)!r}; the member datasets '
                            'should list the same images in the same order')
            stems = [_stem(p) for p in paths]
            index = list(zip(stems, range(len(paths))))
        else:
            stems = folders[0].stems
            index = [(s, None) for s in stems]
        dup = sorted(s for s, n in Counter(stems).items() if n > 1)
        if dup and (folders or self.save_probs_dir):
            raise ValueError(f'image stems {dup[:5]} repeat in the dataset; '
                             'probability files are keyed by stem')
        wanted = set(stems)
        for folder in folders:
            have = set(folder.stems)
            missing = sorted(wanted - have)
            extra = sorted(have - wanted) if not models else []
            if missing or extra:
                ref_name = models[0].name if models else folders[0].name
                raise ValueError(
                    f'members list different images: {folder.name} lacks '
                    f'{len(missing)} of {ref_name}\'s images {missing[:5]} '
                    f'and has {len(extra)} others {extra[:5]}; every member '
                    'needs one probability file per image')
        return index

    def __len__(self) -> int:
        return len(self.index)

    def _targets_from_dir(self, stem: str, num_classes: int) -> np.ndarray:
        from mmseg_ext.tasks import BaseSegTask
        path = osp.join(self.gt_dir, stem + self.gt_suffix)
        reader = self.task or BaseSegTask()
        return reader.read_targets(path, num_classes, self.gt_format)

    def items(
            self,
            with_targets: bool = False,
            positions: Optional[Sequence[int]] = None
    ) -> Iterator[EnsembleItem]:
        """Yield one :class:`EnsembleItem` per image, in order.

        Args:
            with_targets (bool): Also load the ground truth (from the first
                model member's sample, else ``gt_dir``).
            positions (Sequence[int], optional): Only these images (indices
                into the full list, e.g. a rank's shard). Defaults to all.
        """
        if with_targets and not self.model_members and self.gt_dir is None:
            raise ValueError('the validation split with only probability '
                             'folders needs the ground truth: --gt-dir DIR '
                             '(and --gt-format packed|label)')
        if positions is None:
            positions = range(len(self.index))
        for position in positions:
            stem, index = self.index[position]
            probs, first_sample, name, img_id = [], None, None, stem
            img_path = None
            for i, member in enumerate(self.members):
                if isinstance(member, ModelMember):
                    p, sample = member.predict(index)
                    if first_sample is None:
                        first_sample = sample
                    else:
                        del sample
                    if i in self._save_dirs:
                        save_probs(
                            osp.join(self._save_dirs[i], stem + PROB_SUFFIX),
                            p)
                else:
                    p = member.load(stem)
                ref = probs[0].shape if probs else \
                    (self.num_classes, ) + p.shape[1:]
                if p.shape != ref:
                    raise ValueError(
                        f'{stem}: every member should give (C, H, W) '
                        f'probabilities of one shape, but '
                        f'{self.members[0].name} gave {ref} and '
                        f'{member.name} gave {p.shape}')
                probs.append(p)
            num_classes = self.num_classes
            if first_sample is not None:
                meta = first_sample.metainfo
                img_path = meta.get('img_path')
                name = osp.basename(meta.get('img_path', stem))
                img_id = str(meta.get('img_id', stem))
            else:
                name = stem + self.img_suffix
            targets = None
            if with_targets:
                targets = sample_targets(
                    first_sample, num_classes,
                    self.model_members[0].mode) \
                    if first_sample is not None else \
                    self._targets_from_dir(stem, num_classes)
                if targets.shape != probs[0].shape:
                    raise ValueError(
                        f'{stem}: the ground truth is {targets.shape} but '
                        f'the probabilities are {probs[0].shape}; they '
                        'should both be (C, H, W) at the original size')
            del first_sample
            yield EnsembleItem(stem, name, img_id, probs, targets, position,
                               img_path)

    def _resolve_num_classes(self) -> int:
        """``C`` of every member (model outputs, saved file headers),
        checked against each other and the weight / score tables."""
        counts = [m.num_classes for m in self.members]
        for m, c in zip(self.members, counts):
            if c != counts[0]:
                raise ValueError(
                    'every member should give (C, H, W) probabilities of one '
                    f'shape, but {self.members[0].name} gives C={counts[0]} '
                    f'and {m.name} gives C={c}')
        num_classes = counts[0]
        for what, table in (('weights', self.weights), ('scores',
                                                        self.scores)):
            if table is not None and table.ndim == 2 and \
                    table.shape[1] != num_classes:
                raise ValueError(
                    f'`{what}` is an (E, C) = {table.shape} table, but the '
                    f'members predict C={num_classes} classes')
        return num_classes

    def _resolve_classes(self, classes: Optional[Sequence[str]]
                         ) -> List[str]:
        """``C`` names: ``classes``, the first model member's dataset
        classes (binary: its foreground), the task's, or indices."""
        num_classes = self.num_classes
        if classes:
            if len(classes) != num_classes:
                raise ValueError(f'`classes` has {len(classes)} names, but '
                                 f'the members predict C={num_classes}')
            return list(classes)
        names = []
        if self.model_members:
            names = self.model_members[0].classes
            if len(names) == 2 and num_classes == 1:
                names = names[1:]  # binary: background, foreground
        if len(names) != num_classes:
            names = self.task.class_names([], num_classes) if self.task \
                else [str(c) for c in range(num_classes)]
        return list(names)

    @property
    def member_names(self) -> List[str]:
        return [m.name for m in self.members]

    # ----------------------------------------------------------- merging
    def _merged_chunks(self, probs: Sequence[np.ndarray]
                       ) -> Iterator[Tuple[slice, np.ndarray]]:
        """``(class slice, merged float32 chunk)`` over chunks of classes.

        The library functions on a slice of classes give the same values as
        on all classes (they work per class), so merging chunk by chunk
        bounds the float32 temporaries (``E x chunk x H x W``).
        """
        e = len(probs)
        c, h, w = probs[0].shape
        chunk = _class_chunk(e, h, w)
        labels = None
        if self.strategy == 'hard' and self.decision == 'argmax':
            labels = [p.argmax(0) for p in probs]
        for c0 in range(0, c, chunk):
            sl = slice(c0, min(c, c0 + chunk))
            if self.strategy == 'soft':
                w_ = self.weights
                if w_ is not None and w_.ndim == 2:
                    w_ = w_[:, sl]
                yield sl, soft_vote([p[sl] for p in probs], w_)
            elif self.strategy == 'classwise':
                yield sl, classwise_select([p[sl] for p in probs],
                                           self.scores[:, sl])
            elif labels is not None:
                ids = np.arange(sl.start, sl.stop).reshape(-1, 1, 1)
                yield sl, vote_fraction([lab[None] == ids for lab in labels])
            else:
                yield sl, vote_fraction([p[sl] for p in probs],
                                        self.member_threshold)

    def merge(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        """Merge one image's ``E`` uint8 maps into ``(C, H, W)`` float32.

        ``'soft'``/``'classwise'``: probabilities; ``'hard'``: the vote
        fraction (of the members' argmax with the ``'argmax'`` decision).
        """
        out = np.empty(probs[0].shape, np.float32)
        for sl, part in self._merged_chunks(probs):
            out[sl] = part
        return out

    def predict(self, probs: Sequence[np.ndarray],
                thresholds: Optional[np.ndarray] = None) -> np.ndarray:
        """:meth:`decide` of :meth:`merge`, without the full float32 map
        for the ``'threshold'`` decision (each chunk is thresholded as it
        is merged)."""
        if self.decision == 'argmax':
            return self.decide(self.merge(probs))
        thr = self.default_thresholds() if thresholds is None else \
            np.asarray(thresholds, np.float32)
        if thr.shape != (probs[0].shape[0], ):
            raise ValueError(f'`thresholds` should be (C,) = '
                             f'({probs[0].shape[0]},), but got {thr.shape}')
        out = np.empty(probs[0].shape, np.uint8)
        for sl, part in self._merged_chunks(probs):
            np.greater(part, thr[sl].reshape(-1, 1, 1), out=out[sl],
                       casting='unsafe')
        return out

    def default_thresholds(self) -> np.ndarray:
        """``(C,)`` thresholds without a search: ``(k - 0.5) / E`` for
        ``'hard'`` (majority without ``k``), else 0.5."""
        c = self.num_classes
        if self.strategy == 'hard':
            e = len(self.members)
            k = e // 2 + 1 if self.k is None else self.k
            return np.full(c, (k - 0.5) / e, np.float32)
        return np.full(c, 0.5, np.float32)

    def decide(self, merged: np.ndarray,
               thresholds: Optional[np.ndarray] = None) -> np.ndarray:
        """``(C, H, W)`` uint8 masks (``merged > thresholds``) or, with the
        ``'argmax'`` decision, the ``(H, W)`` uint8 label map."""
        if self.decision == 'argmax':
            if merged.shape[0] > 256:
                raise ValueError('the argmax decision writes uint8 label '
                                 'maps (C <= 256), but C='
                                 f'{merged.shape[0]}')
            return merged.argmax(0).astype(np.uint8)
        thr = self.default_thresholds() if thresholds is None else \
            np.asarray(thresholds, np.float32)
        return (merged > thr.reshape(-1, 1, 1)).astype(np.uint8)
