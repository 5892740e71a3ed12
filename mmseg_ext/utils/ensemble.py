# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Merging the predictions of several models, one image at a time.

Each function takes the ``E`` members' outputs for ONE image, so an
ensemble over a test set streams and its peak memory does not grow with the
number of images. Probabilities travel compactly as uint8 (``p * 255``,
:func:`quantize_probs`) between the members and the merge.

- :func:`soft_vote`: weighted mean of probabilities; weights per member
  ``(E,)`` or per member and class ``(E, C)``.
- :func:`hard_vote`: a pixel is positive where at least ``k`` of the ``E``
  members say so.
- :func:`classwise_select`: for each class the probabilities of the member
  with the best validation score of that class (``(E, C)`` scores, e.g. the
  per-class Dice JSONs that testing writes).
- :class:`ThresholdSearch`: per-class threshold that maximises the mean
  per-image Dice on validation data, streaming.
"""
from typing import Optional, Sequence

import numpy as np

from .dice import dice_from_counts

STRATEGIES = ('soft', 'hard', 'classwise')


def quantize_probs(probs: np.ndarray) -> np.ndarray:
    """Probabilities in ``[0, 1]`` to uint8 ``round(255 p)`` (clipped).

    uint8 input is taken as already quantised and returned as is (not
    scaled again), so quantising twice is harmless.

    Args:
        probs (np.ndarray): Float probabilities (any shape) or uint8.

    Returns:
        np.ndarray: uint8 of the same shape; the error is at most
        ``1 / 510``.
    """
    probs = np.asarray(probs)
    if probs.dtype == np.uint8:
        return probs
    return np.clip(np.rint(probs.astype(np.float32) * 255), 0,
                   255).astype(np.uint8)


def dequantize_probs(q: np.ndarray) -> np.ndarray:
    """uint8 from :func:`quantize_probs` back to float32 probabilities."""
    q = np.asarray(q)
    if q.dtype == np.uint8:
        return q.astype(np.float32) / 255.0
    return q.astype(np.float32)


def _check_members(members: Sequence[np.ndarray]) -> tuple:
    """Return the common ``(C, H, W)`` shape of the members."""
    if len(members) == 0:
        raise ValueError('an ensemble needs at least one member, but got 0')
    shapes = {np.shape(m) for m in members}
    if len(shapes) != 1:
        raise ValueError('every member should give (C, H, W) outputs of the '
                         f'same shape, but got {sorted(shapes)}')
    shape = shapes.pop()
    if len(shape) != 3:
        raise ValueError('members should be (C, H, W) arrays, but got shape '
                         f'{shape}')
    return shape


def _scale(member: np.ndarray) -> float:
    """Factor that turns a member's values into probabilities."""
    return 1.0 / 255.0 if np.asarray(member).dtype == np.uint8 else 1.0


def soft_vote(members: Sequence[np.ndarray],
              weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Weighted mean of the members' ``(C, H, W)`` probabilities.

    Accumulates in one float32 array (no stacked copy of the members).

    Args:
        members (Sequence[np.ndarray]): ``E`` arrays ``(C, H, W)``, float in
            ``[0, 1]`` or uint8 from :func:`quantize_probs`.
        weights (np.ndarray, optional): ``(E,)`` or ``(E, C)`` non-negative
            weights, normalised per class. Defaults to None (equal).

    Returns:
        np.ndarray: ``(C, H, W)`` float32 probabilities.
    """
    c = _check_members(members)[0]
    e = len(members)
    if weights is None:
        w = np.full((e, c), 1.0 / e)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape == (e, ):
            w = np.repeat(w[:, None], c, axis=1)
        if w.shape != (e, c) or (w < 0).any():
            raise ValueError(f'`weights` should be (E,) = ({e},) or (E, C) = '
                             f'({e}, {c}) non-negative numbers, but got shape '
                             f'{w.shape}')
        total = w.sum(0)
        if (total == 0).any():
            raise ValueError('`weights` should give every class a positive '
                             f'total, but classes {np.flatnonzero(total == 0)}'
                             ' have weight 0 in every member')
        w = w / total
    out = np.zeros(np.shape(members[0]), dtype=np.float32)
    term = np.empty_like(out)
    for member, w_e in zip(members, w):
        factor = (w_e * _scale(member)).astype(np.float32)[:, None, None]
        np.multiply(member, factor, out=term, casting='unsafe')
        out += term
    return out


def hard_vote(members: Sequence[np.ndarray],
              k: Optional[int] = None,
              threshold=0.5) -> np.ndarray:
    """``k``-of-``E`` vote of the members' binarised predictions.

    Args:
        members (Sequence[np.ndarray]): ``E`` arrays ``(C, H, W)``: binary
            masks (bool) or probabilities (binarised at ``threshold``).
        k (int, optional): Votes needed; None for a majority
            (``E // 2 + 1``).
        threshold (float | Sequence[float]): Per-class or global threshold
            for probability members. Defaults to 0.5.

    Returns:
        np.ndarray: ``(C, H, W)`` uint8 masks.
    """
    e = len(members)
    k = e // 2 + 1 if k is None else k
    if not 1 <= k <= e:
        raise ValueError(f'`k` should be in [1, E={e}], but got {k}')
    votes = None
    thr = np.asarray(threshold, np.float32).reshape(-1, 1, 1)
    for m in members:
        m = np.asarray(m)
        positive = m if m.dtype == np.bool_ else dequantize_probs(m) > thr
        votes = positive.astype(np.uint16) if votes is None else \
            votes + positive
    return (votes >= k).astype(np.uint8)


def classwise_select(members: Sequence[np.ndarray],
                     scores: np.ndarray) -> np.ndarray:
    """Per class, the probabilities of the member with the best score.

    Args:
        members (Sequence[np.ndarray]): ``E`` arrays ``(C, H, W)``.
        scores (np.ndarray): ``(E, C)`` validation scores (higher is better).

    Returns:
        np.ndarray: ``(C, H, W)`` float32 probabilities.
    """
    shape = _check_members(members)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(members), shape[0]):
        raise ValueError(f'`scores` should be (E, C) = '
                         f'{(len(members), shape[0])}, but got {scores.shape}')
    best = scores.argmax(0)
    out = np.empty(shape, dtype=np.float32)
    for c, e in enumerate(best):
        out[c] = dequantize_probs(members[e][c])
    return out


class ThresholdSearch:
    """Streaming per-class threshold search for the mean per-image Dice.

    Feed ``(probs (C, H, W), gt (C, H, W))`` of validation images with
    :meth:`update`; :meth:`best` returns, per class, the threshold of the
    highest mean competition Dice (eps 1e-4, both empty → 1). Keeps only
    ``(T, C)`` sums, so memory does not grow with the number of images.

    Args:
        thresholds (Sequence[float]): Candidates. Defaults to 0.05 .. 0.95.
        ignore_index (int): Ignored gt value. Defaults to 255.
    """

    def __init__(self,
                 thresholds: Sequence[float] = tuple(
                     np.round(np.arange(0.05, 0.96, 0.05), 2)),
                 ignore_index: int = 255) -> None:
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        if self.thresholds.ndim != 1 or self.thresholds.size == 0:
            raise ValueError('`thresholds` should be a non-empty list of '
                             f'floats, but got {thresholds!r}')
        self.ignore_index = ignore_index
        self.sums = None
        self.num = 0

    def update(self, probs: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: ``probs`` float or uint8 (quantised), ``(C, H, W)``.

        uint8 probabilities are compared in integer space (``q >= q_min``,
        with ``q_min`` the smallest ``q`` whose ``q / 255`` exceeds the
        threshold), which decides exactly as thresholding the dequantised
        values does, without a float copy of the image.
        """
        probs = np.asarray(probs)
        gt = np.asarray(gt)
        if probs.shape != gt.shape or probs.ndim != 3:
            raise ValueError('probabilities and targets should both be '
                             f'(C, H, W), but got {probs.shape} and '
                             f'{gt.shape}')
        c = probs.shape[0]
        valid = (gt != self.ignore_index).reshape(c, -1)
        truth = (gt == 1).reshape(c, -1) & valid
        flat = probs.reshape(c, -1)
        n_truth = truth.sum(1)
        if probs.dtype == np.uint8:
            levels = np.arange(256, dtype=np.float32) / 255.0
        pred = np.empty(flat.shape, dtype=bool)
        dice = np.empty((self.thresholds.size, c))
        for i, t in enumerate(self.thresholds):
            if probs.dtype == np.uint8:
                passing = np.flatnonzero(levels > t)
                q_min = passing[0] if passing.size else 256
                np.greater_equal(flat, q_min, out=pred)
            else:
                np.greater(flat, t, out=pred)
            pred &= valid
            dice[i] = dice_from_counts(
                np.count_nonzero(pred & truth, axis=1),
                np.count_nonzero(pred, axis=1), n_truth)
        self.sums = dice if self.sums is None else self.sums + dice
        self.num += 1

    def mean_dice(self) -> np.ndarray:
        """``(T, C)`` mean Dice of every threshold and class."""
        if not self.num:
            raise ValueError('ThresholdSearch got no validation images')
        return self.sums / self.num

    def best(self):
        """``(thresholds (C,), dice (C,))`` of the best threshold per class.
        """
        mean = self.mean_dice()
        idx = mean.argmax(0)
        return self.thresholds[idx], mean[idx, np.arange(mean.shape[1])]
