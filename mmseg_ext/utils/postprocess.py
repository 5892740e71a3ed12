# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Connected-component post-processing of per-class binary masks.

Two operations, per class: keep the largest connected component (``'lcc'``,
e.g. a radius is one piece of bone) or remove components smaller than
``min_area`` pixels (``'min_area'``, e.g. speckle on satellite tiles). As in
nnU-Net ("nnU-Net: a self-configuring method for deep learning-based
biomedical image segmentation", Isensee et al., 2021), an operation is kept
only for the classes where it raises the validation Dice:
:func:`select_postprocess` measures every candidate on validation
predictions in one streaming pass (per-image counts only), and
:func:`apply_postprocess` applies the chosen plan.

Plans are JSON-able dicts ``{class_name: ['lcc'] | ['min_area', n]}``.
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .dice import DICE_EPS, dice_from_counts, image_counts


def _binary(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 ``{0, 1}`` of a mask of any dtype (nonzero is 1)."""
    return (np.asarray(mask) != 0).astype(np.uint8)


def _components(mask: np.ndarray) -> Tuple[int, np.ndarray, np.ndarray]:
    """8-connected components of a ``{0, 1}`` uint8 mask."""
    num, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask, connectivity=8)
    return num, labels, stats[:, cv2.CC_STAT_AREA]


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 8-connected component of a ``(H, W)`` mask.

    Returns:
        np.ndarray: ``(H, W)`` uint8 mask (empty stays empty).
    """
    mask = _binary(mask)
    num, labels, areas = _components(mask)
    if num <= 2:  # background + at most one component
        return mask
    largest = 1 + int(np.argmax(areas[1:]))
    return (labels == largest).astype(np.uint8)


def remove_small_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Clear the 8-connected components of fewer than ``min_area`` pixels.

    The one implementation, used by :class:`MultiLabelEncoderDecoder`'s
    ``test_cfg.min_area``, the ``['min_area', n]`` op of a plan and the
    building submission tool.

    Args:
        mask (np.ndarray): ``(H, W)`` binary mask (any integer/bool dtype;
            nonzero is positive).
        min_area (int): Components with fewer pixels are removed; ``<= 1``
            keeps everything.

    Returns:
        np.ndarray: ``(H, W)`` uint8 mask in ``{0, 1}``.
    """
    mask = _binary(mask)
    if min_area <= 1 or not mask.any():
        return mask
    num, labels, areas = _components(mask)
    keep = areas >= min_area
    keep[0] = False
    return keep[labels].astype(np.uint8)


def apply_op(mask: np.ndarray, op: Sequence) -> np.ndarray:
    """Apply one operation: ``['lcc']`` or ``['min_area', n]``."""
    if not op:
        return _binary(mask)
    if op[0] == 'lcc':
        return keep_largest_component(mask)
    if op[0] == 'min_area' and len(op) == 2:
        return remove_small_components(mask, int(op[1]))
    raise ValueError("a post-processing op should be ['lcc'] or "
                     f"['min_area', n], but got {op!r}")


def plan_by_index(plan: Dict[str, Sequence],
                  classes: Sequence[str]) -> Dict[int, Sequence]:
    """A plan keyed by class name (its JSON form) as ``{class index: op}``.

    Raises:
        ValueError: if the plan names a class not in ``classes``.
    """
    unknown = set(plan) - set(classes)
    if unknown:
        raise ValueError(f'the post-processing plan names classes '
                         f'{sorted(unknown)} that are not in {list(classes)}')
    return {c: plan[name] for c, name in enumerate(classes) if name in plan}


def apply_postprocess(masks: np.ndarray, plan: Dict[str, Sequence],
                      classes: Sequence[str]) -> np.ndarray:
    """Apply a plan to ``(C, H, W)`` masks; unlisted classes are unchanged.

    Raises:
        ValueError: if the plan names a class not in ``classes``.
    """
    ops = plan_by_index(plan, classes)
    out = np.array(masks, dtype=np.uint8, copy=True)
    for c, op in ops.items():
        out[c] = apply_op(out[c], op)
    return out


def dice_per_class(pred: np.ndarray,
                   gt: np.ndarray,
                   ignore_index: Optional[int] = 255) -> np.ndarray:
    """Competition Dice per class of one image: ``(2|X∩Y| + eps) /
    (|X| + |Y| + eps)``, eps 1e-4 (both empty → 1); ignored gt excluded.

    Args:
        pred (np.ndarray): ``(C, H, W)`` binary masks.
        gt (np.ndarray): ``(C, H, W)`` targets in ``{0, 1, ignore_index}``.

    Returns:
        np.ndarray: ``(C,)`` float64.
    """
    inter, x, y = image_counts(np.asarray(pred), np.asarray(gt), ignore_index)
    return dice_from_counts(inter, x, y, DICE_EPS, empty='one')


def postprocess_dice_sums(
        pairs: Iterable[Tuple[np.ndarray, np.ndarray]],
        classes: Sequence[str],
        candidates: Sequence[Sequence] = (('lcc', ), ('min_area', 64))
) -> Tuple[np.ndarray, int]:
    """Per-image Dice sums of "no op" and every candidate (first half of
    :func:`select_postprocess`; sums of several shards add up).

    Returns:
        tuple[np.ndarray, int]: ``(1 + len(candidates), C)`` Dice sums and
        the number of images.
    """
    candidates = [list(c) for c in candidates]
    sums = np.zeros((1 + len(candidates), len(classes)))
    num = 0
    for pred, gt in pairs:
        pred = np.asarray(pred)
        if pred.shape[0] != len(classes) or pred.shape != np.shape(gt):
            raise ValueError(
                f'prediction and target should both be (C={len(classes)}, '
                f'H, W), but got {pred.shape} and {np.shape(gt)}')
        sums[0] += dice_per_class(pred, gt)
        for i, op in enumerate(candidates, 1):
            processed = np.stack([apply_op(m, op) for m in pred])
            sums[i] += dice_per_class(processed, gt)
        num += 1
    return sums, num


def choose_postprocess(
        sums: np.ndarray,
        num: int,
        classes: Sequence[str],
        candidates: Sequence[Sequence] = (('lcc', ), ('min_area', 64)),
        min_gain: float = 0.0) -> Tuple[Dict[str, List], Dict]:
    """The plan and report of :func:`select_postprocess` from the sums of
    :func:`postprocess_dice_sums`."""
    candidates = [list(c) for c in candidates]
    names = ['none'] + [' '.join(map(str, c)) for c in candidates]
    if num == 0:
        raise ValueError('select_postprocess got no validation images')
    means = np.asarray(sums, np.float64) / num
    plan, report = {}, {}
    for c, name in enumerate(classes):
        report[name] = {n: float(means[i, c]) for i, n in enumerate(names)}
        best = 1 + int(np.argmax(means[1:, c])) if candidates else 0
        if candidates and means[best, c] > means[0, c] + min_gain:
            plan[name] = candidates[best - 1]
    return plan, report


def select_postprocess(
        pairs: Iterable[Tuple[np.ndarray, np.ndarray]],
        classes: Sequence[str],
        candidates: Sequence[Sequence] = (('lcc', ), ('min_area', 64)),
        min_gain: float = 0.0) -> Tuple[Dict[str, List], Dict]:
    """Choose, per class, the candidate op that raises validation Dice most.

    Streams over ``(pred (C, H, W), gt (C, H, W))`` pairs once, keeping
    per-image Dice sums for "no op" and every candidate (memory does not grow
    with the number of images). A class gets an op only if its mean Dice
    beats no-op by more than ``min_gain`` (nnU-Net's rule).

    Returns:
        tuple[dict, dict]: The plan ``{class: op}`` and a report
        ``{class: {'none': dice, 'lcc': dice, ...}}`` of mean Dice values.
    """
    sums, num = postprocess_dice_sums(pairs, classes, candidates)
    return choose_postprocess(sums, num, classes, candidates, min_gain)
