# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Transforms for packed multi-label segmentation maps.

A multi-label target travels through the pipeline as the packed
``(H, W, K)`` uint16 bitmask of :mod:`mmseg_ext.utils.multilabel` in
``results['gt_seg_map']``, so MMSeg's geometric transforms move it unchanged
and exactly: ``RandomFlip``, ``RandomCrop`` (``cat_max_ratio=1``),
``Resize``/``RandomResize`` (nearest for seg maps), ``RandomRotate``
(``seg_pad_val`` 0 or 255 both read as ignored), ``Pad`` and ``Albu`` (e.g.
``HorizontalFlip``, ``ElasticTransform``, ``GridDistortion``, ``Affine``:
albumentations 2.x moves uint16 multi-channel masks with nearest
interpolation, and its fill value 0 reads as ignored). Do not use
transforms that mix label values (``PhotoMetricDistortion`` only touches the
image, so it is fine) or ``RandomFlip(swap_seg_labels=...)``.

MMSeg's ``RandomCrop(cat_max_ratio < 1)`` counts the *values* of the packed
map with ``np.unique`` (channel values, not pixels, and the ignored code 0
is not excluded), which has no per-pixel meaning for packed maps; use
:class:`MultiLabelRandomCrop` instead, which counts label combinations per
pixel.

In the pipeline a ``K = 2`` map (16 to 31 classes, e.g. 29 hand bones)
carries a third, zero channel (as in its PNG; see
:func:`pipeline_packed_map`): OpenCV's nearest ``warpAffine`` samples
2-channel images slightly differently from 1-, 3- and 4-channel ones (a
pixel or two per rotation land elsewhere), so a 2-channel label would not
match the image or the per-class result exactly; 3 channels do.
:class:`PackMultiLabelSegInputs` drops the extra channel. With ``K = 1``
OpenCV-based transforms return ``(H, W)`` instead of ``(H, W, 1)``; every
consumer here accepts both.
"""
from numbers import Number
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs, RandomCrop
from mmseg.registry import TRANSFORMS

from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.multilabel import (PACK_BITS, VALID_BIT,
                                        num_packed_channels, pack_label_map,
                                        pipeline_channels, read_packed_label)
from .packed_label_check import check_packed_label  # noqa: F401

__all__ = [
    'LoadMultiLabelAnnotations', 'PackLabelRegions', 'PackMultiLabelSegInputs',
    'MultiLabelRandomCrop', 'pipeline_packed_map', 'pipeline_channels'
]


def pipeline_packed_map(packed: np.ndarray) -> np.ndarray:
    """Append a zero channel to a ``(H, W, 2)`` packed map.

    OpenCV's nearest ``warpAffine`` (``RandomRotate``, albumentations'
    ``Affine``) samples 2-channel images slightly differently from 1-, 3-
    and 4-channel ones, so a 2-channel label would not follow the image
    exactly. Other maps are returned unchanged.

    Args:
        packed (np.ndarray): ``(H, W, K)`` uint16 packed map.

    Returns:
        np.ndarray: ``(H, W, 3)`` if ``K = 2``, else ``packed``.
    """
    if packed.ndim == 3 and packed.shape[-1] == 2:
        zeros = np.zeros(packed.shape[:2] + (1, ), dtype=packed.dtype)
        return np.concatenate([packed, zeros], axis=-1)
    return packed


def _check_num_classes(num_classes, name: str = 'num_classes'):
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(
            num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f'`{name}` should be a positive int or None, but '
                         f'got {num_classes!r}')
    return int(num_classes)


@TRANSFORMS.register_module()
class LoadMultiLabelAnnotations(BaseTransform):
    """Load a packed multi-label annotation (16-bit PNG).

    Reads ``results['seg_map_path']`` with
    :func:`mmseg_ext.utils.read_packed_label` (a file written by
    :func:`mmseg_ext.utils.write_packed_label`) into
    ``results['gt_seg_map']`` and appends ``'gt_seg_map'`` to
    ``results['seg_fields']``, as MMSeg's ``LoadAnnotations`` does, so the
    geometric transforms move it. Only local files are read (OpenCV).

    Required Keys:

    - seg_map_path (str)
    - num_classes (int, optional): used when the transform has no
      ``num_classes``; :class:`PackedMultiLabelDataset` puts it into every
      data info.

    Added Keys:

    - gt_seg_map (np.ndarray): ``(H, W, K)`` uint16 packed map (``(H, W,
      3)`` with a zero channel when ``K = 2``, see
      :func:`pipeline_packed_map`).
    - num_classes (int)

    Modified Keys:

    - seg_fields (list)

    Args:
        num_classes (int, optional): ``C``. Defaults to None (taken from
            ``results['num_classes']``).

    Raises:
        InputError: (a ``ValueError``) naming the label file, if it has
            another ``(H, W)`` than the loaded image (``ori_shape``, which
            ``LoadImageFromFile`` sets; the image file is named too) or
            sets bits of classes ``>= C``.
        ValueError: if ``C`` is unknown or disagrees with the data info, the
            file is not a packed label of ``C`` classes, or the data info
            asks for ``reduce_zero_label`` or a ``label_map`` (class subsets
            cannot be remapped on packed labels).
        FileNotFoundError: if the file does not exist.

    Examples:
        >>> pipeline = [
        ...     dict(type='LoadImageFromFile'),
        ...     dict(type='LoadMultiLabelAnnotations'),
        ...     dict(type='RandomFlip', prob=0.5),
        ...     dict(type='PackMultiLabelSegInputs')]
    """

    def __init__(self, num_classes: Optional[int] = None) -> None:
        self.num_classes = _check_num_classes(num_classes)

    def _resolve_num_classes(self, results: dict) -> int:
        path = results.get('seg_map_path')
        given = results.get('num_classes')
        if self.num_classes is not None:
            if given is not None and int(given) != self.num_classes:
                raise ValueError(
                    f'LoadMultiLabelAnnotations(num_classes='
                    f'{self.num_classes}) should match the data info of '
                    f'{path!r}, but it has num_classes={given}')
            return self.num_classes
        if given is None:
            raise ValueError(
                '`num_classes` should be given to LoadMultiLabelAnnotations '
                "or be in the data info (PackedMultiLabelDataset puts it "
                f'there), but got none for {path!r}')
        return _check_num_classes(given)

    def transform(self, results: dict) -> dict:
        """Load the packed map; see the class docstring."""
        if 'seg_map_path' not in results:
            raise ValueError('LoadMultiLabelAnnotations needs '
                             '`seg_map_path` in the data info, but got keys '
                             f'{sorted(results)}')
        path = results['seg_map_path']
        if results.get('reduce_zero_label'):
            raise ValueError(f'packed multi-label {path!r}: '
                             '`reduce_zero_label` should be False for packed '
                             'labels, but got True')
        if results.get('label_map'):
            raise ValueError(
                f'packed multi-label {path!r}: `label_map` should be None '
                '(dataset classes equal to its METAINFO classes), but got '
                f"{results['label_map']}; class subsets are not supported "
                'for packed labels')
        num_classes = self._resolve_num_classes(results)
        # The file stores K = 2 with the zero third channel the pipeline
        # wants (see pipeline_packed_map): no copy needed.
        try:
            packed = read_packed_label(path, num_classes, keep_stored=True)
        except InputError:
            raise
        except ValueError as e:  # not decodable, channels of another C
            raise InputError(str(e), path=path) from None
        check_packed_label(packed, num_classes, path, results)
        results['gt_seg_map'] = pipeline_packed_map(packed)
        results['num_classes'] = num_classes
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(num_classes={self.num_classes})'


@TRANSFORMS.register_module()
class PackLabelRegions(BaseTransform):
    """Turn a class-index map into a packed multi-label map of regions.

    Class ``k`` of the result is set where ``gt_seg_map`` is one of
    ``regions[k]`` (:func:`mmseg_ext.utils.pack_label_map`); pixels equal to
    ``ignore_index`` are ignored. E.g. a binary building mask (0/1) is
    ``regions=[[1]]``; BraTS labels are ``regions=[[1, 2, 4], [1, 4], [4]]``
    (whole tumour, tumour core, enhancing tumour). Put it right after
    ``LoadAnnotations``.

    Required Keys:

    - gt_seg_map (np.ndarray): ``(H, W)`` integer label map.

    Modified Keys:

    - gt_seg_map: ``(H, W, K)`` uint16 packed map (3 channels when
      ``K = 2``, see :func:`pipeline_packed_map`).

    Added Keys:

    - num_classes (int): ``len(regions)``.

    Args:
        regions (Sequence[Sequence[int]]): Label values of each class.
        ignore_index (int, optional): Ignored label value. Defaults to 255.

    Raises:
        ValueError: on empty regions, regions holding ``ignore_index``, or
            a ``gt_seg_map`` that is not ``(H, W)`` (e.g. already packed).
        TypeError: on non-int label values or ``ignore_index``.
    """

    def __init__(self,
                 regions: Sequence[Sequence[int]],
                 ignore_index: Optional[int] = 255) -> None:
        if isinstance(regions, (str, bytes)) or not isinstance(
                regions, Sequence) or not regions or any(
                    isinstance(r, (str, bytes)) or not isinstance(
                        r, Sequence) or not r for r in regions):
            raise ValueError('`regions` should be a non-empty list of '
                             'non-empty lists of label values, e.g. [[1]], '
                             f'but got {regions!r}')
        bad = [
            v for r in regions for v in r
            if isinstance(v, bool) or not isinstance(v, (int, np.integer))
        ]
        if bad:
            raise TypeError('`regions` should hold int label values, but got '
                            f'{bad!r} in {regions!r}')
        if ignore_index is not None and (isinstance(ignore_index, bool) or
                                         not isinstance(
                                             ignore_index,
                                             (int, np.integer))):
            raise TypeError('`ignore_index` should be an int or None, but '
                            f'got {ignore_index!r}')
        if ignore_index is not None and any(ignore_index in r
                                            for r in regions):
            raise ValueError(
                f'`regions` should not contain `ignore_index` '
                f'({ignore_index}): those pixels are ignored, never a class, '
                f'but got {regions!r}; drop it or change `ignore_index`')
        self.regions = [[int(v) for v in r] for r in regions]
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        """Pack the regions; see the class docstring."""
        label = results.get('gt_seg_map')
        if label is None or np.asarray(label).ndim != 2:
            shape = None if label is None else np.asarray(label).shape
            raise ValueError(
                'PackLabelRegions needs `gt_seg_map` of shape (H, W) (a '
                'class-index map from LoadAnnotations), but got '
                f'{shape} for {results.get("seg_map_path")!r}')
        results['gt_seg_map'] = pipeline_packed_map(
            pack_label_map(label, self.regions, self.ignore_index))
        results['num_classes'] = len(self.regions)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(regions={self.regions}, '
                f'ignore_index={self.ignore_index})')


@TRANSFORMS.register_module()
class PackMultiLabelSegInputs(PackSegInputs):
    """Pack image and packed multi-label map for the model.

    As MMSeg's ``PackSegInputs`` (image, meta keys), but the packed
    ``(H, W, K)`` (or ``(H, W)`` for ``K = 1``) uint16 ``gt_seg_map``
    becomes ``data_sample.gt_sem_seg`` = ``PixelData`` of a ``(K, H, W)``
    **int16** tensor: the uint16 bits are reinterpreted (``view``, no
    int64 widening, no value change); only the channel-first layout costs
    one copy of ``2 * K`` bytes per pixel when ``K > 1`` (none when
    ``K = 1``). :class:`MultiLabelSegDataPreProcessor` unpacks it on the
    model's device. int16 marks a packed label there (MMSeg's own
    ``PackSegInputs`` gives int64). The zero channel a ``K = 2`` map has in
    the pipeline (:func:`pipeline_packed_map`) is dropped when ``C`` is
    known (else by the data preprocessor).

    Required Keys:

    - img (optional), gt_seg_map (optional), and the ``meta_keys``.

    Added Keys:

    - inputs (torch.Tensor): ``(3, H, W)`` image.
    - data_samples (SegDataSample): with ``gt_sem_seg`` and the meta keys,
      including ``num_classes`` when known; ``gt_dist_map`` (``(C, H, W)``)
      when ``results`` has one (:class:`GenerateDistanceMaps`).

    Args:
        num_classes (int, optional): ``C``; checks the channel count and is
            stored in the metainfo. Defaults to None (``results
            ['num_classes']`` is used if present).
        meta_keys (Sequence[str]): As ``PackSegInputs``, plus
            ``'num_classes'`` and ``'unify_flip'`` (set by datasets that
            flip samples at load, see :class:`UnifyFlip`; the segmentor
            flips its outputs back).

    Raises:
        ValueError: if the map is not uint16 ``(H, W, K)`` with ``K <= 4``
            or ``K`` does not fit ``num_classes``.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 meta_keys: Sequence[str] = (
                     'img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                     'reduce_zero_label', 'num_classes', 'unify_flip')
                 ) -> None:
        super().__init__(meta_keys=meta_keys)
        self.num_classes = _check_num_classes(num_classes)

    def transform(self, results: dict) -> dict:
        """Pack the inputs; see the class docstring."""
        gt = results.get('gt_seg_map')
        if self.num_classes is not None:
            results['num_classes'] = self.num_classes
        rest = {k: v for k, v in results.items() if k != 'gt_seg_map'}
        packed_results = super().transform(rest)
        if gt is not None:
            packed_results['data_samples'].gt_sem_seg = PixelData(
                data=self.to_packed_tensor(gt, results))
        if results.get('gt_dist_map') is not None:  # GenerateDistanceMaps
            packed_results['data_samples'].gt_dist_map = PixelData(
                data=torch.from_numpy(np.ascontiguousarray(
                    results['gt_dist_map'])))
        return packed_results

    def to_packed_tensor(self, gt: np.ndarray,
                         results: Optional[dict] = None) -> torch.Tensor:
        """``(H, W, K)`` uint16 -> ``(K, H, W)`` int16 tensor, same bits."""
        where = (results or {}).get('seg_map_path')
        gt = np.asarray(gt)
        if gt.ndim == 2:
            gt = gt[..., None]
        if gt.dtype != np.uint16 or gt.ndim != 3 or not \
                1 <= gt.shape[-1] <= 4:
            raise ValueError(
                'PackMultiLabelSegInputs needs a packed `gt_seg_map` of '
                f'shape (H, W, K) uint16, but got {gt.shape} {gt.dtype} for '
                f'{where!r}; load it with LoadMultiLabelAnnotations or '
                'PackLabelRegions')
        num_classes = (results or {}).get('num_classes', self.num_classes)
        if num_classes is not None:
            k = num_packed_channels(int(num_classes))
            if gt.shape[-1] not in (k, pipeline_channels(int(num_classes))):
                raise ValueError(
                    f'a packed label of C={num_classes} classes should have '
                    f'K={k} channels, but got {gt.shape} for {where!r}')
            gt = gt[..., :k]  # drop the pipeline's zero channel (K = 2)
        # Same-size reinterpretation, no copy; the channel-first layout is a
        # copy only when K > 1 (or the map is a strided view, e.g. flipped).
        chw = np.ascontiguousarray(gt.view(np.int16).transpose(2, 0, 1))
        return torch.from_numpy(chw)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'meta_keys={self.meta_keys})')


@TRANSFORMS.register_module()
class MultiLabelRandomCrop(RandomCrop):
    """MMSeg's ``RandomCrop`` with a ``cat_max_ratio`` for packed maps.

    Identical to ``RandomCrop`` (the crop is taken from every seg field),
    except the ``cat_max_ratio`` test: a "category" is a pixel's whole label
    *combination* (all ``K`` packed channels together, e.g. background only,
    or bones 3 and 4 overlapping), counted over the valid pixels of the crop
    (ignored pixels, valid bit clear, are left out). A crop is kept when at
    least two combinations occur and the most frequent one covers less than
    ``cat_max_ratio`` of the valid pixels, retrying up to 10 times as MMSeg
    does. (MMSeg's ``RandomCrop`` would count the values of the channels,
    not pixels, and not exclude ignored pixels.)

    Required Keys:

    - img
    - gt_seg_map: packed ``(H, W, K)`` or ``(H, W)`` uint16.

    Modified Keys:

    - img
    - img_shape
    - seg fields

    Args:
        crop_size (int | tuple[int, int]): ``(h, w)`` of the crop.
        cat_max_ratio (float): Largest share of one label combination.
            Defaults to 1.0 (no test).
        ignore_index (int): Unused (ignored pixels are those with a clear
            valid bit); kept for config compatibility. Defaults to 255.

    Raises:
        ValueError: if ``crop_size`` is not a positive int or two of them,
            or ``cat_max_ratio`` is not in ``(0, 1]``.
    """

    def __init__(self,
                 crop_size,
                 cat_max_ratio: float = 1.,
                 ignore_index: int = 255) -> None:
        size = (crop_size, crop_size) if isinstance(
            crop_size, (int, np.integer)) else crop_size
        if isinstance(crop_size, bool) or not isinstance(
                size, (list, tuple)) or len(size) != 2 or any(
                    isinstance(v, bool) or not isinstance(
                        v, (int, np.integer)) or v < 1 for v in size):
            raise ValueError('`crop_size` should be a positive int or (h, w) '
                             f'positive ints, but got {crop_size!r}')
        if isinstance(cat_max_ratio, bool) or not isinstance(
                cat_max_ratio, Number) or not 0 < cat_max_ratio <= 1:
            raise ValueError(
                '`cat_max_ratio` should be in (0, 1] (1.0: no test; near 0 '
                'no crop passes and the 10th try is always taken), but got '
                f'{cat_max_ratio!r}')
        super().__init__(
            crop_size=tuple(int(v) for v in size),
            cat_max_ratio=float(cat_max_ratio),
            ignore_index=ignore_index)

    @cache_randomness
    def crop_bbox(self, results: dict) -> tuple:
        """A random crop box meeting ``cat_max_ratio`` (10 tries)."""
        img = results['img']

        def generate() -> Tuple[int, int, int, int]:
            margin_h = max(img.shape[0] - self.crop_size[0], 0)
            margin_w = max(img.shape[1] - self.crop_size[1], 0)
            offset_h = np.random.randint(0, margin_h + 1)
            offset_w = np.random.randint(0, margin_w + 1)
            return (offset_h, offset_h + self.crop_size[0], offset_w,
                    offset_w + self.crop_size[1])

        crop_bbox = generate()
        if self.cat_max_ratio < 1.:
            for _ in range(10):
                cnt = self.combination_counts(
                    self.crop(results['gt_seg_map'], crop_bbox))
                if len(cnt) > 1 and cnt.max() / cnt.sum() < \
                        self.cat_max_ratio:
                    break
                crop_bbox = generate()
        return crop_bbox

    @staticmethod
    def combination_counts(packed: np.ndarray) -> np.ndarray:
        """Pixel count of each label combination among valid pixels."""
        packed = np.asarray(packed)
        if packed.ndim == 2:
            packed = packed[..., None]
        if packed.ndim != 3 or packed.dtype != np.uint16:
            raise ValueError('MultiLabelRandomCrop needs a packed '
                             '`gt_seg_map` of shape (H, W, K) uint16, but got '
                             f'{packed.shape} {packed.dtype}')
        valid = (packed[..., -1] >> VALID_BIT) & 1 == 1
        key = np.zeros(packed.shape[:2], dtype=np.int64)
        for ch in range(packed.shape[-1]):
            key |= packed[..., ch].astype(np.int64) << (PACK_BITS * ch)
        _, counts = np.unique(key[valid], return_counts=True)
        return counts

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crop_size={self.crop_size}, '
                f'cat_max_ratio={self.cat_max_ratio})')
