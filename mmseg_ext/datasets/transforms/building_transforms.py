# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Transforms of the building pipeline: RLE masks and a shape-safe Albu."""
import copy
from typing import Dict, Optional, Tuple

import cv2
from mmcv.transforms import BaseTransform
from mmseg.datasets.transforms import Albu
from mmseg.registry import TRANSFORMS

from mmseg_ext.datasets.building_rle import CSVRowError, normalize_rle
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.rle import rle_decode


def _row_context(results: dict) -> str:
    """``'train.csv: line 12 (TRAIN_0010)'`` when the data info has them."""
    path, where = _row_place(results)
    return f'{path}: {where}' if where else path


def _row_place(results: dict) -> Tuple[str, Optional[str]]:
    """``(file, place in it)``: the CSV and ``'line 12 (TRAIN_0010)'``, or
    the image and None."""
    path = results.get('csv_path')
    if path is None:
        return f'image {results.get("img_path")!r}', None
    where = f'line {results.get("csv_line", "?")}'
    if results.get('img_id') is not None:
        where += f' ({results["img_id"]})'
    return path, where


@TRANSFORMS.register_module()
class LoadRLEAnnotations(BaseTransform):
    """Decode the data info's RLE string into a binary ``gt_seg_map``.

    The mask is decoded at the size of the loaded image: ``ori_shape``
    (set by ``LoadImageFromFile`` and left alone by ``Resize``, so this can
    follow a test-time ``Resize`` like mmseg's ``LoadAnnotations``), else
    the shape of ``img``. When the data info also has ``height``/``width``
    (the dataset's ``image_size``), the image must have that size.

    Required Keys:

    - mask_rle (str): ``'start length ...'``; ``''`` or ``'-1'``: empty.
    - ori_shape (tuple) or img (np.ndarray): the loaded image.
    - height, width (int, optional): expected image size.
    - csv_path, csv_line, img_id (optional): named in errors.

    Added Keys:

    - gt_seg_map (np.ndarray): ``(H, W)`` uint8, 1 = building, 0 = not.

    Modified Keys:

    - seg_fields (list): ``'gt_seg_map'`` appended.

    Args:
        rle_key (str): Key of the RLE string. Defaults to ``'mask_rle'``.

    Raises:
        CSVRowError: (a ``ValueError``) naming the CSV file and line when
            the row has no RLE (a test CSV), the runs do not fit the image,
            or the image has another size than ``height``/``width``.
        TypeError: if ``rle_key`` is not a non-empty str.

    Examples:
        >>> pipeline = [dict(type='LoadImageFromFile'),
        ...             dict(type='LoadRLEAnnotations')]
    """

    def __init__(self, rle_key: str = 'mask_rle') -> None:
        if not isinstance(rle_key, str) or not rle_key:
            raise TypeError('`rle_key` should be a non-empty str (the '
                            "results key of the RLE, e.g. 'mask_rle'), but "
                            f'got {rle_key!r}')
        self.rle_key = rle_key

    def transform(self, results: dict) -> dict:
        rle = results.get(self.rle_key)
        if rle is None:
            raise CSVRowError(
                f'{_row_context(results)}: no `{self.rle_key}` to decode '
                '(a test CSV has no mask column; drop LoadRLEAnnotations '
                'from the test pipeline)')
        if 'ori_shape' in results:
            shape = tuple(results['ori_shape'][:2])
        elif 'img' in results:
            shape = tuple(results['img'].shape[:2])
        else:
            raise KeyError('LoadRLEAnnotations needs `ori_shape` or `img`: '
                           'put it after LoadImageFromFile')
        if 'height' in results and 'width' in results and (
                (results['height'], results['width']) != shape):
            raise CSVRowError(
                f'{_row_context(results)}: the image is {shape[0]}x'
                f'{shape[1]}, but the dataset says every image is '
                f'{results["height"]}x{results["width"]} (`image_size`)')
        try:
            mask = rle_decode(normalize_rle(rle), shape)
        except InputError as e:
            path, where = _row_place(results)
            raise e.located(
                path, ', '.join(x for x in (
                    where, f'field {self.rle_key!r} (for the {shape[0]}x'
                    f'{shape[1]} image)') if x),
                cls=CSVRowError) from None
        results['gt_seg_map'] = mask
        seg_fields = list(results.get('seg_fields', []))
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        results['seg_fields'] = seg_fields
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(rle_key={self.rle_key!r})'


@TRANSFORMS.register_module()
class AlbuSeg(Albu):
    """mmseg's ``Albu`` with the shape keys kept right.

    mmseg's :class:`mmseg.datasets.transforms.Albu` passes every key of
    ``results`` to albumentations and copies the image and mask back, but
    leaves ``img_shape`` (and ``pad_shape``) as they were, so after a crop
    or resize in albumentations ``img_shape`` is stale: the data
    preprocessor, ``PackSegInputs`` metainfo and test-time rescaling then
    see the old size. This subclass

    - passes albumentations only the image and the seg maps (``keymap``:
      ``img -> image``, ``gt_seg_map -> mask`` by default; other seg fields
      as extra ``mask`` targets),
    - sets ``img_shape`` (and ``pad_shape`` when present) to the new
      ``(H, W)``, and ``scale_factor`` when the size changed without a crop
      is unknown, so it is dropped,
    - with ``update_ori_shape=True``, also sets ``ori_shape``: the
      augmented image then counts as the original, so predictions are
      resized back to it, not to the file's size (e.g. a validation
      ``Resize`` that brings 1024 x 1024 tiles to the coarser test scale,
      with the ground truth resized alike: Dice and ``min_area`` are then
      measured in test-scale pixels),
    - converts BGR to RGB and back only for 3-channel images.

    Required Keys:

    - img (np.ndarray): ``(H, W, 3)`` BGR (or ``(H, W)``) image.
    - gt_seg_map (np.ndarray, optional): ``(H, W)`` or ``(H, W, K)``.
    - seg_fields (list, optional): other seg maps to transform alike.

    Modified Keys:

    - img, gt_seg_map and the other ``seg_fields``
    - img_shape, pad_shape (if present), ori_shape (with
      ``update_ori_shape``)

    Removed Keys:

    - scale_factor (if the size changed: no longer meaningful)

    Args:
        transforms (list[dict]): albumentations transforms, as for
            ``Albu`` (e.g. ``dict(type='CropNonEmptyMaskIfExists', height=512,
            width=512)``).
        keymap (dict, optional): ``{results key: albumentations key}``.
            Defaults to ``{'img': 'image', 'gt_seg_map': 'mask'}``.
        update_pad_shape (bool): Also set ``pad_shape`` when it is absent.
            Defaults to False.
        update_ori_shape (bool): Also set ``ori_shape`` to the new size.
            Defaults to False.

    Raises:
        TypeError: if ``transforms`` is not a list of dicts with a
            ``type``, ``keymap`` not a str-to-str dict, or a flag not a
            bool.
        ValueError: if ``keymap`` does not map ``img``.

    Examples:
        >>> aug = TRANSFORMS.build(dict(
        ...     type='AlbuSeg',
        ...     transforms=[dict(type='RandomCrop', height=32, width=32)]))
    """

    def __init__(self,
                 transforms,
                 keymap: Optional[Dict[str, str]] = None,
                 update_pad_shape: bool = False,
                 update_ori_shape: bool = False) -> None:
        if isinstance(transforms, dict) or not isinstance(
                transforms, (list, tuple)) or any(
                    not isinstance(t, dict) or 'type' not in t
                    for t in transforms):
            raise TypeError(
                '`transforms` should be a list of albumentations dicts with '
                "a 'type', e.g. [dict(type='HorizontalFlip', p=0.5)], but "
                f'got {transforms!r}')
        if keymap is not None:
            if not isinstance(keymap, dict) or any(
                    not isinstance(k, str) or not isinstance(v, str)
                    for k, v in keymap.items()):
                raise TypeError('`keymap` should be a dict of str to str, '
                                f'but got {keymap!r}')
            if 'img' not in keymap:
                raise ValueError(
                    "`keymap` should map 'img' (e.g. {'img': 'image', "
                    f"'gt_seg_map': 'mask'}}), but got {keymap!r}")
        for name, flag in (('update_pad_shape', update_pad_shape),
                           ('update_ori_shape', update_ori_shape)):
            if not isinstance(flag, bool):
                raise TypeError(f'`{name}` should be True or False, but got '
                                f'{flag!r}')
        super().__init__(
            copy.deepcopy(transforms), keymap=keymap,
            update_pad_shape=update_pad_shape)
        self.update_ori_shape = update_ori_shape
        self._extra_targets = {}

    def _aug_for(self, extra_fields):
        """The Compose, with ``extra_fields`` registered as mask targets."""
        new = [f for f in extra_fields if f not in self._extra_targets]
        if new:
            self._extra_targets.update({f: 'mask' for f in new})
            self.aug.add_targets(self._extra_targets)
        return self.aug

    def transform(self, results: dict) -> dict:
        img = results['img']
        old_shape = img.shape[:2]
        rgb = img.ndim == 3 and img.shape[2] == 3
        albu_in = {}
        for key, albu_key in self.keymap_to_albu.items():
            if key in results:
                albu_in[albu_key] = results[key]
        if rgb:
            albu_in['image'] = cv2.cvtColor(albu_in['image'],
                                            cv2.COLOR_BGR2RGB)
        extra = [
            f for f in results.get('seg_fields', [])
            if f not in self.keymap_to_albu and f in results
        ]
        for field in extra:
            albu_in[field] = results[field]
        out = self._aug_for(extra)(**albu_in)
        if rgb:
            out['image'] = cv2.cvtColor(out['image'], cv2.COLOR_RGB2BGR)
        for albu_key, value in out.items():
            results[self.keymap_back.get(albu_key, albu_key)] = value
        new_shape = results['img'].shape[:2]
        results['img_shape'] = new_shape
        if 'pad_shape' in results or self.update_pad_shape:
            results['pad_shape'] = new_shape
        if self.update_ori_shape:
            results['ori_shape'] = new_shape
        if new_shape != old_shape:
            results.pop('scale_factor', None)
        for field in results.get('seg_fields', []):
            seg = results.get(field)
            if seg is not None and seg.shape[:2] != new_shape:
                raise RuntimeError(
                    f'AlbuSeg: `{field}` is {seg.shape[:2]} but the image '
                    f'is {new_shape} after {self.transforms}; use '
                    'transforms that move masks with the image')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(transforms={self.transforms}, '
                f'keymap={self.keymap_to_albu}, '
                f'update_pad_shape={self.update_pad_shape}, '
                f'update_ori_shape={self.update_ori_shape})')


__all__ = ['LoadRLEAnnotations', 'AlbuSeg']
