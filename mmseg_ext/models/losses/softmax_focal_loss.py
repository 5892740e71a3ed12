# Copyright (c) mmseg_ext contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from .base import BaseSegLoss, LossArgs
from .utils import (ClassWeight, check_non_negative, prepare_class_labels,
                    reduce_weighted)


def softmax_focal_loss(logits: torch.Tensor,
                       label: torch.Tensor,
                       gamma: float = 2.0,
                       class_weight: Optional[torch.Tensor] = None,
                       weight: Optional[torch.Tensor] = None,
                       ignore_index: Optional[int] = 255,
                       reduction: str = 'mean',
                       avg_factor: Optional[float] = None,
                       check: str = 'sync') -> torch.Tensor:
    """Multi-class focal loss over the softmax of ``logits``.

    Per pixel ``i`` with label ``t``: ``l_i = -a_t (1 - p_t)^gamma log p_t``
    with ``a_t = class_weight[t]`` (1 without class weights) and ``p_t`` the
    softmax probability of the true class, computed with ``log_softmax`` in
    float32.

    Args:
        logits (Tensor): ``(N, C, H, W)`` scores.
        label (Tensor): ``(N, H, W)`` integer labels in ``[0, C)`` or
            ``ignore_index``.
        gamma (float): Focusing parameter; 0 gives cross entropy.
            Defaults to 2.0.
        class_weight (Tensor, optional): ``(C, )`` per-class weights.
        weight (Tensor, optional): ``(N, H, W)`` per-pixel weights ``>= 0``;
            they multiply the loss (numerator only, as mmseg's cross
            entropy).
        ignore_index (int | None): Label to ignore; the logits, label and
            weight of an ignored pixel are replaced by 0 before any
            arithmetic, so it contributes nothing, not even a NaN, and gets
            a zero gradient. Defaults to 255.
        reduction (str): ``'none'`` (``(N, H, W)`` map, 0 on ignored
            pixels), ``'sum'`` or ``'mean'`` (``sum(l_i) / sum(a_t)`` over
            non-ignored pixels, the weighted mean of ``F.cross_entropy``).
            Defaults to 'mean'.
        avg_factor (float, optional): Divide the sum by this instead of
            ``sum(a_t)`` when ``reduction='mean'``.
        check (str): Label / weight value checks: ``'sync'``, ``'async'``
            or ``'off'`` (see :func:`.utils.resolve_check`).
            Defaults to 'sync'.

    Returns:
        Tensor: float32 loss.

    Raises:
        LossInputError: On a label of another shape, a non-ignored label
            outside ``[0, C)`` or a negative / non-finite weight.
        LabelDtypeError: On floating labels.
    """
    logits, label, valid, weight = prepare_class_labels(
        logits, label, ignore_index, weight, check)
    log_prob = F.log_softmax(logits, dim=1)
    log_pt = log_prob.gather(1, label.unsqueeze(1)).squeeze(1)
    loss = -log_pt
    if gamma != 0:
        # 1 - p_t via expm1 keeps precision when p_t is close to 1; the clamp
        # keeps d/dp of (1 - p_t)^gamma finite for gamma < 1.
        one_minus_pt = (-torch.expm1(log_pt)).clamp_min(1e-12)
        loss = one_minus_pt.pow(gamma) * loss

    if valid is None:
        label_weight = torch.ones_like(loss)
    else:
        label_weight = valid.float()
    if class_weight is not None:
        label_weight = label_weight * class_weight[label]
    pixel_weight = label_weight if weight is None else label_weight * weight
    return reduce_weighted(loss, pixel_weight, label_weight, reduction,
                           avg_factor)


@MODELS.register_module()
class SoftmaxFocalLoss(BaseSegLoss):
    """Softmax focal loss for multi-class segmentation.

    From "Focal Loss for Dense Object Detection" (Lin et al., 2017), in its
    multi-class softmax form: ``-a_t (1 - p_t)^gamma log p_t`` with
    ``a_t = class_weight[t]``. ``class_weight`` plays the role of the paper's
    ``alpha`` (a scalar ``alpha`` would cancel out of the weighted mean). With
    ``gamma=0`` it equals ``F.cross_entropy(logits, label,
    weight=class_weight, ignore_index=ignore_index)``, also with NaN logits
    at ignored pixels.

    Bad input is handled as in :class:`~.base.BaseSegLoss`: ignored pixels
    contribute nothing, not even NaN; bad labels raise.

    Args:
        gamma (float): Focusing parameter ``>= 0``. Defaults to 2.0.
        class_weight (list[float] | str, optional): Weight of each class, or
            a ``.npy``/``.pkl`` path. Settable after construction; read at
            every forward. Defaults to None.
        reduction (str): ``'mean'`` (weighted mean over non-ignored pixels:
            ``sum(a_t * l) / sum(a_t)``), ``'sum'`` or ``'none'`` (an
            ``(N, H, W)`` map). Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int | None): Label to ignore when the forward call
            passes none; a forward ``ignore_index`` (mmseg's decode heads
            pass theirs) takes precedence. Defaults to 255.
        loss_name (str): Loss-dict key, must start with ``'loss_'``.
            Defaults to 'loss_focal_softmax'.

    Returns:
        Tensor: float32 loss; the forward takes ``(N, C, H, W)`` logits and
        ``(N, H, W)`` labels, plus optional ``(N, H, W)`` per-pixel
        ``weight``, ``avg_factor``, ``reduction_override`` and
        ``ignore_index``.

    Raises:
        ValueError: On a negative ``gamma``, a bad ``reduction`` or
            ``loss_name``, or (at forward) a ``class_weight`` without C
            entries.
        LossInputError, LabelDtypeError: bad input at forward, see
            :class:`~.base.BaseSegLoss`.

    Examples:
        >>> import torch
        >>> from mmseg.registry import MODELS
        >>> import mmseg_ext  # noqa: F401
        >>> loss = MODELS.build(dict(type='SoftmaxFocalLoss', gamma=2.0))
        >>> logits = torch.randn(2, 3, 8, 8)
        >>> label = torch.randint(0, 3, (2, 8, 8))
        >>> loss(logits, label).shape
        torch.Size([])
    """

    _repr_keys = ('gamma', )

    def __init__(self,
                 gamma: float = 2.0,
                 class_weight: ClassWeight = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 loss_name: str = 'loss_focal_softmax') -> None:
        super().__init__(class_weight, reduction, loss_weight, ignore_index,
                         loss_name)
        self.gamma = check_non_negative('gamma', gamma)

    def compute(self, seg_logits: torch.Tensor, seg_label: torch.Tensor,
                args: LossArgs) -> torch.Tensor:
        """:func:`softmax_focal_loss` with the module's settings."""
        return softmax_focal_loss(
            seg_logits, seg_label, gamma=self.gamma, **args._asdict())
