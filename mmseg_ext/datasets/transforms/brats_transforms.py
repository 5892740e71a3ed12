# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Load one axial BraTS slice (or a 2.5D stack) from the slice cache."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from mmseg_ext.utils.errors import InputError

__all__ = ['LoadBraTSSlice']


@TRANSFORMS.register_module()
class LoadBraTSSlice(BaseTransform):
    """Load slice ``z`` of a BraTS case from the converter's ``.npy`` cache.

    ``image.npy`` (``(Z, X, Y, C)`` float16) and ``label.npy`` (``(Z, X, Y,
    1)`` uint16 packed WT/TC/ET) are memory-mapped (``np.load(...,
    mmap_mode='r')``): one slice reads ``X * Y * C * 2`` bytes, not the
    volume. With ``k`` context slices the image holds the slices ``z - k ..
    z + k`` of every modality, indices clamped to ``[0, Z - 1]`` at the
    volume's edges (slice 0 repeats for ``z - 1 < 0``), **slice-major**:
    channel ``j * M + m`` is modality ``m`` of slice ``z - k + j`` (``M``
    modalities; ``j = k`` is the centre slice). The label is slice ``z``
    only.

    MMSeg's ``LoadBiomedicalImageFromFile`` / ``LoadBiomedicalData`` do not
    fit: they decode a whole NIfTI volume (``(C, Z, Y, X)``, the 3D
    pipeline of ``BioMedical3DRandomCrop``) for every sample, i.e. 4 x
    ~9 MB of gzip per slice instead of one slice of the cache, and give no
    slice selection, no 2.5D neighbours and no packed multi-label regions.

    Required Keys:

    - img_path (str): ``image.npy`` of the case.
    - slice_index (int): ``z``.
    - seg_map_path (str, optional): ``label.npy`` (labelled cases).
    - context_slices (int, optional): used when the transform's own
      ``context_slices`` is None (``BraTSDataset`` sets it).
    - modality_channels (list[int] | None, optional): channels of
      ``image.npy`` to use, in order (None: all).

    Added Keys:

    - img (np.ndarray): ``(H, W, M * (2k + 1))`` float32, ``H = X``,
      ``W = Y``.
    - gt_seg_map (np.ndarray): ``(H, W, 1)`` uint16 packed (labelled only).
    - img_shape, ori_shape (tuple): ``(H, W)``.
    - num_classes (int): 3 (labelled only, if not set).

    Modified Keys:

    - seg_fields (list): ``'gt_seg_map'`` appended (labelled only).

    Args:
        context_slices (int, optional): ``k``. Defaults to None (the data
            info's ``context_slices``, else 0).

    Raises:
        ValueError: for a bad ``context_slices``, or one that disagrees
            with the data info.
        InputError: naming the file, if a cache file does not have the
            expected shape or dtype (a stale cache: re-run the converter).

    Examples:
        >>> pipeline = [dict(type='LoadBraTSSlice'),
        ...             dict(type='RandomFlip', prob=0.5),
        ...             dict(type='PackMultiLabelSegInputs')]
    """

    def __init__(self, context_slices: Optional[int] = None) -> None:
        if context_slices is not None and (
                isinstance(context_slices, bool)
                or not isinstance(context_slices, int) or context_slices < 0):
            raise ValueError('`context_slices` should be None or an int >= '
                             f'0, but got {context_slices!r}')
        self.context_slices = context_slices

    def _context(self, results: dict) -> int:
        given = results.get('context_slices')
        if self.context_slices is None:
            return int(given or 0)
        if given is not None and int(given) != self.context_slices:
            raise ValueError(
                f'LoadBraTSSlice(context_slices={self.context_slices}) '
                'should match the dataset, but the data info of '
                f"{results.get('img_path')!r} has context_slices={given}")
        return self.context_slices

    def transform(self, results: dict) -> dict:
        """Load the slice; see the class docstring."""
        path = results['img_path']
        z = int(results['slice_index'])
        k = self._context(results)
        image = np.load(path, mmap_mode='r')
        if image.ndim != 4 or image.dtype != np.float16:
            raise InputError(path=path, reason='BraTS slice cache image',
                             value=f'{image.shape} {image.dtype}',
                             expected='(Z, X, Y, C) float16; re-run the '
                             'converter')
        depth = image.shape[0]
        if not 0 <= z < depth:
            raise InputError(path=path, reason='slice index', value=z,
                             expected=f'0 <= z < Z = {depth}')
        zs = np.clip(np.arange(z - k, z + k + 1), 0, depth - 1)
        channels = results.get('modality_channels')
        stack = image[zs] if len(zs) > 1 else image[z:z + 1]
        if channels is not None:
            stack = stack[..., list(channels)]
        # (2k + 1, X, Y, M) -> (X, Y, (2k + 1) * M), slice-major.
        img = np.ascontiguousarray(
            np.moveaxis(stack, 0, 2).reshape(stack.shape[1:3] + (-1, )),
            dtype=np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        seg_path = results.get('seg_map_path')
        if seg_path is not None:
            label = np.load(seg_path, mmap_mode='r')
            if label.dtype != np.uint16 or label.ndim != 4 or \
                    label.shape[:3] != image.shape[:3] or \
                    label.shape[3] != 1:
                raise InputError(
                    path=seg_path, reason='BraTS slice cache label',
                    value=f'{label.shape} {label.dtype}',
                    expected=f'{image.shape[:3] + (1, )} uint16 as its '
                    'image.npy; re-run the converter')
            results['gt_seg_map'] = np.array(label[z])
            results.setdefault('num_classes', 3)
            seg_fields = results.setdefault('seg_fields', [])
            if 'gt_seg_map' not in seg_fields:
                seg_fields.append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'context_slices={self.context_slices})')
