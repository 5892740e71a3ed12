# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Drawing of overlapping ``(C, H, W)`` masks: a palette of distinct
colours, per-class crops and the blend, used by
:class:`~mmseg_ext.visualization.MultiLabelSegLocalVisualizer`."""
from typing import List, Optional, Sequence

import cv2
import numpy as np

__all__ = ['blend_multilabel_masks', 'class_crops', 'distinct_palette']


def distinct_palette(num_colors: int) -> List[List[int]]:
    """``num_colors`` well-separated RGB colours, always the same.

    Hues step by the golden ratio around the colour wheel (neighbouring
    classes get far-apart hues), with saturation and value alternating so
    that close hues of distant classes still differ.

    Args:
        num_colors (int): How many colours.

    Returns:
        list[list[int]]: ``num_colors`` ``[r, g, b]`` lists in ``[0, 255]``.

    Raises:
        ValueError: if ``num_colors`` is not a non-negative int.
    """
    if isinstance(num_colors, bool) or not isinstance(
            num_colors, (int, np.integer)) or num_colors < 0:
        raise ValueError('`num_colors` should be an int >= 0, but got '
                         f'{num_colors!r}')
    idx = np.arange(int(num_colors))
    hsv = np.stack([
        (idx * 0.618033988749895 % 1.0) * 180,  # OpenCV hue: [0, 180)
        np.where(idx % 2 == 0, 255, 170),
        np.where(idx // 2 % 2 == 0, 255, 200),
    ], axis=-1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(int).tolist()


def class_crops(masks: np.ndarray) -> List[Optional[tuple]]:
    """Per class, ``(x, y, crop)``: its mask cropped to its bounding box.

    Args:
        masks (np.ndarray): ``(C, H, W)`` binary masks (nonzero = class).

    Returns:
        list[tuple | None]: ``(x, y, (h, w) uint8 crop in {0, 1})`` per
        class, None for an empty class. Later per-class work (blending,
        contours, components) then costs the box, not the image.
    """
    crops = []
    for mask in masks:
        if mask.dtype == np.bool_:
            mask = mask.view(np.uint8)
        elif mask.dtype != np.uint8 or mask.max(initial=0) > 1:
            mask = (mask != 0).view(np.uint8)
        x, y, w, h = cv2.boundingRect(mask)
        crops.append(None if w == 0 else (x, y, mask[y:y + h, x:x + w]))
    return crops


def blend_multilabel_masks(image: np.ndarray,
                           masks: np.ndarray,
                           palette: Sequence[Sequence[int]],
                           alpha: float = 0.5,
                           ignore: Optional[np.ndarray] = None,
                           ignore_color: Optional[Sequence[int]] = None
                           ) -> np.ndarray:
    """Blend ``(C, H, W)`` overlapping masks over an image.

    A pixel of ``k >= 1`` classes becomes ``(1 - alpha) * image + alpha *
    mean(colours of its k classes)``, rounded; a pixel of no class keeps
    the image. Ignored pixels (``ignore``) are blended with
    ``ignore_color`` instead (left as the image when it is None).

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 image (RGB).
        masks (np.ndarray): ``(C, H, W)`` binary masks (nonzero = class).
        palette (Sequence[Sequence[int]]): At least ``C`` colours (RGB).
        alpha (float): Opacity of the colours. Defaults to 0.5.
        ignore (np.ndarray, optional): ``(H, W)`` bool, ignored pixels.
            Defaults to None.
        ignore_color (Sequence[int], optional): Colour of ignored pixels.
            Defaults to None.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 image.

    Raises:
        ValueError: if the shapes do not fit or the palette is too short.

    Examples:
        >>> masks = np.zeros((2, 1, 3), np.uint8)
        >>> masks[0, 0, :2] = 1
        >>> masks[1, 0, 1] = 1
        >>> blend_multilabel_masks(np.full((1, 3, 3), 100, np.uint8), masks,
        ...                        [[240, 0, 0], [0, 0, 240]])[0].tolist()
        [[170, 50, 50], [110, 50, 110], [100, 100, 100]]
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or image.ndim != 3 or \
            masks.shape[1:] != image.shape[:2]:
        raise ValueError('`masks` should have shape (C, H, W) with (H, W) '
                         f'of the (H, W, 3) image {image.shape}, but got '
                         f'{masks.shape}')
    if len(palette) < masks.shape[0]:
        raise ValueError(f'`palette` should have C={masks.shape[0]} colours, '
                         f'but got {len(palette)}')
    return _blend(image, class_crops(masks), palette, alpha, ignore,
                  ignore_color)


def _blend(image: np.ndarray, crops: Sequence[Optional[tuple]],
           palette: Sequence[Sequence[int]], alpha: float,
           ignore: Optional[np.ndarray],
           ignore_color: Optional[Sequence[int]]) -> np.ndarray:
    """:func:`blend_multilabel_masks` on :func:`class_crops`."""
    colors = np.asarray(palette, dtype=np.float32)
    count = np.zeros(image.shape[:2], dtype=np.float32)
    total = np.zeros(image.shape[:2] + (3, ), dtype=np.float32)
    for k, crop in enumerate(crops):
        if crop is None:
            continue
        x, y, mask = crop
        h, w = mask.shape
        count[y:y + h, x:x + w] += mask
        total[y:y + h, x:x + w] += mask[..., None] * colors[k]
    covered = count > 0
    out = image.astype(np.float32)
    # image * (1 - alpha) + alpha * total / count, where count > 0
    weight = np.divide(alpha, count, out=np.zeros_like(count), where=covered)
    out *= np.where(covered, 1 - alpha, 1).astype(np.float32)[..., None]
    out += total * weight[..., None]
    if ignore is not None and ignore_color is not None:
        ignore = np.asarray(ignore, dtype=bool)
        out[ignore] = out[ignore] * (1 - alpha) + np.asarray(
            ignore_color, dtype=np.float32) * alpha
    # a convex combination of uint8 values: no clipping needed
    return np.rint(out, out=out).astype(np.uint8)
