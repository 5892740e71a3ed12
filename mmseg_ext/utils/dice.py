# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Dice and IoU from pixel counts: the one place for the empty-case rule.

Every score of the package is computed from per-image, per-class counts
``(|X & Y|, |X|, |Y|)`` (``X`` predicted, ``Y`` true pixels, ignored pixels
excluded from both): :func:`image_counts` gives them, and
:func:`dice_from_counts` / :func:`iou_from_counts` turn them into scores.
Counts (not masks) are what ranks, shards and caches keep and add up.

The two competitions differ only in the case ``|X| = |Y| = 0``:

- hand bone (and :class:`MultiLabelDiceMetric`): smoothed
  ``(2 |X & Y| + eps) / (|X| + |Y| + eps)`` with ``eps = 1e-4``, so an
  empty class predicted empty scores 1 (``empty='one'``);
- buildings (:class:`BuildingDiceMetric`): plain ``2 |X & Y| / (|X| + |Y|)``
  (``eps=0``) and an image with both empty is **skipped** when averaging
  (``empty='skip'``: NaN, averaged with ``np.nanmean``).

In both, an empty truth with any predicted pixel scores (about) 0.
"""
from typing import Optional, Union

import numpy as np

DICE_EPS = 1e-4
EMPTY_RULES = ('one', 'skip')

ArrayLike = Union[np.ndarray, float, int]


def _check_rule(eps: float, empty: str) -> None:
    if empty not in EMPTY_RULES:
        raise ValueError(f'`empty` should be one of {EMPTY_RULES}, but got '
                         f'{empty!r}')
    if isinstance(eps, bool) or not isinstance(
            eps, (int, float, np.floating)) or eps < 0:
        raise ValueError(f'`eps` should be a number >= 0, but got {eps!r}')


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith('torch') and hasattr(x, 'dtype')


def _as_float(*values):
    """float64 numpy arrays, or float tensors (kept on their device and in
    their float dtype; integer tensors become float32) if any is a tensor.
    """
    if any(_is_tensor(v) for v in values):
        import torch
        like = next(v for v in values if _is_tensor(v))
        dtype = like.dtype if like.is_floating_point() else torch.float32
        return [torch.as_tensor(v, dtype=dtype, device=like.device)
                for v in values]
    return [np.asarray(v, dtype=np.float64) for v in values]


def _ratio(num, den, empty_mask, eps: float, empty: str):
    """``(num + eps) / (den + eps)``; ``empty_mask`` entries by the rule."""
    fill = 1.0 if empty == 'one' else np.nan
    exact = empty == 'one' and eps > 0  # eps / eps = 1 on the empty cases
    if _is_tensor(num):
        out = (num + eps) / (den + eps)
        return out if exact else out.masked_fill(empty_mask, fill)
    out = np.full(np.broadcast(num, den).shape, fill, dtype=np.float64)
    # 'one' with eps > 0 divides everywhere: exactly the smoothed formula.
    np.divide(num + eps, den + eps, out=out,
              where=True if exact else ~empty_mask)
    return out[()]  # a float64 scalar for scalar counts


def dice_from_counts(inter: ArrayLike,
                     pred_sum: ArrayLike,
                     gt_sum: ArrayLike,
                     eps: float = DICE_EPS,
                     empty: str = 'one') -> np.ndarray:
    """Dice ``(2 |X & Y| + eps) / (|X| + |Y| + eps)`` from counts.

    Args:
        inter (np.ndarray | Tensor | int): ``|X & Y|`` (any shape,
            broadcast). With a tensor among the counts the result is a
            tensor on its device (its float dtype; float32 for integer
            counts), so training logs need no host copy.
        pred_sum (np.ndarray | Tensor | int): ``|X|``.
        gt_sum (np.ndarray | Tensor | int): ``|Y|``.
        eps (float): Smoothing ``>= 0``. Defaults to 1e-4 (the hand-bone
            competition's); the building competition uses 0.
        empty (str): Score where ``|X| = |Y| = 0``: ``'one'`` (1.0) or
            ``'skip'`` (NaN, to leave out of a ``np.nanmean``).
            Defaults to ``'one'``.

    Returns:
        np.ndarray | np.float64 | Tensor: float64 Dice of the broadcast
        shape (a scalar for scalar counts), or a tensor (see ``inter``).

    Raises:
        ValueError: on a bad ``eps`` or ``empty``.

    Examples:
        >>> float(dice_from_counts(0, 0, 0))
        1.0
        >>> dice_from_counts([3, 0], [4, 0], [4, 0], eps=0, empty='skip')
        array([0.75,  nan])
    """
    _check_rule(eps, empty)
    inter, pred_sum, gt_sum = _as_float(inter, pred_sum, gt_sum)
    total = pred_sum + gt_sum
    return _ratio(2 * inter, total, total == 0, eps, empty)


def iou_from_counts(inter: ArrayLike,
                    pred_sum: ArrayLike,
                    gt_sum: ArrayLike,
                    eps: float = DICE_EPS,
                    empty: str = 'one') -> np.ndarray:
    """IoU ``(|X & Y| + eps) / (|X | Y| + eps)`` from counts.

    Args and Returns as :func:`dice_from_counts` (``|X | Y| = |X| + |Y| -
    |X & Y|``).
    """
    _check_rule(eps, empty)
    inter, pred_sum, gt_sum = _as_float(inter, pred_sum, gt_sum)
    total = pred_sum + gt_sum
    return _ratio(inter, total - inter, total == 0, eps, empty)


def image_counts(pred, targets, ignore_index: Optional[int] = 255):
    """Per-class counts ``|X & Y|``, ``|X|``, ``|Y|`` of one image.

    Works on numpy arrays and on torch tensors (counted on their device;
    only the ``(3, C)`` result comes back).

    Args:
        pred (np.ndarray | Tensor): ``(C, ...)`` binary masks (nonzero is
            positive), e.g. ``(C, H, W)``.
        targets (np.ndarray | Tensor): Same shape, in
            ``{0, 1, ignore_index}`` (``== 1`` is positive).
        ignore_index (int | None): Ignored target value; those class-pixels
            count in neither ``X`` nor ``Y``. None ignores nothing.
            Defaults to 255.

    Returns:
        np.ndarray: ``(3, C)`` int64.

    Raises:
        ValueError: if the shapes differ or are not ``(C, ...)``.

    Examples:
        >>> pred = np.array([[[1, 1], [0, 0]]])
        >>> gt = np.array([[[1, 0], [1, 255]]])
        >>> image_counts(pred, gt).tolist()
        [[1], [2], [2]]
    """
    if tuple(pred.shape) != tuple(targets.shape) or len(pred.shape) < 2:
        raise ValueError('`pred` and `targets` should both have shape '
                         f'(C, H, W), but got {tuple(pred.shape)} and '
                         f'{tuple(targets.shape)}')
    is_numpy = isinstance(pred, np.ndarray) and isinstance(
        targets, np.ndarray)
    if is_numpy:
        pred, targets = np.asarray(pred), np.asarray(targets)
    else:
        import torch
        pred = torch.as_tensor(pred)
        targets = torch.as_tensor(targets, device=pred.device)
    c = pred.shape[0]
    x = pred != 0
    y = targets == 1
    if ignore_index is not None:
        valid = targets != ignore_index
        x = x & valid
        y = y & valid
    if is_numpy:
        return np.stack([
            np.count_nonzero((x & y).reshape(c, -1), axis=1),
            np.count_nonzero(x.reshape(c, -1), axis=1),
            np.count_nonzero(y.reshape(c, -1), axis=1)
        ]).astype(np.int64)
    counts = torch.stack([(x & y).reshape(c, -1).sum(1),
                          x.reshape(c, -1).sum(1),
                          y.reshape(c, -1).sum(1)])
    return counts.cpu().numpy().astype(np.int64)


__all__ = [
    'DICE_EPS', 'EMPTY_RULES', 'dice_from_counts', 'iou_from_counts',
    'image_counts'
]
