# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Copy-paste of rare-class objects from other training images.

"Simple Copy-Paste is a Strong Data Augmentation Method for Instance
Segmentation" (Ghiasi et al., CVPR 2021), for semantic labels: an object
(a connected component of one class) is cut from another training image and
pasted, scaled and flipped, at a random place of the current one.

It follows MMSeg's multi-image pattern (``RandomMosaic``):
``MultiImageMixDataset`` calls :meth:`RareClassCopyPaste.get_indices` with
the wrapped dataset, loads those samples through the dataset's pipeline and
passes them as ``results['mix_results']``. The bank that picks the source
is built once from the labels: the per-image pixel counts of the dataset's
pixel counter (the cache of ``ClassWeightHook`` / ``RareClassSampler`` in
the work dir, so it is free when they ran), which give the class
frequencies (the same DAFormer ``P(c)`` as ``RareClassSampler``) and the
images containing each class. The components themselves are found on the
loaded source label (one ``cv2.connectedComponentsWithStats`` over one
class mask), not stored: that stays right whatever the inner pipeline does
to the source (a flip, a crop) and costs well under a millisecond at
128 x 128 (``benchmarks/bench_copy_paste.py``).
"""
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from mmseg_ext.utils.multilabel import class_bit

__all__ = ['RareClassCopyPaste', 'class_mask', 'paste_objects']


def class_mask(label: np.ndarray, cls: int) -> np.ndarray:
    """``(H, W)`` bool mask of class ``cls`` in a label map.

    A uint16 ``(H, W, K)`` (or ``(H, W)``) map is packed
    (:mod:`mmseg_ext.utils.multilabel`): the pixels with ``cls``'s bit set
    (the packers set class bits only on valid pixels, so ignored pixels are
    never in it); any other map is a class-index map.
    """
    if label.dtype == np.uint16:
        packed = label if label.ndim == 3 else label[..., None]
        ch, bit = class_bit(cls)
        return ((packed[..., ch] >> bit) & 1) == 1
    return label == cls


def _nearest_resize(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize by index arithmetic (any dtype, any
    channels; image and masks stay aligned pixel for pixel)."""
    rows = np.minimum((np.arange(h) + 0.5) * arr.shape[0] / h,
                      arr.shape[0] - 1).astype(np.int64)
    cols = np.minimum((np.arange(w) + 0.5) * arr.shape[1] / w,
                      arr.shape[1] - 1).astype(np.int64)
    return arr[rows][:, cols]


def paste_objects(img: np.ndarray,
                  label: np.ndarray,
                  src_img: np.ndarray,
                  src_label: np.ndarray,
                  cls: int,
                  rng: np.random.Generator,
                  max_objects: int = 1,
                  min_area: int = 1,
                  scale: Tuple[float, float] = (1.0, 1.0),
                  flip_prob: float = 0.0) -> int:
    """Paste connected components of ``cls`` from a source, in place.

    Up to ``max_objects`` components (8-connected, ``>= min_area`` pixels)
    of ``cls`` in ``src_label`` are chosen at random, each scaled by a
    factor drawn from ``scale``, flipped horizontally with ``flip_prob``
    (image and label the same way, nearest neighbour) and pasted at a
    uniformly random place of ``img`` / ``label`` (cut where it does not
    fit). On the pasted pixels the image takes the source's pixels and the
    label:

    - class-index map: becomes ``cls`` (also over ignored pixels: the
      pasted object is really there);
    - packed multi-label map: takes the source's packed value (``cls``'s
      bit and the valid bit set, plus the bits of any class overlapping
      ``cls`` there in the source): the source image is what is seen
      there, so its labels are; the target's bits outside stay as they
      are.

    Args:
        img (np.ndarray): ``(H, W, 3)`` target image (modified).
        label (np.ndarray): ``(H, W)`` class map or ``(H, W, K)`` uint16
            packed map (modified).
        src_img (np.ndarray): ``(H', W', 3)`` source image.
        src_label (np.ndarray): Source label, same kind as ``label``.
        cls (int): The class to paste.
        rng (np.random.Generator): Randomness.
        max_objects (int): Most components pasted. Defaults to 1.
        min_area (int): Smallest component (pixels). Defaults to 1.
        scale (tuple[float, float]): Scale range. Defaults to (1, 1).
        flip_prob (float): Horizontal flip probability. Defaults to 0.

    Returns:
        int: Pixels pasted.

    Raises:
        ValueError: if the label kinds or image/label shapes disagree.
    """
    if (label.dtype == np.uint16) != (src_label.dtype == np.uint16):
        raise ValueError('`label` and `src_label` should both be packed '
                         f'(uint16) or both class maps, but got '
                         f'{label.dtype} and {src_label.dtype}')
    if img.shape[:2] != label.shape[:2] or \
            src_img.shape[:2] != src_label.shape[:2]:
        raise ValueError(
            'image and label should have the same (H, W), but got '
            f'{img.shape[:2]} / {label.shape[:2]} (target) and '
            f'{src_img.shape[:2]} / {src_label.shape[:2]} (source)')
    mask = class_mask(src_label, cls).astype(np.uint8)
    num, cc, stats, _ = cv2.connectedComponentsWithStats(mask, None, 8)
    comps = [k for k in range(1, num) if stats[k, cv2.CC_STAT_AREA] >=
             max(1, min_area)]
    if not comps:
        return 0
    chosen = rng.permutation(comps)[:max(1, max_objects)]
    height, width = label.shape[:2]
    pasted = 0
    for k in chosen:
        x, y, w, h = (int(v) for v in stats[k, :4])
        obj = cc[y:y + h, x:x + w] == k
        patch_img = src_img[y:y + h, x:x + w]
        patch_lbl = src_label[y:y + h, x:x + w]
        s = float(rng.uniform(scale[0], scale[1]))
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        if (nh, nw) != (h, w):
            obj = _nearest_resize(obj, nh, nw)
            patch_img = _nearest_resize(patch_img, nh, nw)
            patch_lbl = _nearest_resize(patch_lbl, nh, nw)
        if rng.random() < flip_prob:
            obj, patch_img, patch_lbl = (obj[:, ::-1], patch_img[:, ::-1],
                                         patch_lbl[:, ::-1])
        # Cut a patch larger than the target at a random offset.
        oy = int(rng.integers(0, nh - height + 1)) if nh > height else 0
        ox = int(rng.integers(0, nw - width + 1)) if nw > width else 0
        nh, nw = min(nh, height), min(nw, width)
        obj = obj[oy:oy + nh, ox:ox + nw]
        patch_img = patch_img[oy:oy + nh, ox:ox + nw]
        patch_lbl = patch_lbl[oy:oy + nh, ox:ox + nw]
        ty = int(rng.integers(0, height - nh + 1))
        tx = int(rng.integers(0, width - nw + 1))
        img_view = img[ty:ty + nh, tx:tx + nw]
        lbl_view = label[ty:ty + nh, tx:tx + nw]
        img_view[obj] = patch_img[obj]
        if label.dtype == np.uint16:
            lbl_view[obj] = patch_lbl[obj]
        else:
            lbl_view[obj] = cls
        pasted += int(obj.sum())
    return pasted


@TRANSFORMS.register_module()
class RareClassCopyPaste(BaseTransform):
    """Paste objects of rare classes from other training images.

    Use it first in the pipeline of MMSeg's ``MultiImageMixDataset``,
    around the dataset whose own pipeline loads image and label
    (``LoadAnnotations`` or ``LoadMultiLabelAnnotations``)::

        train_dataloader = dict(dataset=dict(
            _delete_=True,
            type='MultiImageMixDataset',
            dataset=dict(type='SyntheticImbalanceDataset', ...,
                         pipeline=[dict(type='LoadImageFromFile'),
                                   dict(type='LoadAnnotations')]),
            pipeline=[dict(type='RareClassCopyPaste', prob=0.5),
                      dict(type='RandomFlip', prob=0.5),
                      dict(type='PackSegInputs')]))

    With probability ``prob`` :meth:`get_indices` draws a class ``c`` with
    DAFormer's ``P(c) ∝ exp((1 - f_c) / temperature)`` (the
    ``RareClassSampler`` frequencies, over ``classes``), then a source
    image containing ``c`` (``>= min_pixels``); otherwise it returns no
    index and nothing is loaded or pasted (no cost). :meth:`transform`
    pastes up to ``max_objects`` connected components of ``c`` from the
    source (:func:`paste_objects`: scale jitter in ``scale``, horizontal
    flip with ``flip_prob``; a class map takes ``c`` on the pasted pixels,
    a packed map the source's bits). The bank (per-image pixel counts) is
    built on first use from the dataset's pixel counter and cached in the
    work dir (:func:`mmseg_ext.datasets.samplers.find_work_dir`), shared
    with ``ClassWeightHook`` and ``RareClassSampler``.

    Cost (``benchmarks/bench_copy_paste.py``, 128 x 128 demo data): one more
    sample loaded through the inner pipeline per paste, i.e. about
    ``1 + prob`` times the loading cost, plus a component search on one
    mask.

    Required Keys:

    - img (np.ndarray): ``(H, W, 3)``.
    - gt_seg_map (np.ndarray): ``(H, W)`` class map or ``(H, W, K)``
      uint16 packed map.
    - mix_results (list[dict], optional): the source sample (from
      ``MultiImageMixDataset``); absent or empty: no paste.

    Modified Keys:

    - img
    - gt_seg_map

    Added Keys:

    - copy_paste (dict): ``cls`` and ``pixels`` pasted (when pasted).

    Args:
        prob (float): Probability of pasting per sample. Defaults to 0.5.
        temperature (float): Class temperature, as ``RareClassSampler``.
            Defaults to 0.01.
        min_pixels (int): Pixels of a class for an image to be a source.
            Defaults to 1.
        classes (Sequence[int | str], optional): Classes that may be
            pasted (indices or names); None: every class. Defaults to None.
        max_objects (int): Components pasted per paste. Defaults to 1.
        min_area (int): Smallest component pasted (pixels). Defaults to 1.
        scale (tuple[float, float]): Scale jitter range.
            Defaults to (0.75, 1.5).
        flip_prob (float): Horizontal flip probability of the object.
            Defaults to 0.5.
        counter (dict, optional): Pixel counter override.
            Defaults to None.
        work_dir (str, optional): Cache folder of the bank; None: the
            Runner's work dir, if any. Defaults to None.

    Raises:
        ValueError: on ``prob`` or ``flip_prob`` outside ``[0, 1]``, a bad
            ``scale``, ``max_objects``/``min_area``/``min_pixels < 1``, a
            non-positive ``temperature``, unknown ``classes`` (when the
            bank is built) or no source image for any of ``classes``.

    Examples:
        >>> t = TRANSFORMS.build(dict(type='RareClassCopyPaste', prob=1.0))
        >>> indices = t.get_indices(dataset)  # one image with a rare class
    """

    def __init__(self,
                 prob: float = 0.5,
                 temperature: float = 0.01,
                 min_pixels: int = 1,
                 classes: Optional[Sequence[Union[int, str]]] = None,
                 max_objects: int = 1,
                 min_area: int = 1,
                 scale: Tuple[float, float] = (0.75, 1.5),
                 flip_prob: float = 0.5,
                 counter: Optional[dict] = None,
                 work_dir: Optional[str] = None) -> None:
        for name, value in (('prob', prob), ('flip_prob', flip_prob)):
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f'`{name}` should be in [0, 1], but got '
                                 f'{value!r}')
        if not (isinstance(scale, (tuple, list)) and len(scale) == 2
                and 0 < scale[0] <= scale[1]):
            raise ValueError('`scale` should be (low, high) with 0 < low <= '
                             f'high, but got {scale!r}')
        for name, value in (('max_objects', max_objects),
                            ('min_area', min_area), ('min_pixels',
                                                     min_pixels)):
            if isinstance(value, bool) or not isinstance(
                    value, (int, np.integer)) or value < 1:
                raise ValueError(f'`{name}` should be an int >= 1, but got '
                                 f'{value!r}')
        if isinstance(temperature, bool) or not isinstance(
                temperature, (int, float)) or not temperature > 0:
            raise ValueError('`temperature` should be a number > 0, but got '
                             f'{temperature!r}')
        self.prob = float(prob)
        self.temperature = float(temperature)
        self.min_pixels = int(min_pixels)
        self.classes = None if classes is None else list(classes)
        self.max_objects = int(max_objects)
        self.min_area = int(min_area)
        self.scale = (float(scale[0]), float(scale[1]))
        self.flip_prob = float(flip_prob)
        self.counter = counter
        self.work_dir = work_dir
        self.class_probs: Optional[np.ndarray] = None
        self._class_images = None
        self._pending: Optional[int] = None

    def build_bank(self, dataset) -> None:
        """Per-image presence and class probabilities of ``dataset``."""
        from mmseg_ext.datasets.pixel_counters import count_dataset_pixels
        from mmseg_ext.datasets.samplers import (dataset_index_rows,
                                                 find_work_dir)
        from mmseg_ext.utils.rare_class_sampling import (image_presence,
                                                         rcs_class_probs)
        rows, _ = count_dataset_pixels(
            dataset, counter=self.counter, num_workers=0,
            cache_dir=self.work_dir or find_work_dir(), show_progress=False,
            per_item=True)
        rows = rows[dataset_index_rows(dataset, len(rows))]
        presence = image_presence(rows, self.min_pixels)
        if self.classes is not None:
            names = list(getattr(dataset, 'metainfo', {}).get('classes')
                         or [])
            allowed = np.zeros(rows.shape[1], bool)
            for c in self.classes:
                idx = names.index(c) if isinstance(c, str) and c in names \
                    else c
                if not isinstance(idx, (int, np.integer)) or not \
                        0 <= idx < rows.shape[1]:
                    raise ValueError(
                        f'`classes` should name classes of {names or "the "}'
                        f'dataset or be indices < {rows.shape[1]}, but got '
                        f'{c!r}')
                allowed[idx] = True
            presence = presence & allowed[None]
        self.class_probs = rcs_class_probs(rows.sum(0), presence,
                                           self.temperature)
        self._class_images = [
            np.flatnonzero(presence[:, c]) for c in range(rows.shape[1])
        ]

    def get_indices(self, dataset) -> list:
        """Index of a source image (``[]`` when not pasting this time)."""
        self._pending = None
        if self._class_images is None:
            self.build_bank(dataset)
        if self.prob == 0 or np.random.rand() >= self.prob:
            return []
        cls = int(np.random.choice(len(self.class_probs),
                                   p=self.class_probs))
        self._pending = cls
        return [int(np.random.choice(self._class_images[cls]))]

    def transform(self, results: dict) -> dict:
        """Paste from ``results['mix_results'][0]``; see the class doc."""
        mix = results.get('mix_results') or []
        cls, self._pending = self._pending, None
        if not mix or cls is None:
            return results
        src = mix[0]
        rng = np.random.default_rng(np.random.randint(2**31))
        pixels = paste_objects(
            results['img'], results['gt_seg_map'], src['img'],
            src['gt_seg_map'], cls, rng, self.max_objects, self.min_area,
            self.scale, self.flip_prob)
        results['copy_paste'] = dict(cls=cls, pixels=pixels)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'temperature={self.temperature}, classes={self.classes}, '
                f'max_objects={self.max_objects}, scale={self.scale}, '
                f'flip_prob={self.flip_prob})')
