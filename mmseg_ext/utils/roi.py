# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Region-of-interest helpers for a specialist model (pure functions).

A *specialist* segments a crowded region (e.g. the 8 carpal bones of a hand
X-ray) from a crop around it, at a higher effective resolution than the
general model. These helpers find the region from masks, crop it and paste
the specialist's masks back:

- boxes are ``(x1, y1, x2, y2)`` ints, ``x2``/``y2`` **exclusive**, so the
  crop is ``array[y1:y2, x1:x2]`` and its size ``(y2 - y1, x2 - x1)``;
- :func:`roi_from_masks`: the box of the union of some classes, widened by
  a margin and to a minimum size, clipped to the image;
- :func:`crop_roi`: the crop of an ``(H, W[, K])`` image or a ``(C, H, W)``
  mask stack;
- :func:`paste_roi`: put a crop's masks of some classes back.
"""
import numbers
from typing import Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    'CARPAL_CLASS_IDS', 'roi_from_masks', 'jitter_box', 'crop_roi',
    'paste_roi'
]

#: Indices of Trapezium, Trapezoid, Capitate, Hamate, Scaphoid, Lunate,
#: Triquetrum and Pisiform in ``HAND_BONE_CLASSES``.
CARPAL_CLASS_IDS = tuple(range(19, 27))

Box = Tuple[int, int, int, int]


def _check_class_ids(class_ids, num_classes: int) -> list:
    if isinstance(class_ids, (numbers.Integral, str)) or not isinstance(
            class_ids, Sequence) or len(class_ids) == 0:
        raise ValueError('`class_ids` should be a non-empty sequence of class '
                         f'indices, but got {class_ids!r}')
    ids = list(class_ids)
    for k in ids:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or \
                not 0 <= k < num_classes:
            raise ValueError(
                f'`class_ids` should hold ints in [0, {num_classes}), but got '
                f'{class_ids!r}')
    if len(set(ids)) != len(ids):
        raise ValueError(f'`class_ids` should not repeat a class, but got '
                         f'{class_ids!r}')
    return [int(k) for k in ids]


def _check_box(box, height: int, width: int) -> Box:
    try:
        x1, y1, x2, y2 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError('`box` should be (x1, y1, x2, y2) ints, but got '
                         f'{box!r}') from None
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(
            f'`box` should satisfy 0 <= x1 < x2 <= W={width} and 0 <= y1 < '
            f'y2 <= H={height}, but got {box!r}')
    return x1, y1, x2, y2


def _margin_px(margin: Union[int, float], side: int, name: str) -> int:
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or \
            margin < 0:
        raise ValueError(f'`{name}` should be a fraction in [0, 1) (float) or '
                         f'pixels (int >= 0), but got {margin!r}')
    if isinstance(margin, numbers.Integral):
        return int(margin)
    if margin >= 1:
        raise ValueError(f'`{name}` as a float is a fraction of the box side '
                         f'and should be in [0, 1), but got {margin!r}; give '
                         'an int for pixels')
    return int(np.floor(margin * side + 0.5))  # half up


def _grow(lo: int, hi: int, size: int, limit: int) -> Tuple[int, int]:
    """Widen ``[lo, hi)`` around its centre to ``size``; stay in
    ``[0, limit)`` (shift inward, then clip)."""
    if hi - lo >= size:
        return lo, hi
    size = min(size, limit)
    extra = size - (hi - lo)
    lo -= extra // 2
    hi = lo + size
    if lo < 0:
        lo, hi = 0, size
    if hi > limit:
        lo, hi = limit - size, limit
    return lo, hi


def roi_from_masks(masks: np.ndarray,
                   class_ids: Sequence[int],
                   margin: Union[int, float] = 0.1,
                   min_size: int = 0) -> Optional[Box]:
    """The box around the union of some classes' masks.

    The tight box of every pixel where one of ``class_ids`` is set is
    widened on each side by ``margin`` (a float: that fraction of the box's
    width on the left and right and of its height on top and bottom; an
    int: pixels), then each side to at least ``min_size`` pixels (around
    its centre, shifted inward at the image border), and clipped to the
    image.

    Args:
        masks (np.ndarray): ``(C, H, W)`` masks: bool, or ints where ``1``
            is set (``0`` and an ignore value such as 255 are not).
        class_ids (Sequence[int]): The classes of the region.
        margin (int | float): Fraction of the box side (float in
            ``[0, 1)``) or pixels (int). Defaults to 0.1.
        min_size (int): Minimum box side in pixels (at most the image
            side). Defaults to 0.

    Returns:
        tuple[int, int, int, int] or None: ``(x1, y1, x2, y2)``, exclusive
        ends; None if none of the classes has a pixel.

    Raises:
        ValueError: for a bad shape, class index, margin or size.

    Examples:
        >>> masks = np.zeros((3, 10, 20), bool)
        >>> masks[1, 2:6, 4:8] = True
        >>> roi_from_masks(masks, [1], margin=1)
        (3, 1, 9, 7)
        >>> roi_from_masks(masks, [1], margin=0.25)
        (3, 1, 9, 7)
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError('`masks` should have shape (C, H, W), but got '
                         f'{masks.shape}')
    num_classes, height, width = masks.shape
    ids = _check_class_ids(class_ids, num_classes)
    if isinstance(min_size, bool) or not isinstance(
            min_size, numbers.Integral) or min_size < 0:
        raise ValueError('`min_size` should be an int >= 0 (pixels), but got '
                         f'{min_size!r}')
    sel = masks[ids]
    union = sel.any(0) if sel.dtype == np.bool_ else (sel == 1).any(0)
    rows = np.flatnonzero(union.any(1))
    if rows.size == 0:
        _margin_px(margin, 1, 'margin')  # validate even when empty
        return None
    cols = np.flatnonzero(union.any(0))
    y1, y2 = int(rows[0]), int(rows[-1]) + 1
    x1, x2 = int(cols[0]), int(cols[-1]) + 1
    mx = _margin_px(margin, x2 - x1, 'margin')
    my = _margin_px(margin, y2 - y1, 'margin')
    x1, x2 = max(0, x1 - mx), min(width, x2 + mx)
    y1, y2 = max(0, y1 - my), min(height, y2 + my)
    x1, x2 = _grow(x1, x2, min_size, width)
    y1, y2 = _grow(y1, y2, min_size, height)
    return x1, y1, x2, y2


def jitter_box(box: Sequence[int],
               shape: Tuple[int, int],
               jitter: float,
               rng: np.random.Generator,
               keep: Optional[Sequence[int]] = None) -> Box:
    """Move each side of ``box`` by up to ``jitter`` times its side length.

    For training crops that do not always sit the same way around the
    region (the box at inference comes from a prediction, not the ground
    truth). Each side moves by ``uniform(-jitter, jitter) * side``, never
    inside ``keep`` (e.g. the tight box, so the region stays whole), and
    the result is clipped to the image.

    Args:
        box (Sequence[int]): ``(x1, y1, x2, y2)``.
        shape (tuple[int, int]): Image ``(H, W)``.
        jitter (float): Fraction in ``[0, 1)``; 0 returns ``box``.
        rng (np.random.Generator): Random source.
        keep (Sequence[int], optional): A box the result must contain.
            Defaults to None.

    Returns:
        tuple[int, int, int, int]: The jittered box.
    """
    height, width = shape
    x1, y1, x2, y2 = _check_box(box, height, width)
    if isinstance(jitter, bool) or not isinstance(jitter, numbers.Real) or \
            not 0 <= jitter < 1:
        raise ValueError('`jitter` should be a fraction in [0, 1), but got '
                         f'{jitter!r}')
    if jitter == 0:
        return x1, y1, x2, y2
    w, h = x2 - x1, y2 - y1
    d = rng.uniform(-jitter, jitter, 4) * np.array([w, h, w, h])
    nx1, ny1 = int(round(x1 + d[0])), int(round(y1 + d[1]))
    nx2, ny2 = int(round(x2 + d[2])), int(round(y2 + d[3]))
    if keep is not None:
        kx1, ky1, kx2, ky2 = _check_box(keep, height, width)
        nx1, ny1 = min(nx1, kx1), min(ny1, ky1)
        nx2, ny2 = max(nx2, kx2), max(ny2, ky2)
    nx1, ny1 = max(0, nx1), max(0, ny1)
    nx2, ny2 = min(width, max(nx2, nx1 + 1)), min(height, max(ny2, ny1 + 1))
    nx1, ny1 = min(nx1, nx2 - 1), min(ny1, ny2 - 1)
    return nx1, ny1, nx2, ny2


def crop_roi(array: np.ndarray,
             box: Sequence[int],
             channels_first: bool = False) -> np.ndarray:
    """The ``box`` crop of an image or a mask stack (a view, not a copy).

    Args:
        array (np.ndarray): ``(H, W)`` or ``(H, W, K)`` (image, packed
            label), or ``(C, H, W)`` masks with ``channels_first=True``.
        box (Sequence[int]): ``(x1, y1, x2, y2)`` inside the image.
        channels_first (bool): The last two axes are ``(H, W)``.
            Defaults to False.

    Returns:
        np.ndarray: ``array[y1:y2, x1:x2]`` (``array[:, y1:y2, x1:x2]``).

    Raises:
        ValueError: if the box is not inside the image.
    """
    array = np.asarray(array)
    if channels_first:
        if array.ndim != 3:
            raise ValueError('`array` should have shape (C, H, W) with '
                             f'channels_first=True, but got {array.shape}')
        height, width = array.shape[1:]
    else:
        if array.ndim not in (2, 3):
            raise ValueError('`array` should have shape (H, W) or (H, W, K), '
                             f'but got {array.shape}')
        height, width = array.shape[:2]
    x1, y1, x2, y2 = _check_box(box, height, width)
    if channels_first:
        return array[:, y1:y2, x1:x2]
    return array[y1:y2, x1:x2]


def paste_roi(full_masks: np.ndarray,
              roi_masks: np.ndarray,
              box: Sequence[int],
              class_ids: Sequence[int],
              outside: str = 'keep') -> np.ndarray:
    """Replace some classes of ``full_masks`` inside ``box`` by a crop's.

    Classes not in ``class_ids`` are never changed. For the classes in
    ``class_ids``, the pixels inside ``box`` become those of ``roi_masks``;
    outside the box the full-image prediction is kept (``outside='keep'``,
    the default) or cleared (``'clear'``). ``'keep'`` is the default because
    it never loses a detection: when the box comes from
    :func:`roi_from_masks` of the same full prediction, every predicted
    pixel of those classes lies inside it, so both choices give the same
    result there; with any other box (a fixed one, another model's),
    ``'keep'`` leaves the general model's pixels outside it.

    Args:
        full_masks (np.ndarray): ``(C, H, W)`` masks (not changed).
        roi_masks (np.ndarray): ``(C', h, w)`` masks of the crop,
            ``(h, w) = (y2 - y1, x2 - x1)``: either one mask per entry of
            ``class_ids`` (``C' = len(class_ids)``, in that order) or all
            ``C`` classes (``C' = C``; the ``class_ids`` rows are used).
        box (Sequence[int]): ``(x1, y1, x2, y2)``, exclusive ends.
        class_ids (Sequence[int]): Classes to replace.
        outside (str): ``'keep'`` or ``'clear'``. Defaults to ``'keep'``.

    Returns:
        np.ndarray: A new ``(C, H, W)`` array of ``full_masks``' dtype.

    Raises:
        ValueError: for bad shapes, box, classes or ``outside``.

    Examples:
        >>> full = np.zeros((3, 4, 4), np.uint8)
        >>> out = paste_roi(full, np.ones((1, 2, 2), np.uint8), (1, 1, 3, 3),
        ...                 [2])
        >>> int(out[2].sum()), int(out[:2].sum())
        (4, 0)
    """
    full_masks = np.asarray(full_masks)
    roi_masks = np.asarray(roi_masks)
    if full_masks.ndim != 3:
        raise ValueError('`full_masks` should have shape (C, H, W), but got '
                         f'{full_masks.shape}')
    if outside not in ('keep', 'clear'):
        raise ValueError("`outside` should be 'keep' or 'clear', but got "
                         f'{outside!r}')
    num_classes, height, width = full_masks.shape
    ids = _check_class_ids(class_ids, num_classes)
    x1, y1, x2, y2 = _check_box(box, height, width)
    size = (y2 - y1, x2 - x1)
    if roi_masks.ndim != 3 or roi_masks.shape[1:] != size or \
            roi_masks.shape[0] not in (len(ids), num_classes):
        raise ValueError(
            f'`roi_masks` should have shape (C\', {size[0]}, {size[1]}) with '
            f"C' = len(class_ids) = {len(ids)} or C = {num_classes}, but got "
            f'{roi_masks.shape}')
    if roi_masks.shape[0] != len(ids):
        roi_masks = roi_masks[ids]
    out = full_masks.copy()
    if outside == 'clear':
        out[ids] = 0
    out[ids, y1:y2, x1:x2] = roi_masks.astype(out.dtype, copy=False)
    return out
