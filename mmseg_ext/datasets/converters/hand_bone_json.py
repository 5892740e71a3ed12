# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Reading and validating one hand-bone polygon JSON (``outputs_json``).

Split from :mod:`.hand_bone` (the converter) so the format's validation
layer is one module: structure, label type, finite numeric points in a sane
range, at least 3 points, non-zero area, self-intersection reported.
:mod:`.hand_bone` re-exports every name.
"""
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmseg_ext.utils.errors import InputError, short_repr
from ..hand_bone import HAND_BONE_CLASSES

__all__ = [
    'HandBoneAnnotationError', 'read_hand_bone_json', 'find_self_intersection',
    'MAX_COORD'
]

# Largest |x| or |y| of a polygon point, in pixels: far beyond any X-ray
# (2048 x 2048), and small enough that rounding to int32 and OpenCV's
# fixed-point edges (<< 16 bits in int64) cannot overflow. A point at 3e9
# used to wrap around int32 into a wrong mask with only a numpy warning.
MAX_COORD = 1 << 20
# Polygons with more points are not checked for self-intersection (the
# check compares every pair of edges).
MAX_INTERSECTION_CHECK_POINTS = 4096


class HandBoneAnnotationError(InputError):
    """A hand-bone image or annotation file cannot be converted.

    An :class:`mmseg_ext.utils.errors.InputError` (so a ``ValueError``):
    ``HandBoneAnnotationError('message')`` as before, or with the fields
    ``path`` (the JSON or image), ``where`` (``'annotation 3'``,
    ``'annotation 3, field "points"'``), ``value`` and ``expected``.
    """


def read_hand_bone_json(
        json_path: str,
        image_shape: Tuple[int, int],
        classes: Sequence[str] = HAND_BONE_CLASSES
) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """Read and validate one annotation file.

    Args:
        json_path (str): The ``outputs_json`` file.
        image_shape (tuple[int, int]): ``(H, W)`` of its image.
        classes (Sequence[str]): Known labels. Defaults to the 29 classes.

    Returns:
        tuple: ``(polygons, warnings)``: ``{label: (P, 2) int32 (x, y)}``
        with points rounded to pixels, and warning messages (points outside
        the image, missing classes).

    Raises:
        HandBoneAnnotationError: naming the file, and the annotation index
            and label, for each bad case listed in the module docstring.
    """
    def error(message, where=None, **kwargs):
        return HandBoneAnnotationError(message, path=json_path, where=where,
                                       **kwargs)

    try:
        with open(json_path, encoding='utf-8') as f:
            data = json.load(f)
    except FileNotFoundError:
        raise error(f'{json_path}: annotation file is missing') from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        # ValueError: JSONDecodeError, and ints of more than 4,300 digits
        raise error(f'{json_path}: cannot be read as JSON: '
                    f'{type(e).__name__}: {e}') from None
    annotations = data.get('annotations') if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        raise error(
            f'{json_path}: should be a JSON object with an "annotations" '
            f'list, but got {type(data).__name__} with keys '
            f'{sorted(data) if isinstance(data, dict) else "-"}',
            where='"annotations"')
    h, w = image_shape
    known = set(classes)
    first_index: Dict[str, int] = {}
    polys: Dict[str, np.ndarray] = {}
    warnings: List[str] = []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or 'label' not in ann or \
                'points' not in ann:
            keys = sorted(ann) if isinstance(ann, dict) else \
                type(ann).__name__
            raise error(
                f'{json_path}: annotation {i} should have "label" and '
                f'"points", but got {keys}', where=f'annotation {i}')
        label = ann['label']
        if not isinstance(label, str):
            # a list or dict label used to stop the worker pool with
            # "TypeError: unhashable type"
            raise error(
                f'{json_path}: annotation {i}: "label" should be a str (a '
                f'class name), but got {type(label).__name__} '
                f'{short_repr(label)}', where=f'annotation {i}, field "label"',
                value=label, expected='a class name')
        where = f'{json_path}: annotation {i} ({label!r})'
        if label not in known:
            raise error(
                f'{json_path}: annotation {i} has unknown label {label!r}; '
                f'labels should be one of the {len(classes)} classes '
                f'{classes[0]!r} ... {classes[-1]!r}',
                where=f'annotation {i}, field "label"', value=label)
        if label in first_index:
            raise error(
                f'{where} repeats the class of annotation '
                f'{first_index[label]}; each class should have one polygon',
                where=f'annotation {i}, field "label"', value=label)
        first_index[label] = i
        pts = _points_array(ann['points'])
        field = f'annotation {i}, field "points"'
        if pts is None:
            raise error(
                f'{where}: "points" should be a list of [x, y] numbers, '
                f'but got {short_repr(ann["points"])}', where=field,
                value=ann['points'], expected='[[x, y], ...] numbers')
        if not np.isfinite(pts).all():
            raise error(
                f'{where}: "points" should be finite numbers, but got '
                f'{short_repr(pts[~np.isfinite(pts).all(1)][0].tolist())}',
                where=field, expected='finite numbers')
        if len(pts) < 3:
            raise error(
                f'{where} has {len(pts)} point(s); a polygon needs at '
                'least 3', where=field, expected='at least 3 points')
        big = np.abs(pts).max(1) > MAX_COORD
        if big.any():
            j = int(np.flatnonzero(big)[0])
            raise error(
                f'{where}: point {j} {pts[j].tolist()} is more than '
                f'{MAX_COORD} pixels from the origin; coordinates should be '
                f'pixels of the {w}x{h} image', where=f'{field}, point {j}',
                value=pts[j].tolist(),
                expected=f'|x|, |y| <= {MAX_COORD}')
        if _area(pts) == 0:
            raise error(
                f'{where}: the polygon has zero area (collinear or repeated '
                'points)', where=field)
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        if x1 < 0 or y1 < 0 or x0 > w - 1 or y0 > h - 1:
            raise error(
                f'{where}: the polygon (x in [{x0:g}, {x1:g}], y in '
                f'[{y0:g}, {y1:g}]) lies entirely outside the {w}x{h} image',
                where=field)
        outside = ((pts[:, 0] < 0) | (pts[:, 0] > w - 1) | (pts[:, 1] < 0) |
                   (pts[:, 1] > h - 1))
        if outside.any():
            warnings.append(
                f'{where}: {int(outside.sum())} of {len(pts)} points lie '
                f'outside the {w}x{h} image (x in [{x0:g}, {x1:g}], y in '
                f'[{y0:g}, {y1:g}]); the part inside the image is '
                'rasterised')
        rounded = np.round(pts).astype(np.int32)
        crossing = find_self_intersection(rounded)
        if crossing is not None:
            warnings.append(
                f'{where}: the polygon crosses itself (edge {crossing[0]} '
                f'meets edge {crossing[1]}, points rounded to pixels); it '
                'is rasterised as cv2.fillPoly fills it (regions covered '
                'an odd number of times may be left empty)')
        polys[label] = rounded
    missing = [c for c in classes if c not in polys]
    if missing:
        warnings.append(f'{json_path}: no polygon for {len(missing)} '
                        f'class(es) {missing}; they are empty in this label')
    return polys, warnings


def _points_array(points: Any) -> Optional[np.ndarray]:
    """``(P, 2)`` float64 of a JSON ``points`` list, or None if it is not a
    list of ``[x, y]`` JSON numbers (bools and strings are not numbers,
    though numpy would convert them)."""
    if not isinstance(points, list):
        return None
    for p in points:
        if not isinstance(p, list) or len(p) != 2:
            return None
        for v in p:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return None
    try:
        pts = np.array(points, dtype=np.float64).reshape(-1, 2)
    except OverflowError:  # an int past the float range: not finite
        return np.full((max(len(points), 1), 2), np.inf)
    return pts


def find_self_intersection(pts: np.ndarray) -> Optional[Tuple[int, int]]:
    """The first two edges of a closed polygon that cross or touch.

    Exact integer arithmetic on pixel points; edges of zero length
    (repeated points) are dropped first, and edges sharing a vertex are not
    compared. ``O(P^2)`` in chunks (about 1 ms for ``P = 200``); polygons
    of more than ``MAX_INTERSECTION_CHECK_POINTS`` points are not checked.

    Args:
        pts (np.ndarray): ``(P, 2)`` int (x, y), the closing edge implied.

    Returns:
        tuple[int, int] or None: Indices ``(i, j)``, ``i < j``, of the edges
        (edge ``i`` goes from point ``i`` to the next distinct point), or
        None if the polygon is simple.
    """
    pts = np.asarray(pts, dtype=np.int64)
    keep = np.any(pts != np.roll(pts, -1, axis=0), axis=1)
    index = np.flatnonzero(keep)
    p = pts[keep]
    n = len(p)
    if n < 4 or n > MAX_INTERSECTION_CHECK_POINTS:
        return None
    b = np.roll(p, -1, axis=0)
    ax, ay, bx, by = p[:, 0], p[:, 1], b[:, 0], b[:, 1]
    dx, dy = bx - ax, by - ay
    lox, hix = np.minimum(ax, bx), np.maximum(ax, bx)
    loy, hiy = np.minimum(ay, by), np.maximum(ay, by)
    j = np.arange(n)[None, :]
    chunk = max(1, (1 << 18) // n)
    for i0 in range(0, n - 2, chunk):
        rows = slice(i0, min(i0 + chunk, n - 2))
        i = np.arange(rows.start, rows.stop)[:, None]
        # candidates: non-adjacent pairs i < j (edge n - 1 is adjacent to
        # edge 0) whose boxes overlap (which also decides collinear pairs)
        cand = (j > i + 1) & ~((i == 0) & (j == n - 1))
        cand &= (lox[rows, None] <= hix) & (lox <= hix[rows, None])
        cand &= (loy[rows, None] <= hiy) & (loy <= hiy[rows, None])
        ii, jj = np.nonzero(cand)
        if not ii.size:
            continue
        ii += i0
        # sides of edge j's ends from edge i, and of edge i's ends from j
        s1 = np.sign(dx[ii] * (ay[jj] - ay[ii]) - dy[ii] * (ax[jj] - ax[ii]))
        s2 = np.sign(dx[ii] * (by[jj] - ay[ii]) - dy[ii] * (bx[jj] - ax[ii]))
        s3 = np.sign(dx[jj] * (ay[ii] - ay[jj]) - dy[jj] * (ax[ii] - ax[jj]))
        s4 = np.sign(dx[jj] * (by[ii] - ay[jj]) - dy[jj] * (bx[ii] - ax[jj]))
        hit = np.flatnonzero((s1 * s2 <= 0) & (s3 * s4 <= 0))
        if hit.size:
            k = hit[0]  # nonzero is row-major: the first pair (i, j)
            return int(index[ii[k]]), int(index[jj[k]])
    return None


def _area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) -
                           np.dot(y, np.roll(x, -1))))
