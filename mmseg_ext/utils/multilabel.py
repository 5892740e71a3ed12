# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Packed bitmask labels for multi-label segmentation.

MMSeg's transforms (``RandomFlip``, ``RandomCrop``, ``Resize`` with nearest,
``RandomRotate``, ``Albu``) move a label map of shape ``(H, W)`` or
``(H, W, K)`` pixel by pixel, never mixing values. A multi-label target of
``C`` binary maps is therefore packed into ``K`` uint16 channels so those
transforms work on it unchanged, at ``2 * K`` bytes per pixel instead of
``C`` (29 hand-bone classes: 4 bytes instead of 29):

- class ``k`` is bit ``k % 16`` of channel ``k // 16``;
- bit 15 of the last channel is the **valid bit**: set on every labelled
  pixel, clear on ignored ones;
- ``K = ceil((C + 1) / 16)`` (29 classes: 2 channels; 1 to 15 classes: 1).

Why a valid bit rather than an ignore bit: whatever a transform pads with —
0 (``Pad``, ``seg_pad_val=0``) or mmseg's default 255 (``RandomRotate``,
``SegDataPreProcessor``) — leaves bit 15 clear, so padded pixels always
read as *ignored*, never as random classes. The packers write class bits
only on valid pixels, so an ignored pixel is ``0`` in every class bit.

Unpacking happens as late as possible, on the model's device
(:func:`unpack_multilabel_torch`, used by the data preprocessor); the numpy
versions serve converters, counters and tests.
"""
from typing import Optional, Sequence

import numpy as np

PACK_BITS = 16
VALID_BIT = 15


def _label_png_params() -> list:
    import cv2
    # No row filter and zlib level 9: files as small as OpenCV's defaults
    # (~60 KiB for a 2048 x 2048 hand) that decode ~3x faster (24 vs 70 ms),
    # which the data loader pays on every sample (see
    # benchmarks/bench_hand_bone_pipeline.py). The filter flag needs OpenCV
    # >= 4.10; without it, level 1 decodes as fast at twice the size.
    if hasattr(cv2, 'IMWRITE_PNG_FILTER'):
        return [
            cv2.IMWRITE_PNG_COMPRESSION, 9, cv2.IMWRITE_PNG_FILTER,
            cv2.IMWRITE_PNG_FILTER_NONE
        ]
    return [cv2.IMWRITE_PNG_COMPRESSION, 1]  # pragma: no cover


def num_packed_channels(num_classes: int) -> int:
    """``K = ceil((C + 1) / 16)``: uint16 channels for ``C`` classes."""
    if isinstance(num_classes, bool) or not isinstance(
            num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError('`num_classes` should be a positive int, '
                         f'but got {num_classes!r}')
    return (int(num_classes) + PACK_BITS) // PACK_BITS


def pipeline_channels(num_classes: int) -> int:
    """Channels of a packed map in the pipeline: ``K``, or 3 when ``K = 2``.

    A ``(H, W, 2)`` map travels with a zero third channel (see
    :func:`mmseg_ext.datasets.transforms.pipeline_packed_map`), so packed
    tensors have ``K`` or this many channels.
    """
    k = num_packed_channels(num_classes)
    return 3 if k == 2 else k


def class_bit(k: int):
    """``(channel, bit)`` of class ``k`` in the packed map."""
    return k // PACK_BITS, k % PACK_BITS


def pack_multilabel(masks: np.ndarray,
                    ignore: Optional[np.ndarray] = None) -> np.ndarray:
    """Pack ``(C, H, W)`` binary masks into a ``(H, W, K)`` uint16 map.

    Args:
        masks (np.ndarray): ``(C, H, W)`` masks, bool or integers in
            ``{0, 1}`` (any nonzero counts as 1).
        ignore (np.ndarray, optional): ``(H, W)`` bool, True where the pixel
            is ignored (no class bit and no valid bit is written there).
            Defaults to None (every pixel is labelled).

    Returns:
        np.ndarray: ``(H, W, K)`` uint16 packed map.

    Raises:
        ValueError: if the shapes do not fit.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError('`masks` should have shape (C, H, W), but got '
                         f'{masks.shape}')
    num_classes, h, w = masks.shape
    channels = num_packed_channels(num_classes)
    packed = np.zeros((h, w, channels), dtype=np.uint16)
    for k in range(num_classes):
        ch, bit = class_bit(k)
        layer = masks[k]
        if layer.dtype != np.bool_:
            layer = layer != 0
        packed[..., ch] |= layer.view(np.uint8).astype(np.uint16) << bit
    valid = np.uint16(1 << VALID_BIT)
    if ignore is None:
        packed[..., -1] |= valid
    else:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != (h, w):
            raise ValueError(f'`ignore` should have shape {(h, w)}, but got '
                             f'{ignore.shape}')
        packed[ignore] = 0
        packed[..., -1] |= (~ignore).view(np.uint8).astype(np.uint16) << \
            VALID_BIT
    return packed


def pack_label_map(label: np.ndarray,
                   regions: Sequence[Sequence[int]],
                   ignore_index: Optional[int] = 255) -> np.ndarray:
    """Pack a class-index map into multi-label regions.

    Channel ``k`` of the result is set where ``label`` is one of
    ``regions[k]``; pixels equal to ``ignore_index`` are ignored. E.g. a
    binary building map (0/1) is ``regions=[[1]]``; BraTS labels give
    ``regions=[[1, 2, 4], [1, 4], [4]]`` (WT, TC, ET).

    Args:
        label (np.ndarray): ``(H, W)`` integer label map.
        regions (Sequence[Sequence[int]]): Label values of each class.
        ignore_index (int, optional): Ignored label value. Defaults to 255.

    Returns:
        np.ndarray: ``(H, W, K)`` uint16 packed map.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError('`label` should have shape (H, W), but got '
                         f'{label.shape}')
    if not regions or any(len(r) == 0 for r in regions):
        raise ValueError('`regions` should be a non-empty list of non-empty '
                         f'lists of label values, but got {regions!r}')
    # One lookup table over the label values (uint8/uint16 labels: cheap)
    # instead of C passes of `np.isin`.
    if label.dtype in (np.uint8, np.uint16):
        size = 256 if label.dtype == np.uint8 else 65536
        lut = np.zeros((size, len(regions)), dtype=bool)
        for k, values in enumerate(regions):
            for v in values:
                if 0 <= v < size:
                    lut[v, k] = True
        masks = np.moveaxis(lut[label], -1, 0)
    else:
        masks = np.stack([np.isin(label, list(r)) for r in regions])
    ignore = None if ignore_index is None else label == ignore_index
    return pack_multilabel(masks, ignore)


def unpack_multilabel(packed: np.ndarray,
                      num_classes: int,
                      ignore_index: int = 255) -> np.ndarray:
    """Unpack a ``(H, W, K)`` packed map into ``(C, H, W)`` uint8 targets.

    Args:
        packed (np.ndarray): ``(H, W, K)`` (or ``(H, W)`` for ``K = 1``)
            uint16 map from :func:`pack_multilabel`.
        num_classes (int): ``C``.
        ignore_index (int): Value written on every class of an ignored
            (valid bit clear) pixel. Defaults to 255.

    Returns:
        np.ndarray: ``(C, H, W)`` uint8 in ``{0, 1, ignore_index}``.
    """
    packed = _check_packed(packed, num_classes)
    out = np.empty((num_classes, ) + packed.shape[:2], dtype=np.uint8)
    for k in range(num_classes):
        ch, bit = class_bit(k)
        np.bitwise_and(packed[..., ch] >> bit, 1, out=out[k], casting='unsafe')
    invalid = (packed[..., -1] >> VALID_BIT) == 0
    if invalid.any():
        out[:, invalid] = ignore_index
    return out


def packed_positive_counts(packed: np.ndarray, num_classes: int) -> tuple:
    """Positive pixels per class and the number of valid pixels.

    Uses one 65536-bin histogram per channel, then sums the bins that have
    each bit set, instead of ``C`` passes over the pixels.

    Returns:
        tuple[np.ndarray, int]: ``(C,)`` int64 counts and the valid-pixel
        count.
    """
    packed = _check_packed(packed, num_classes)
    counts = np.zeros(num_classes, dtype=np.int64)
    values = np.arange(1 << PACK_BITS, dtype=np.int64)
    hists = [
        np.bincount(packed[..., ch].ravel(), minlength=1 << PACK_BITS)
        for ch in range(packed.shape[-1])
    ]
    for k in range(num_classes):
        ch, bit = class_bit(k)
        counts[k] = hists[ch][(values >> bit) & 1 == 1].sum()
    num_valid = int(hists[-1][(values >> VALID_BIT) & 1 == 1].sum())
    return counts, num_valid


def _check_packed(packed: np.ndarray, num_classes: int) -> np.ndarray:
    packed = np.asarray(packed)
    if packed.ndim == 2:
        packed = packed[..., None]
    channels = num_packed_channels(num_classes)
    if packed.ndim != 3 or packed.shape[-1] != channels:
        raise ValueError(
            f'a packed label for C={num_classes} classes should have shape '
            f'(H, W, {channels}), but got {packed.shape}')
    if packed.dtype != np.uint16:
        if packed.dtype.kind not in 'iu':
            raise ValueError('a packed label should be an integer array '
                             f'(uint16), but got dtype {packed.dtype}')
        packed = packed.astype(np.uint16)
    return packed


def unpack_multilabel_torch(packed, num_classes: int, ignore_index: int = 255):
    """Unpack ``(N, K, H, W)`` packed labels on their device.

    Args:
        packed (torch.Tensor): ``(N, K, H, W)`` or ``(K, H, W)`` integer
            tensor (int16 from ``PackMultiLabelSegInputs``; int32/int64
            after padding work too). Bits are read from the low 16 bits, so
            the int16 reinterpretation of uint16 values is exact.
        num_classes (int): ``C``.
        ignore_index (int): Written on every class of an ignored pixel.
            Defaults to 255.

    Returns:
        torch.Tensor: ``(N, C, H, W)`` (or ``(C, H, W)``) uint8 targets in
        ``{0, 1, ignore_index}``.
    """
    import torch
    squeeze = packed.dim() == 3
    if squeeze:
        packed = packed.unsqueeze(0)
    channels = num_packed_channels(num_classes)
    if packed.dim() != 4 or packed.shape[1] != channels:
        raise ValueError(
            f'packed labels for C={num_classes} classes should have shape '
            f'(N, {channels}, H, W), but got {tuple(packed.shape)}')
    if packed.is_floating_point() or packed.dtype == torch.bool:
        raise ValueError('packed labels should be an integer tensor, but got '
                         f'{packed.dtype}')
    n, _, h, w = packed.shape
    out = torch.empty((n, num_classes, h, w),
                      dtype=torch.uint8,
                      device=packed.device)
    for k in range(num_classes):
        ch, bit = class_bit(k)
        out[:, k] = (packed[:, ch] >> bit) & 1
    invalid = ((packed[:, -1] >> VALID_BIT) & 1) == 0
    out.masked_fill_(invalid.unsqueeze(1), ignore_index)
    return out[0] if squeeze else out


def is_packed(label) -> bool:
    """True for a packed label tensor: int16 (see
    :class:`PackMultiLabelSegInputs`; MMSeg's own label maps are int64 and
    unpacked targets uint8)."""
    import torch
    return isinstance(label, torch.Tensor) and label.dtype == torch.int16


def as_unpacked(label, num_classes: int, ignore_index: Optional[int] = 255):
    """Unpack ``label`` if it is packed (int16), else return it unchanged.

    The one implementation of "int16 means packed, unpack it": metrics,
    the data preprocessor, the visualizer and the ensemble read ground
    truth that may or may not have been unpacked already.

    Args:
        label (Tensor | np.ndarray): Packed ``(K', H, W)`` / ``(N, K', H, W)``
            int16 tensor, with ``K'`` either ``K`` or the pipeline's
            :func:`pipeline_channels` (the zero channel is dropped); anything
            else (unpacked ``(C, H, W)`` uint8 targets, int64 label maps,
            numpy arrays) is returned as is.
        num_classes (int): ``C``.
        ignore_index (int | None): Written on every class of an ignored
            pixel; None means 255. Defaults to 255.

    Returns:
        Tensor | np.ndarray: ``(C, H, W)`` / ``(N, C, H, W)`` uint8 targets
        in ``{0, 1, ignore_index}`` on ``label``'s device, or ``label``.

    Raises:
        ValueError: if a packed label has neither ``K`` nor the pipeline's
            channel count for ``num_classes``.

    Examples:
        >>> # valid bit 15 and class 0 set; valid bit clear (ignored)
        >>> packed = torch.tensor([[[-(1 << 15) | 1, 0]]], dtype=torch.int16)
        >>> as_unpacked(packed, 1).tolist()
        [[[1, 255]]]
    """
    if not is_packed(label):
        return label
    k = num_packed_channels(num_classes)
    axis = label.dim() - 3
    if label.dim() not in (3, 4) or label.shape[axis] not in (
            k, pipeline_channels(num_classes)):
        raise ValueError(
            f'a packed label for C={num_classes} classes should have shape '
            f'({k}, H, W) or (N, {k}, H, W), but got {tuple(label.shape)}')
    label = label[:, :k] if axis else label[:k]
    return unpack_multilabel_torch(
        label, num_classes, 255 if ignore_index is None else ignore_index)


def write_packed_label(path: str, packed: np.ndarray) -> None:
    """Write a ``(H, W, K)`` uint16 packed label as a 16-bit PNG, atomically.

    PNG holds 1, 3 or 4 channels: ``K = 1`` is written as 16-bit grey,
    ``K = 2`` and ``K = 3`` as 16-bit colour (zero channels appended),
    ``K = 4`` as 16-bit RGBA. Bitmasks compress very well (a 2048 x 2048
    hand-bone label is a few tens of KiB), without a PNG row filter so it
    decodes fast. :func:`read_packed_label` reads it back.

    Raises:
        ValueError: if ``packed`` is not ``(H, W, K)`` uint16 with
            ``K <= 4`` (more than 63 classes).
    """
    from .io import imwrite_atomic
    packed = np.asarray(packed)
    if packed.ndim == 2:
        packed = packed[..., None]
    if packed.ndim != 3 or packed.dtype != np.uint16 or \
            not 1 <= packed.shape[-1] <= 4:
        raise ValueError('a packed label to write should be a (H, W, K) '
                         f'uint16 array with K <= 4, but got {packed.shape} '
                         f'{packed.dtype} (for {path!r})')
    k = packed.shape[-1]
    if k == 2:
        packed = np.concatenate(
            [packed, np.zeros(packed.shape[:2] + (1, ), np.uint16)], axis=-1)
    imwrite_atomic(packed[..., 0] if k == 1 else packed, path,
                   _label_png_params())


def read_packed_label(path: str,
                      num_classes: int,
                      keep_stored: bool = False) -> np.ndarray:
    """Read a packed label PNG written by :func:`write_packed_label`.

    Args:
        path (str): The PNG file.
        num_classes (int): ``C``; decides ``K``.
        keep_stored (bool): Return the channels as stored, i.e. ``K = 2``
            with its zero third channel (the layout the data pipeline uses,
            see ``mmseg_ext.datasets.transforms.pipeline_packed_map``),
            without a copy. Defaults to False.

    Returns:
        np.ndarray: ``(H, W, K)`` uint16 (``(H, W, 3)`` for ``K = 2`` with
        ``keep_stored``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a 16-bit image with the channels a
            packed label of ``C`` classes has.
    """
    import os.path as osp

    import cv2
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        if not osp.isfile(path):
            raise FileNotFoundError(f'packed label {path!r} does not exist')
        raise ValueError(f'packed label {path!r} cannot be decoded as PNG')
    k = num_packed_channels(num_classes)
    if img.ndim == 2:
        img = img[..., None]
    stored = {1: 1, 2: 3, 3: 3, 4: 4}.get(k)
    if img.dtype != np.uint16 or img.shape[-1] != stored or \
            (k == 2 and cv2.countNonZero(cv2.extractChannel(img, 2))) or \
            (k == 3 and not (img[..., 2] >> VALID_BIT).any()
             and (img[..., 1] >> VALID_BIT).any()):
        # K = 2 and K = 3 are both stored as 3 channels: a K = 2 file has
        # its valid bits in channel 1 and nothing in channel 2.
        raise ValueError(
            f'packed label {path!r} should be a 16-bit PNG with {k} packed '
            f'channel(s) for C={num_classes} classes, but got shape '
            f'{img.shape}, dtype {img.dtype}; was it written for another '
            'number of classes? Re-run the dataset converter.')
    if keep_stored:
        return img
    return np.ascontiguousarray(img[..., :k])
