# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Test-time augmentation that averages and keeps probabilities."""
from numbers import Number
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.structures import PixelData
from mmseg.models.segmentors import SegTTAModel
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import SampleList

from .multilabel_encoder_decoder import MultiLabelEncoderDecoder

__all__ = ['ProbSegTTAModel']

TTA_MODES = ('softmax', 'binary', 'multilabel')


@MODELS.register_module()
class ProbSegTTAModel(SegTTAModel):
    """``SegTTAModel`` that merges probabilities and keeps them.

    Wraps a segmentor for MMSeg's ``tta_pipeline`` (``TestTimeAug`` of
    ``Resize`` scales x ``RandomFlip``; the wrapped segmentor's
    ``postprocess_result`` already undoes each flip and resizes each
    augmented prediction to ``ori_shape``). Per image the augmented
    predictions are merged by **averaging probabilities**:

    - ``'softmax'`` (MMSeg ``EncoderDecoder``, ``out_channels > 1``):
      ``seg_logits`` are logits; their softmax over channels is averaged.
      ``pred_sem_seg`` is the ``(1, H, W)`` int64 argmax.
    - ``'binary'`` (``out_channels == 1``): MMSeg's ``postprocess_result``
      already applied the sigmoid, so ``seg_logits`` are ``(1, H, W)``
      probabilities, averaged as they are (MMSeg's ``SegTTAModel`` applies
      a second sigmoid and squeezes the wrong dimension).
      ``pred_sem_seg`` is ``(1, H, W)`` uint8 ``prob > threshold``.
    - ``'multilabel'`` (:class:`MultiLabelEncoderDecoder`): ``seg_logits``
      are ``(C, H, W)`` sigmoid probabilities, averaged as they are.
      ``pred_sem_seg`` is ``(C, H, W)`` uint8 ``prob > threshold`` per class,
      then the segmentor's ``test_cfg.min_area`` filter.

    Unlike MMSeg's ``SegTTAModel`` (which stores only the argmax), the merged
    sample keeps the merged probabilities ``(C, H, W)`` float32 in
    ``seg_logits`` (so ensembling and threshold tools can use them), the
    first augmentation's metainfo and ``gt_sem_seg``. Augmented predictions
    of one image must share one ``(C, H, W)`` shape.

    Args:
        module (dict | nn.Module): The segmentor (config or module).
        data_preprocessor (dict | nn.Module, optional): As
            ``mmengine.model.BaseTTAModel``. Defaults to None.
        mode (str, optional): ``'softmax'``, ``'binary'`` or
            ``'multilabel'``; None detects it from the wrapped module (its
            type, then ``out_channels``). Defaults to None.
        probabilities (bool, optional): Whether the wrapped module's
            ``seg_logits`` already are probabilities (then they are averaged
            without softmax/sigmoid). None: True for ``'binary'`` and
            ``'multilabel'``, False for ``'softmax'``. Defaults to None.
        threshold (float | Sequence[float], optional): ``'binary'`` /
            ``'multilabel'`` threshold in ``[0, 1)``, one value or one per
            class. None: the segmentor's (``class_thresholds`` of
            :class:`MultiLabelEncoderDecoder`, else
            ``decode_head.threshold``, else 0.5). Defaults to None.

    Raises:
        ValueError: on a bad ``mode`` or ``threshold``, or augmented
            predictions of different shapes.

    Examples:
        >>> tta_model = dict(type='ProbSegTTAModel')
        >>> # tools/test.py --tta: cfg.tta_model.module = cfg.model
    """

    def __init__(self,
                 module: Union[dict, nn.Module],
                 data_preprocessor: Union[dict, nn.Module, None] = None,
                 mode: Optional[str] = None,
                 probabilities: Optional[bool] = None,
                 threshold: Union[float, Sequence[float], None] = None):
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        if mode is None:
            mode = self.detect_mode(self.module)
        if mode not in TTA_MODES:
            raise ValueError(f'`mode` should be one of {TTA_MODES} or None, '
                             f'but got {mode!r}')
        if probabilities is not None and not isinstance(probabilities, bool):
            raise ValueError('`probabilities` should be True, False or None, '
                             f'but got {probabilities!r}')
        self.mode = mode
        self.probabilities = (mode != 'softmax') if probabilities is None \
            else probabilities
        if threshold is not None:
            values = list(threshold) if isinstance(threshold,
                                                   (list, tuple)) else \
                [threshold]
            if not values or any(
                    isinstance(v, bool) or not isinstance(v, Number)
                    or not 0 <= v < 1 for v in values):
                raise ValueError('`threshold` should be a number in [0, 1) '
                                 'or a list of them (one per class), but '
                                 f'got {threshold!r}')
        self.threshold = threshold

    @staticmethod
    def detect_mode(module: nn.Module) -> str:
        """``'multilabel'``, ``'binary'`` or ``'softmax'`` for a segmentor.
        """
        if isinstance(module, MultiLabelEncoderDecoder):
            return 'multilabel'
        out_channels = getattr(module, 'out_channels', None)
        if out_channels is None:
            raise ValueError(
                f'cannot tell whether {type(module).__name__} is a softmax, '
                'binary or multi-label segmentor (no `out_channels`); pass '
                "`mode='softmax'|'binary'|'multilabel'` to ProbSegTTAModel")
        return 'binary' if out_channels == 1 else 'softmax'

    def _thresholds(self, num_classes: int, like: torch.Tensor):
        value = self.threshold
        if value is None:
            if self.mode == 'multilabel' and hasattr(self.module,
                                                     'class_thresholds'):
                value = self.module.class_thresholds
            else:
                value = getattr(
                    getattr(self.module, 'decode_head', None), 'threshold',
                    None)
                value = 0.5 if value is None else value
        values = list(value) if isinstance(value, (list, tuple)) else \
            [value] * num_classes
        if len(values) != num_classes:
            raise ValueError(f'`threshold` should be one value or C='
                             f'{num_classes} values, but got {len(values)}')
        return like.new_tensor(values, dtype=torch.float32).view(-1, 1, 1)

    def merge_probs(self, data_samples: Sequence[SegDataSample]) \
            -> torch.Tensor:
        """Mean ``(C, H, W)`` float32 probabilities of one image's augs."""
        total = None
        for i, sample in enumerate(data_samples):
            data = sample.seg_logits.data.float()
            if data.dim() != 3:
                raise ValueError(
                    '`seg_logits.data` of each augmented prediction should '
                    f'be (C, H, W), but got {tuple(data.shape)}')
            if not self.probabilities:
                data = data.softmax(dim=0) if data.shape[0] > 1 else \
                    data.sigmoid()
            if total is None:
                total = data.clone()
            elif data.shape != total.shape:
                raise ValueError(
                    'augmented predictions of one image should all be '
                    f'(C, H, W) = {tuple(total.shape)} (at ori_shape), but '
                    f'augmentation {i} gave {tuple(data.shape)} for '
                    f'{sample.metainfo.get("img_path")}')
            else:
                total += data
        return total / len(data_samples)

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        """Merge the augmented predictions of each image.

        Args:
            data_samples_list (list[list[SegDataSample]]): Per image, its
                augmented predictions.

        Returns:
            list[SegDataSample]: Per image: ``seg_logits`` = mean
            probabilities ``(C, H, W)``, ``pred_sem_seg`` (see the class
            docstring), ``gt_sem_seg`` if present, first aug's metainfo.
        """
        predictions = []
        for data_samples in data_samples_list:
            if len(data_samples) == 0:
                raise ValueError('an image should have at least one '
                                 'augmented prediction, but got 0')
            probs = self.merge_probs(data_samples)
            if self.mode == 'softmax':
                pred = probs.argmax(dim=0, keepdim=True)
            else:
                thr = self._thresholds(probs.shape[0], probs)
                pred = (probs > thr).to(torch.uint8)
                if self.mode == 'multilabel' and hasattr(
                        self.module, 'filter_small_components'):
                    pred = self.module.filter_small_components(
                        pred, self.module.class_min_areas)
            first = data_samples[0]
            merged = SegDataSample(metainfo=first.metainfo)
            merged.set_data({
                'seg_logits': PixelData(data=probs),
                'pred_sem_seg': PixelData(data=pred)
            })
            if 'gt_sem_seg' in first:
                merged.gt_sem_seg = first.gt_sem_seg
            predictions.append(merged)
        return predictions
