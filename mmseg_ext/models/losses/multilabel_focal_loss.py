# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Per-class sigmoid focal loss for binary and multi-label segmentation.

mmseg's ``FocalLoss(use_sigmoid=True)`` does not fit a sigmoid head with
``(N, C, H, W)`` {0, 1, 255} targets: with targets of the logits' shape it
takes ``valid = target.argmax(dim=1) != ignore_index``, which is always True
for ``C = 1`` (255 pixels are trained on as target value 255); an
``(N, H, W)`` target with ``C = 1`` fails with a shape error on CPU, and its
CUDA path flips the target (``1 - target``). Hence this loss.
"""
from numbers import Number
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from .base import BaseSegLoss, LossArgs
from .multilabel_bce_loss import multilabel_bce_loss  # noqa: F401 (docs)
from .utils import ClassWeight, prepare_binary_targets, reduce_entry_loss


def multilabel_focal_loss(logits: torch.Tensor,
                          target: torch.Tensor,
                          gamma: float = 2.0,
                          alpha: Union[None, float, torch.Tensor] = 0.25,
                          class_weight: Optional[torch.Tensor] = None,
                          weight: Optional[torch.Tensor] = None,
                          ignore_index: Optional[int] = 255,
                          reduction: str = 'mean',
                          avg_factor: Optional[float] = None,
                          check: str = 'sync') -> torch.Tensor:
    """Sigmoid focal loss per class-pixel, with ignored entries.

    ``l = -a_t (1 - p_t)^gamma log(p_t)`` with ``p = sigmoid(x)``,
    ``p_t = p`` where ``t = 1`` else ``1 - p``, ``a_t = alpha`` where
    ``t = 1`` else ``1 - alpha`` (Lin et al., "Focal Loss for Dense Object
    Detection", 2017); ``gamma = 0`` and ``alpha = None`` give the BCE.
    Each entry is weighted by ``w = class_weight[c] * valid``.

    Args:
        logits (Tensor): ``(N, C, H, W)`` scores.
        target (Tensor): ``(N, C, H, W)`` uint8 ``{0, 1}`` maps or
            ``ignore_index``; ``(N, H, W)`` when ``C == 1``.
        gamma (float): Focusing parameter ``>= 0``. Defaults to 2.0.
        alpha (float | Tensor | None): Weight of the positives in
            ``[0, 1]``, one value or ``(C, )``; None: no balancing.
            Defaults to 0.25.
        class_weight, weight, ignore_index, reduction, avg_factor, check:
            As :func:`multilabel_bce_loss`, which this loss equals for
            ``gamma=0``, ``alpha=None``.

    Returns:
        Tensor: float32 loss, as :func:`multilabel_bce_loss`.

    Raises:
        LossInputError, LabelDtypeError: As :func:`multilabel_bce_loss`.
    """
    logits, target, valid, weight = prepare_binary_targets(
        logits, target, ignore_index, weight, check)
    channels = logits.shape[1]
    view = (1, channels) + (1, ) * (logits.dim() - 2)
    bce = F.binary_cross_entropy_with_logits(
        logits, target, reduction='none')
    prob = logits.sigmoid()
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = bce * (1 - p_t).pow(gamma) if gamma else bce
    if alpha is not None:
        if isinstance(alpha, torch.Tensor):
            alpha = alpha.view(view)
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))

    return reduce_entry_loss(loss, valid, class_weight, weight, reduction,
                             avg_factor)


@MODELS.register_module()
class MultiLabelFocalLoss(BaseSegLoss):
    """Per-class sigmoid focal loss for binary and multi-label segmentation.

    Each of the C channels is an independent ``{0, 1}`` map; ``C = 1`` is
    the binary (building) case. The loss is the focal loss of Lin et al.,
    "Focal Loss for Dense Object Detection" (2017) on each class-pixel
    (:func:`multilabel_focal_loss`), weighted by ``class_weight[c]`` and
    averaged over the non-ignored entries. Pair it with
    ``SoftDiceLoss(mode='binary'|'multilabel')`` for Focal + Dice.

    Bad input is handled as in :class:`~.base.BaseSegLoss`: ignored entries
    contribute nothing, not even NaN; bad labels raise.

    Args:
        gamma (float): Focusing parameter ``>= 0``. Defaults to 2.0.
        alpha (float | list[float], optional): Weight of the positives in
            ``[0, 1]`` (one value, or one per class); None: no balancing.
            Defaults to 0.25.
        class_weight (list[float] | str, optional): Per-class weights, or a
            ``.npy``/``.pkl`` path; settable after construction (e.g. by
            ``ClassWeightHook``). Defaults to None.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``.
            Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int | None): Ignored target value when the forward
            call passes none. Defaults to 255.
        loss_name (str): Loss-dict key, must start with ``'loss_'``.
            Defaults to 'loss_ml_focal'.

    Returns:
        Tensor: float32 loss; the forward takes ``(N, C, H, W)`` logits and
        ``(N, C, H, W)`` targets (``(N, H, W)`` when ``C == 1``).

    Raises:
        ValueError: on a bad ``gamma`` or ``alpha``, or (at forward) a
            ``class_weight`` or ``alpha`` list without C entries.
        LossInputError, LabelDtypeError: bad input at forward, see
            :class:`~.base.BaseSegLoss`.

    Examples:
        >>> loss_decode = [
        ...     dict(type='MultiLabelFocalLoss', gamma=2.0, alpha=0.25),
        ...     dict(type='SoftDiceLoss', mode='binary')]
    """

    _repr_keys = ('gamma', 'alpha')

    def __init__(self,
                 gamma: float = 2.0,
                 alpha: Union[None, float, Sequence[float]] = 0.25,
                 class_weight: ClassWeight = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 loss_name: str = 'loss_ml_focal') -> None:
        super().__init__(class_weight, reduction, loss_weight, ignore_index,
                         loss_name)
        if isinstance(gamma, bool) or not isinstance(gamma,
                                                     Number) or gamma < 0:
            raise ValueError(f'`gamma` should be a number >= 0, but got '
                             f'{gamma!r}')
        self.gamma = float(gamma)
        if alpha is not None:
            values = [alpha] if isinstance(alpha, Number) else list(alpha)
            if not values or any(
                    isinstance(a, bool) or not isinstance(a, Number)
                    or not 0 <= a <= 1 for a in values):
                raise ValueError('`alpha` should be None, a number in [0, 1]'
                                 f' or one per class, but got {alpha!r}')
            alpha = float(alpha) if isinstance(alpha, Number) else [
                float(a) for a in values
            ]
        self.alpha = alpha

    def compute(self, seg_logits: torch.Tensor, seg_label: torch.Tensor,
                args: LossArgs) -> torch.Tensor:
        """:func:`multilabel_focal_loss` with the module's settings."""
        alpha = self.alpha
        if isinstance(alpha, list):
            alpha = self.channel_tensor(alpha, seg_logits.shape[1],
                                        seg_logits.device, name='alpha')
        return multilabel_focal_loss(
            seg_logits,
            seg_label,
            gamma=self.gamma,
            alpha=alpha,
            **args._asdict())


__all__ = ['MultiLabelFocalLoss', 'multilabel_focal_loss']
