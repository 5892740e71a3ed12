# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Encoder-decoder for multi-label (sigmoid) segmentation with flip TTA."""
import difflib
import math
import warnings
from numbers import Number
from typing import List, Sequence

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

# Re-exported: the segmentor's ``test_cfg.min_area`` is this function.
from mmseg_ext.utils.postprocess import remove_small_components
from .slide_inference import BLEND_MODES

# Metainfo key of a sample flipped at load (the value of
# mmseg_ext.datasets.transforms.unify_flip.UNIFY_KEY; not imported, models
# do not depend on datasets).
UNIFY_KEY = 'unify_flip'

__all__ = ['MultiLabelEncoderDecoder', 'remove_small_components']

FLIP_DIMS = dict(horizontal=(3, ), vertical=(2, ))
# ``test_cfg`` keys read by this segmentor, MMSeg's ``EncoderDecoder`` and
# :mod:`mmseg_ext.models.segmentors.slide_inference`.
TEST_CFG_KEYS = ('mode', 'crop_size', 'stride', 'flip', 'flip_direction',
                 'threshold', 'min_area', 'blend', 'sigma_scale')


def _per_class(value, num_classes: int, name: str, kind) -> List:
    """Broadcast a scalar or check a per-class list of length ``C``."""
    values = list(value) if isinstance(value, (list, tuple)) else \
        [value] * num_classes
    if len(values) != num_classes:
        raise ValueError(f'`test_cfg.{name}` should be one value or a list '
                         f'of C={num_classes} values, but got {len(values)}: '
                         f'{value!r}')
    for v in values:
        kind(v, name)
    return values


def _check_threshold(v, name):
    if isinstance(v, bool) or not isinstance(v, Number) or \
            not math.isfinite(v) or not 0 <= v < 1:
        raise ValueError(f'`test_cfg.{name}` should be a number in [0, 1) '
                         '(pixels with prob > threshold are foreground; 1 '
                         f'would predict nothing), but got {v!r}')


def _check_min_area(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f'`test_cfg.{name}` should be an int >= 0, but got '
                         f'{v!r}')


@MODELS.register_module()
class MultiLabelEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` for multi-label segmentation (sigmoid per class).

    Training is MMSeg's (use :class:`MultiLabelHead`,
    :class:`MultiLabelSegDataPreProcessor`). Inference works on
    **probabilities**: in this segmentor :meth:`encode_decode` returns
    ``sigmoid`` of the head's logits, so whole-image inference gives
    probabilities and the inherited ``slide_inference`` (not overridden
    here: the one place for window blending, e.g. ``test_cfg.blend`` of
    :mod:`mmseg_ext.models.segmentors.slide_inference`) averages the
    probabilities of overlapping windows. With ``flip`` the probabilities
    of the original and the flipped passes are averaged.
    :meth:`postprocess_result` removes the padding, undoes a pipeline flip,
    resizes to ``ori_shape`` (bilinear on probabilities), thresholds each
    class and optionally removes small connected components.

    Each returned ``SegDataSample`` holds:

    - ``seg_logits``: ``PixelData`` of the ``(C, H, W)`` float32 per-class
      **probabilities** (not logits: TTA averages probabilities).
    - ``pred_sem_seg``: ``PixelData`` of ``(C, H, W)`` uint8 ``{0, 1}``
      masks (``prob > threshold``, then ``min_area``).

    ``test_cfg`` keys:

    - ``mode`` (str): ``'whole'`` (default) or ``'slide'`` (with
      ``crop_size=(h, w)`` and ``stride=(h, w)``).
    - ``flip`` (bool): flip TTA. Defaults to False.
    - ``flip_direction`` (str | list[str]): ``'horizontal'`` and/or
      ``'vertical'``; one extra pass each. Defaults to ``['horizontal']``.
    - ``threshold`` (float | list[float]): per-class threshold in
      ``[0, 1)``. Defaults to the decode head's ``threshold``.
    - ``min_area`` (int | list[int]): remove 8-connected components with
      fewer pixels (at ``ori_shape``) from each class mask; 0 keeps all.
      Defaults to 0.

    :meth:`predict_probs` returns the TTA-averaged probabilities of a batch
    at the input size (for ensembling tools). For flips *and* scales through
    MMSeg's ``TestTimeAug`` pipeline use ``tta_model =
    dict(type='ProbSegTTAModel')`` (MMSeg's own ``SegTTAModel`` merges
    softmax/argmax ``(1, H, W)`` maps and does not apply).

    Args:
        **kwargs: As :class:`mmseg.models.EncoderDecoder`.

    Raises:
        ValueError: on bad ``test_cfg`` values (unknown ``mode``, slide
            without ``crop_size``/``stride`` or with stride > crop, bad
            ``blend``/``sigma_scale``/``flip_direction``, ``threshold`` not
            in ``[0, 1)`` or of the wrong length, negative ``min_area``).
        TypeError: if ``test_cfg.flip`` is not a bool.

    Unknown ``test_cfg`` keys only warn (with the closest known key).

    Examples:
        >>> model = dict(
        ...     type='MultiLabelEncoderDecoder',
        ...     data_preprocessor=dict(
        ...         type='MultiLabelSegDataPreProcessor', num_classes=29),
        ...     backbone=dict(type='MixVisionTransformer'),
        ...     decode_head=dict(type='MultiLabelHead',
        ...                      head=dict(type='SegformerHead',
        ...                                num_classes=29)),
        ...     test_cfg=dict(mode='slide', crop_size=(512, 512),
        ...                   stride=(384, 384), flip=True, threshold=0.5,
        ...                   min_area=0))
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.test_cfg = ConfigDict(self.test_cfg or dict())
        self.test_cfg.setdefault('mode', 'whole')
        self.check_test_cfg()

    # ---------------------------------------------------------------- config
    def check_test_cfg(self) -> None:
        """Validate ``self.test_cfg`` (also run at every inference)."""
        cfg = self.test_cfg
        mode = cfg.get('mode', 'whole')
        if mode not in ('whole', 'slide'):
            raise ValueError("`test_cfg.mode` should be 'whole' or 'slide', "
                             f'but got {mode!r}')
        if mode == 'slide':
            for key in ('crop_size', 'stride'):
                v = cfg.get(key)
                if not isinstance(v, (list, tuple)) or len(v) != 2 or any(
                        not isinstance(x, int) or x < 1 for x in v):
                    raise ValueError(
                        f"`test_cfg.{key}` should be (h, w) positive ints "
                        f"with mode='slide', but got {v!r}")
            crop, stride = cfg['crop_size'], cfg['stride']
            if any(s > c for s, c in zip(stride, crop)):
                raise ValueError(
                    '`test_cfg.stride` should be <= `test_cfg.crop_size` in '
                    'each dim (else pixels between windows are never '
                    f'predicted), but got stride={tuple(stride)} with '
                    f'crop_size={tuple(crop)}; e.g. stride = 3/4 of crop')
        blend = cfg.get('blend', 'uniform')
        if blend not in BLEND_MODES:
            raise ValueError(f'`test_cfg.blend` should be one of '
                             f'{BLEND_MODES}, but got {blend!r}')
        sigma = cfg.get('sigma_scale', 0.125)
        if isinstance(sigma, bool) or not isinstance(sigma, Number) or \
                not math.isfinite(sigma) or sigma <= 0:
            raise ValueError('`test_cfg.sigma_scale` should be a finite '
                             f'number > 0, but got {sigma!r}')
        flip = cfg.get('flip', False)
        if not isinstance(flip, bool):
            raise TypeError(f'`test_cfg.flip` should be True or False, but '
                            f'got {flip!r}')
        for key in cfg:
            if key not in TEST_CFG_KEYS:
                close = difflib.get_close_matches(key, TEST_CFG_KEYS, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ''
                warnings.warn(
                    f'`test_cfg.{key}` is not read by '
                    f'MultiLabelEncoderDecoder (keys: {TEST_CFG_KEYS})'
                    f'{hint}')
        # The properties validate their keys.
        _ = (self.flip_directions, self.class_thresholds,
             self.class_min_areas)

    @property
    def flip_directions(self) -> List[str]:
        """Directions of the extra TTA passes (empty without ``flip``)."""
        if not self.test_cfg.get('flip', False):
            return []
        dirs = self.test_cfg.get('flip_direction', ['horizontal'])
        dirs = [dirs] if isinstance(dirs, str) else list(dirs)
        bad = [d for d in dirs if d not in FLIP_DIMS]
        if not dirs or bad:
            raise ValueError('`test_cfg.flip_direction` should be '
                             "'horizontal', 'vertical' or a list of them, "
                             f'but got {self.test_cfg.flip_direction!r}')
        return dirs

    @property
    def class_thresholds(self) -> List[float]:
        """``(C,)`` probability thresholds."""
        value = self.test_cfg.get('threshold')
        if value is None:
            value = getattr(self.decode_head, 'threshold', None)
            value = 0.5 if value is None else value
        return [
            float(v) for v in _per_class(value, self.num_classes,
                                         'threshold', _check_threshold)
        ]

    @property
    def class_min_areas(self) -> List[int]:
        """``(C,)`` minimum component areas (0: keep all)."""
        return [
            int(v) for v in _per_class(
                self.test_cfg.get('min_area', 0), self.num_classes,
                'min_area', _check_min_area)
        ]

    # ------------------------------------------------------------- inference
    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """``(N, C, H, W)`` sigmoid **probabilities** at the input size."""
        x = self.extract_feat(inputs)
        seg_logits = self.decode_head.predict(x, batch_img_metas,
                                              self.test_cfg)
        return seg_logits.float().sigmoid()

    def predict_probs(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Probabilities of a batch after whole/slide inference and flips.

        Args:
            inputs (Tensor): ``(N, 3, H, W)`` preprocessed images.
            batch_img_metas (list[dict]): Their metainfo.

        Returns:
            Tensor: ``(N, C, H, W)`` float32 probabilities at the input
            (padded) size, the mean over the original and flipped passes.
            :meth:`predict` returns them at ``ori_shape`` in ``seg_logits``.
        """
        self.check_test_cfg()
        probs = super().inference(inputs, [dict(m) for m in batch_img_metas])
        directions = self.flip_directions
        for direction in directions:
            dims = FLIP_DIMS[direction]
            flipped = super().inference(
                inputs.flip(dims), [dict(m) for m in batch_img_metas])
            probs = probs + flipped.flip(dims)
        if directions:
            probs = probs / (1 + len(directions))
        return probs

    def inference(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Probabilities of a batch; see :meth:`predict_probs`."""
        return self.predict_probs(inputs, batch_img_metas)

    def postprocess_result(self,
                           seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """Turn ``(N, C, H, W)`` probabilities into ``SegDataSample`` s.

        Per image: crop the padding (``img_padding_size`` or
        ``padding_size``), undo a pipeline flip, resize to ``ori_shape``
        (bilinear, ``align_corners`` of the head), undo a load-time flip
        (``unify_flip`` in the metainfo, :class:`UnifyFlip`: the
        probabilities, masks and ``gt_sem_seg`` are returned in the original
        orientation), threshold per class and remove components below
        ``min_area``. Without ``data_samples`` the
        probabilities are used at their size.

        Args:
            seg_logits (Tensor): ``(N, C, H, W)`` probabilities (named as in
                MMSeg).
            data_samples (list[SegDataSample], optional): With metainfo.

        Returns:
            list[SegDataSample]: With ``seg_logits`` (probabilities) and
            ``pred_sem_seg`` (uint8 masks), both ``(C, H, W)``.
        """
        batch_size, _, height, width = seg_logits.shape
        only_prediction = data_samples is None
        if only_prediction:
            data_samples = [SegDataSample() for _ in range(batch_size)]
        thresholds = seg_logits.new_tensor(self.class_thresholds).view(
            -1, 1, 1)
        min_areas = self.class_min_areas
        for i in range(batch_size):
            probs = seg_logits[i:i + 1].float()
            if not only_prediction:
                meta = data_samples[i].metainfo
                padding = meta.get('img_padding_size',
                                   meta.get('padding_size', [0] * 4))
                left, right, top, bottom = (int(p) for p in padding)
                probs = probs[:, :, top:height - bottom, left:width - right]
                if meta.get('flip', False):
                    direction = meta.get('flip_direction')
                    if direction not in FLIP_DIMS:
                        raise ValueError(
                            "`flip_direction` should be 'horizontal' or "
                            f"'vertical', but got {direction!r}")
                    probs = probs.flip(FLIP_DIMS[direction])
                probs = resize(
                    probs,
                    size=tuple(meta['ori_shape'][:2]),
                    mode='bilinear',
                    align_corners=self.align_corners,
                    warning=False)
                if meta.get(UNIFY_KEY, False):
                    # flipped at load (UnifyFlip): back to the original
                    # orientation, the ground truth too, so metrics compare
                    # like with like and everything saved is original.
                    probs = probs.flip(-1)
                    if 'gt_sem_seg' in data_samples[i]:
                        data_samples[i].gt_sem_seg = PixelData(
                            data=data_samples[i].gt_sem_seg.data.flip(-1))
            probs = probs[0]
            pred = (probs > thresholds).to(torch.uint8)
            pred = self.filter_small_components(pred, min_areas)
            data_samples[i].set_data({
                'seg_logits': PixelData(data=probs),
                'pred_sem_seg': PixelData(data=pred)
            })
        return data_samples

    @staticmethod
    def filter_small_components(pred: Tensor,
                                min_areas: Sequence[int]) -> Tensor:
        """Apply :func:`remove_small_components` to classes with an area.

        Args:
            pred (Tensor): ``(C, H, W)`` uint8 masks.
            min_areas (Sequence[int]): ``(C,)`` minimum areas.

        Returns:
            Tensor: ``(C, H, W)`` uint8 masks on ``pred``'s device.
        """
        classes = [c for c, a in enumerate(min_areas) if a > 1]
        if not classes:
            return pred
        pred = pred.clone()
        for c in classes:
            mask = pred[c].cpu().numpy()
            pred[c] = torch.from_numpy(
                remove_small_components(mask, min_areas[c])).to(pred.device)
        return pred

    def aug_test(self, *args, **kwargs):
        """Not supported: use ``test_cfg.flip`` or ``ProbSegTTAModel``."""
        raise NotImplementedError(
            'MultiLabelEncoderDecoder: use test_cfg.flip, or '
            "tta_model=dict(type='ProbSegTTAModel') with a TestTimeAug "
            'pipeline, for TTA')
