# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Signed distance maps of ground-truth masks, for the boundary loss.

The convention of "Boundary loss for highly unbalanced segmentation"
(Kervadec et al., 2019; their reference code ``one_hot2dist``): for a mask
``G`` with ``d_in = EDT(G)`` (distance to the nearest pixel outside) and
``d_out = EDT(~G)`` (distance to the nearest pixel inside),

    ``phi = d_out`` outside ``G`` and ``phi = -(d_in - 1)`` inside,

so the inner boundary pixels are 0, the pixels just outside are 1, and
``mean(p * phi)`` is lowest when the predicted probability ``p`` is 1
exactly inside ``G``. A class absent from the map (or covering every valid
pixel: no boundary visible) gets ``phi = 0`` (no boundary term); ignored
pixels get 0 and count as outside for the distances of the others.

Speed: the EDT is the ``edt`` package's (multi-threadable C++; one 1024²
mask 20 ms against scipy's ``distance_transform_edt`` 66 ms, single core),
and both transforms run on crops: ``d_in`` on the bounding box of ``G``
grown by one pixel (exact: the ring around the box lies outside ``G``), and
with ``max_distance`` the outside distances on the box grown by
``max_distance + 1`` (exact up to the clip: every pixel farther away is
clipped anyway), so a small bone in a 1024² crop costs a fraction of a
full-image EDT. ``max_distance=None`` computes ``d_out`` on the whole map
(Kervadec's unclipped maps).
"""
import math
from typing import Optional, Sequence, Tuple

import edt
import numpy as np

__all__ = ['signed_distance_map', 'signed_distance_maps']


def _edt(mask: np.ndarray) -> np.ndarray:
    """EDT (distance to the nearest 0) of a bool map, no border added."""
    return edt.edt(np.ascontiguousarray(mask, dtype=np.uint8),
                   black_border=False, parallel=1)


def _grown_box(rows: np.ndarray, cols: np.ndarray, margin: int,
               shape: Tuple[int, int]) -> Tuple[slice, slice]:
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    return (slice(max(0, r0 - margin), min(shape[0], r1 + margin)),
            slice(max(0, c0 - margin), min(shape[1], c1 + margin)))


def signed_distance_map(mask: np.ndarray,
                        max_distance: Optional[float] = None,
                        out: Optional[np.ndarray] = None) -> np.ndarray:
    """Signed distance map of one bool mask (Kervadec et al.'s convention).

    Args:
        mask (np.ndarray): ``(H, W)`` bool (or 0/1) mask ``G``.
        max_distance (float, optional): Clip ``phi`` to ``[-max_distance,
            max_distance]`` (and compute the outside distances near ``G``
            only). Defaults to None (exact, unclipped).
        out (np.ndarray, optional): ``(H, W)`` float array written in place.

    Returns:
        np.ndarray: ``(H, W)`` float32 (or ``out``'s dtype) ``phi``; all 0
        if ``G`` is empty or covers the whole map.

    Examples:
        >>> m = np.zeros((1, 5), bool); m[0, 1:4] = True
        >>> signed_distance_map(m).tolist()
        [[1.0, 0.0, -1.0, 0.0, 1.0]]
    """
    mask = np.asarray(mask, dtype=bool)
    if out is None:
        out = np.zeros(mask.shape, dtype=np.float32)
    else:
        out[...] = 0
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0 or mask.all():
        return out
    cols = np.flatnonzero(mask.any(axis=0))
    inner = _grown_box(rows, cols, 1, mask.shape)
    sub = mask[inner]
    out[inner] = np.where(sub, 1.0 - _edt(sub), 0.0)
    if max_distance is None:
        outer = (slice(None), slice(None))
    else:
        out[~mask] = max_distance
        outer = _grown_box(rows, cols, int(math.ceil(max_distance)) + 1,
                           mask.shape)
    neg = ~mask[outer]
    region = out[outer]
    region[neg] = _edt(neg)[neg]
    if max_distance is not None:
        np.clip(out, -max_distance, max_distance, out=out)
    return out


def signed_distance_maps(masks: np.ndarray,
                         valid: Optional[np.ndarray] = None,
                         max_distance: Optional[float] = None,
                         dtype=np.float16,
                         classes: Optional[Sequence[int]] = None
                         ) -> np.ndarray:
    """Signed distance maps of ``C`` masks, 0 on ignored pixels.

    Args:
        masks (np.ndarray): ``(C, H, W)`` bool masks (class pixels may
            overlap: multi-label), False on ignored pixels.
        valid (np.ndarray, optional): ``(H, W)`` or ``(C, H, W)`` bool,
            False on ignored pixels (their distance is 0). Defaults to None
            (all valid).
        max_distance (float, optional): See :func:`signed_distance_map`.
        dtype: Output dtype. Defaults to float16 (integer distances are
            exact up to 2048; half the memory of float32 per sample).
        classes (Sequence[int], optional): Only these channels (others 0).
            Defaults to None (all).

    Returns:
        np.ndarray: ``(C, H, W)`` maps.
    """
    masks = np.asarray(masks, dtype=bool)
    out = np.zeros(masks.shape, dtype=dtype)
    work = np.empty(masks.shape[1:], dtype=np.float32)
    for c in range(masks.shape[0]) if classes is None else classes:
        mask = masks[c] if valid is None else masks[c] & (
            valid if valid.ndim == 2 else valid[c])
        out[c] = signed_distance_map(mask, max_distance, out=work)
    if valid is not None:
        out[~np.broadcast_to(valid, masks.shape)] = 0
    return out
