# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The packed-label check of :class:`LoadMultiLabelAnnotations`: the label's
size against its image and no bits of classes ``>= C`` (split from
:mod:`.multilabel_transforms`, which re-exports it)."""
import numpy as np

from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.multilabel import (PACK_BITS, VALID_BIT,
                                        num_packed_channels)

__all__ = ['check_packed_label']


def _allowed_bits(num_classes: int, channels: int) -> np.ndarray:
    """``(channels,)`` uint16: the bits a packed label of ``C`` classes may
    set in each channel (its classes, and the valid bit of the last packed
    channel; none in the pipeline's zero channel)."""
    k = num_packed_channels(num_classes)
    allowed = np.zeros(channels, np.uint16)
    for c in range(k):
        n = min(PACK_BITS, num_classes - c * PACK_BITS)
        allowed[c] = (1 << max(n, 0)) - 1
    allowed[k - 1] |= 1 << VALID_BIT
    return allowed


def check_packed_label(packed: np.ndarray, num_classes: int, path: str,
                       results: dict) -> None:
    """Check a loaded packed label against its image and ``C``.

    Args:
        packed (np.ndarray): ``(H, W, K')`` uint16 as read by
            :func:`~mmseg_ext.utils.multilabel.read_packed_label`.
        num_classes (int): ``C``.
        path (str): The label file (named in errors).
        results (dict): The data info; ``ori_shape`` (or ``img``) and
            ``img_path`` of the loaded image, when present.

    Raises:
        InputError: if the label has another ``(H, W)`` than the image
            (naming both files and sizes), or sets bits of classes ``>= C``.
    """
    shape = results.get('ori_shape')
    if shape is None and results.get('img') is not None:
        shape = results['img'].shape
    if shape is not None and tuple(packed.shape[:2]) != tuple(shape[:2]):
        h, w = packed.shape[:2]
        raise InputError(
            reason=f'the packed label is {h}x{w} (H x W), but its image '
            f'{results.get("img_path")} is {shape[0]}x{shape[1]}',
            path=path, expected='a label of the size of its image; '
            're-run the dataset converter')
    allowed = _allowed_bits(num_classes, packed.shape[-1])
    # Only channels with a forbidden bit cost a pass (for C = 29 the last
    # packed one; read_packed_label already checked the zero channel).
    k = min(num_packed_channels(num_classes), packed.shape[-1])
    for c in range(k):
        forbidden = np.uint16(~allowed[c])
        if not forbidden:
            continue
        extra = packed[..., c] & forbidden
        if not extra.any():
            continue
        y, x = (int(v) for v in np.argwhere(extra)[0])
        bits = [b for b in range(PACK_BITS) if int(extra[y, x]) >> b & 1]
        classes = [c * PACK_BITS + b for b in bits]
        raise InputError(
            reason=f'pixel (y={y}, x={x}) sets channel {c} bit(s) {bits} '
            f'(class index(es) {classes}), beyond the C={num_classes} '
            'classes', path=path, where=f'channel {c}',
            value=int(packed[y, x, c]),
            expected=f'only bits of classes 0..{num_classes - 1} and the '
            'valid bit; was it written for more classes? Re-run the '
            'dataset converter')
