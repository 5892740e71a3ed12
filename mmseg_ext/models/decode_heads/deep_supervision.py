# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Deep supervision of a decode head: auxiliary outputs and their losses.

A head with deep supervision (:class:`UNetPlusPlusHead`,
:class:`UNet3PlusHead`) returns, in training mode only, a list ``[main,
aux_1, ..., aux_k]`` of ``(N, C, h_i, w_i)`` logits from ``forward``; in
eval mode (and without deep supervision) one tensor, so MMSeg's inference
path is unchanged. The losses of each auxiliary output are the head's own
losses (softmax: the head's ``loss_decode``; multi-label: the wrapping
:class:`MultiLabelHead`'s), times its weight, under the keys
``'aux{i}_{loss_name}'`` (they contain ``'loss'``, so mmengine's
``parse_losses`` back-propagates and logs them); accuracy / Dice entries of
the auxiliary outputs are dropped. This is the "deep supervision via
auxiliary outputs" of UNet++ and UNet3+, not MMSeg's ``auxiliary_head``
(a separate head on one backbone feature), which both still accept.
"""
from numbers import Number
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

__all__ = [
    'DeepSupervisedHead', 'check_ds_weights', 'deep_supervision_losses',
    'main_output'
]


def check_ds_weights(weights: Optional[Union[float, Sequence[float]]],
                     num_aux: int) -> Optional[list]:
    """``num_aux`` auxiliary loss weights from one number or a list.

    Args:
        weights (float | Sequence[float] | None): One weight for every
            auxiliary output, or one each (shallow node first). None:
            deep supervision off.
        num_aux (int): Number of auxiliary outputs.

    Returns:
        list[float] | None: The weights.

    Raises:
        ValueError: On a length other than ``num_aux`` or a weight that
            is not a finite number ``>= 0``.
    """
    if weights is None:
        return None
    if isinstance(weights, Number) and not isinstance(weights, bool):
        weights = [float(weights)] * num_aux
    weights = list(weights)
    if len(weights) != num_aux or any(
            isinstance(w, bool) or not isinstance(w, Number) or not w >= 0
            or w == float('inf') for w in weights):
        raise ValueError(
            f'`deep_supervision` should be None, one number >= 0 or '
            f'{num_aux} of them (one per auxiliary output), but got '
            f'{weights!r}')
    return [float(w) for w in weights]


def main_output(seg_logits: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    """The main logits of a head's output (the first of a list)."""
    if isinstance(seg_logits, (list, tuple)):
        return seg_logits[0]
    return seg_logits


def deep_supervision_losses(
        loss_fn: Callable[[Tensor], Dict[str, Tensor]],
        seg_logits: Union[Tensor, Sequence[Tensor]],
        weights: Optional[Sequence[float]]) -> Dict[str, Tensor]:
    """The loss dict of a main output plus weighted auxiliary outputs.

    Args:
        loss_fn (Callable): Loss dict of one ``(N, C, h, w)`` logits tensor
            (the head's single-output ``loss_by_feat`` with the batch bound).
        seg_logits (Tensor | Sequence[Tensor]): One tensor, or ``[main,
            aux_1, ...]``.
        weights (Sequence[float] | None): One weight per auxiliary output.

    Returns:
        dict[str, Tensor]: ``loss_fn(main)`` and ``aux{i}_{key}`` (times
        ``weights[i - 1]``) for each key of ``loss_fn(aux_i)`` that holds
        ``'loss'``.

    Raises:
        ValueError: If the number of auxiliary outputs does not match the
            weights.
    """
    if not isinstance(seg_logits, (list, tuple)):
        return loss_fn(seg_logits)
    main, aux = seg_logits[0], list(seg_logits[1:])
    weights = list(weights or [])
    if len(aux) != len(weights):
        raise ValueError(f'{len(aux)} auxiliary outputs but '
                         f'{len(weights)} deep-supervision weights')
    losses = loss_fn(main)
    for i, (logits, weight) in enumerate(zip(aux, weights), 1):
        for key, value in loss_fn(logits).items():
            if 'loss' in key and isinstance(value, torch.Tensor):
                losses[f'aux{i}_{key}'] = weight * value
    return losses


class DeepSupervisedHead(BaseDecodeHead):
    """A :class:`BaseDecodeHead` whose training output may be a list.

    Subclasses build their auxiliary classifiers with
    :meth:`init_deep_supervision` and return :meth:`outputs` from
    ``forward``. ``loss_by_feat`` (the softmax path of MMSeg's segmentors)
    adds the auxiliary losses (:func:`deep_supervision_losses`);
    ``predict_by_feat`` uses the main output only. :class:`MultiLabelHead`
    reads ``deep_supervision_weights`` for the multi-label path.
    """

    def init_deep_supervision(self, weights, in_channels: Sequence[int]
                              ) -> None:
        """Set ``deep_supervision_weights`` and one 1x1 classifier per
        auxiliary output (``in_channels``: their widths)."""
        self.deep_supervision_weights = check_ds_weights(
            weights, len(in_channels))
        if self.deep_supervision_weights is None:
            self.ds_convs = None
        else:
            self.ds_convs = nn.ModuleList(
                nn.Conv2d(c, self.out_channels, 1) for c in in_channels)

    def outputs(self, main: Tensor, aux_feats: Sequence[Tensor]
                ) -> Union[Tensor, List[Tensor]]:
        """``cls_seg(main)``, plus the auxiliary logits in training mode
        with deep supervision on."""
        out = self.cls_seg(main)
        if not self.training or self.ds_convs is None:
            return out
        aux = [
            conv(self.dropout(x) if self.dropout is not None else x)
            for conv, x in zip(self.ds_convs, aux_feats)
        ]
        return [out] + aux

    def loss_by_feat(self, seg_logits, batch_data_samples) -> dict:
        """MMSeg's losses of the main output plus weighted auxiliary
        losses (``aux{i}_loss_*``)."""
        parent = super().loss_by_feat
        return deep_supervision_losses(
            lambda logits: parent(logits, batch_data_samples), seg_logits,
            self.deep_supervision_weights)

    def predict_by_feat(self, seg_logits, batch_img_metas) -> Tensor:
        """MMSeg's ``predict_by_feat`` of the main output."""
        return super().predict_by_feat(main_output(seg_logits),
                                       batch_img_metas)
