# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Overlay PNGs of BraTS cases: one modality with WT / TC / ET contours.

One PNG per chosen axial slice ``z``: the slice ``vol[:, :, z]`` shown as
the array is stored (rows = X, columns = Y, the slice cache's ``H, W``; no
reorientation, so it matches what the model saw), grey levels from the 1st
to the 99th percentile of the slice's brain (nonzero) voxels, scaled
``scale`` times with nearest neighbours, and the regions' outlines (all
contours, holes included, so an ET rim shows both edges) in fixed colours:
:data:`REGION_COLORS` (WT green, TC yellow, ET red). With ground truth the
PNG holds two panels, ground truth on the left and prediction on the
right, each titled (``z=..``, ``ground truth`` / ``prediction``) with a
legend of the colours.

Slices: the ``num_largest`` with the largest tumour (WT) area — of the
prediction and the ground truth together — plus the user's ``slices``.
Contours come from :func:`cv2.findContours` on each region's bounding-box
crop (:func:`~mmseg_ext.visualization.multilabel_drawing.class_crops`), as
in :class:`~mmseg_ext.visualization.MultiLabelSegLocalVisualizer`.
"""
import os.path as osp
from typing import List, Optional, Sequence

import cv2
import numpy as np

from mmseg_ext.utils.io import imwrite_atomic
from .multilabel_drawing import class_crops

__all__ = [
    'REGION_COLORS', 'draw_brats_slice', 'overlay_slices',
    'write_brats_overlays'
]

#: Contour colour of WT, TC, ET (RGB).
REGION_COLORS = ((0, 200, 0), (255, 220, 0), (230, 0, 0))
_TITLE_H = 18  # pixels of the title strip
_LEGEND_W = 28  # pixels per legend entry


def overlay_slices(pred: np.ndarray,
                   gt: Optional[np.ndarray] = None,
                   num_largest: int = 3,
                   slices: Sequence[int] = ()) -> List[int]:
    """The axial slices to draw: largest WT area first picks, plus ``slices``.

    Args:
        pred (np.ndarray): ``(3, X, Y, Z)`` predicted regions.
        gt (np.ndarray, optional): ``(3, X, Y, Z)`` ground truth.
        num_largest (int): How many slices of the largest WT area (of
            prediction and ground truth together; slices without tumour
            are never picked). Defaults to 3.
        slices (Sequence[int]): More slices (out-of-range ones raise).
            Defaults to ().

    Returns:
        list[int]: Sorted slice indices, no duplicates.
    """
    depth = pred.shape[-1]
    area = np.count_nonzero(pred[0], axis=(0, 1)).astype(np.int64)
    if gt is not None:
        area += np.count_nonzero(gt[0], axis=(0, 1))
    order = np.argsort(-area, kind='stable')[:max(int(num_largest), 0)]
    chosen = {int(z) for z in order if area[z] > 0}
    for z in slices:
        if not -depth <= int(z) < depth:
            raise ValueError(f'overlay slice {z} is outside the volume of '
                             f'{depth} slices')
        chosen.add(int(z) % depth)
    return sorted(chosen)


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    brain = image[image != 0]
    if brain.size == 0:
        return np.zeros(image.shape, np.uint8)
    lo, hi = np.percentile(brain, (1, 99))
    if hi <= lo:
        hi = lo + 1
    out = (image - lo) * (255.0 / (hi - lo))
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def _panel(grey: np.ndarray, regions: np.ndarray, scale: int, title: str,
           thickness: int) -> np.ndarray:
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    if scale != 1:
        img = cv2.resize(img, None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_NEAREST)
    for k, crop in enumerate(class_crops(regions)):
        if crop is None:
            continue
        x, y, mask = crop
        if scale != 1:
            mask = cv2.resize(mask, None, fx=scale, fy=scale,
                              interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(
            np.ascontiguousarray(mask), cv2.RETR_LIST,
            cv2.CHAIN_APPROX_NONE, offset=(x * scale, y * scale))
        cv2.drawContours(img, contours, -1, REGION_COLORS[k], thickness)
    strip = np.zeros((_TITLE_H, img.shape[1], 3), np.uint8)
    cv2.putText(strip, title, (3, _TITLE_H - 5), cv2.FONT_HERSHEY_SIMPLEX,
                0.45, (255, 255, 255), 1, cv2.LINE_AA)
    x = img.shape[1] - 3 * _LEGEND_W
    for name, color in zip(('WT', 'TC', 'ET'), REGION_COLORS):
        if x >= 0:  # the legend, where the panel is wide enough
            cv2.putText(strip, name, (x, _TITLE_H - 5),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1,
                        cv2.LINE_AA)
        x += _LEGEND_W
    return np.concatenate([strip, img], axis=0)


def draw_brats_slice(image: np.ndarray,
                     pred: np.ndarray,
                     gt: Optional[np.ndarray] = None,
                     title: str = '',
                     scale: int = 2,
                     thickness: int = 1) -> np.ndarray:
    """Draw one axial slice: ``[ground truth |] prediction`` panels.

    Args:
        image (np.ndarray): ``(X, Y)`` modality slice (any float scale).
        pred (np.ndarray): ``(3, X, Y)`` predicted WT, TC, ET.
        gt (np.ndarray, optional): ``(3, X, Y)`` ground truth.
            Defaults to None (prediction only).
        title (str): Put before each panel's title. Defaults to ''.
        scale (int): Integer upscaling. Defaults to 2.
        thickness (int): Contour thickness. Defaults to 1.

    Returns:
        np.ndarray: ``(18 + X * scale, W, 3)`` uint8 RGB, ``W`` =
        ``Y * scale`` (or twice that with ground truth).
    """
    image = np.asarray(image)
    if image.ndim != 2 or np.shape(pred) != (3, ) + image.shape or (
            gt is not None and np.shape(gt) != np.shape(pred)):
        raise ValueError('`image` should be (X, Y) and `pred` / `gt` '
                         f'(3, X, Y), but got {image.shape}, {np.shape(pred)}'
                         f' and {None if gt is None else np.shape(gt)}')
    grey = _grey(image)
    panels = []
    if gt is not None:
        panels.append(_panel(grey, gt, scale, f'{title} ground truth'.strip(),
                             thickness))
    panels.append(_panel(grey, pred, scale, f'{title} prediction'.strip(),
                         thickness))
    return np.concatenate(panels, axis=1)


def write_brats_overlays(out_dir: str,
                         case_id: str,
                         image_slice,
                         pred: np.ndarray,
                         gt: Optional[np.ndarray] = None,
                         num_largest: int = 3,
                         slices: Sequence[int] = (),
                         scale: int = 2) -> List[str]:
    """Write ``{out_dir}/{case_id}_z{z:03d}.png`` for :func:`overlay_slices`.

    Args:
        out_dir (str): Folder (created).
        case_id (str): The case, in the file names.
        image_slice (callable | np.ndarray): ``z -> (X, Y)`` modality
            slice, or an ``(X, Y, Z)`` volume.
        pred (np.ndarray): ``(3, X, Y, Z)`` predicted regions.
        gt (np.ndarray, optional): ``(3, X, Y, Z)``. Defaults to None.
        num_largest (int): See :func:`overlay_slices`. Defaults to 3.
        slices (Sequence[int]): See :func:`overlay_slices`.
            Defaults to ().
        scale (int): See :func:`draw_brats_slice`. Defaults to 2.

    Returns:
        list[str]: The PNG paths written.
    """
    if not callable(image_slice):
        volume = image_slice

        def image_slice(z):
            return volume[:, :, z]

    paths = []
    for z in overlay_slices(pred, gt, num_largest, slices):
        drawn = draw_brats_slice(
            image_slice(z), np.ascontiguousarray(pred[..., z]),
            None if gt is None else np.ascontiguousarray(gt[..., z]),
            title=f'z={z}', scale=scale)
        path = osp.join(out_dir, f'{case_id}_z{z:03d}.png')
        imwrite_atomic(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), path)
        paths.append(path)
    return paths
