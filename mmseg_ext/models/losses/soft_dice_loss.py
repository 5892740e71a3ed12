# Copyright (c) mmseg_ext contributors. All rights reserved.
from typing import Optional

import torch
from mmseg.registry import MODELS

from .base import BaseSegLoss, LossArgs
from .utils import (ClassWeight, check_mode, check_non_negative,
                    prepare_dice_inputs, reduce_per_image, safe_divide)


def soft_dice_loss(probs: torch.Tensor,
                   onehot: torch.Tensor,
                   mask: torch.Tensor,
                   class_weight: Optional[torch.Tensor] = None,
                   smooth: float = 1.0,
                   squared_denominator: bool = False,
                   per_image: bool = False) -> torch.Tensor:
    """Class-weighted soft Dice loss on masked, flattened inputs.

    Per class ``c``: ``dice_c = (2 sum(p t) + smooth) /
    (sum(p) + sum(t) + smooth)`` (``sum(p^2) + sum(t^2)`` with
    ``squared_denominator``), ``l_c = 1 - dice_c``, and the loss is
    ``sum_c(w_c l_c) / sum_c(w_c)``. A class whose denominator is 0 (absent
    from target and prediction, or every pixel ignored) has ``dice_c = 1``,
    so ``l_c = 0``, even with ``smooth=0``; it still counts in the mean.

    Args:
        probs (Tensor): ``(N, C, P)`` probabilities.
        onehot (Tensor): ``(N, C, P)`` targets.
        mask (Tensor): ``(N, C, P)`` weight of each entry in the sums, 0 on
            ignored entries.
        class_weight (Tensor, optional): ``(C, )`` weights; a class with
            weight 0 is left out. Defaults to None (all 1).
        smooth (float): Added to numerator and denominator. Defaults to 1.0.
        squared_denominator (bool): Use ``sum(p^2) + sum(t^2)`` (V-Net).
            Defaults to False.
        per_image (bool): Sum over the pixels of each image and return one
            loss per image; otherwise sum over the whole batch.
            Defaults to False.

    Returns:
        Tensor: ``(N, )`` if ``per_image`` else a scalar.
    """
    dims = (2, ) if per_image else (0, 2)
    intersection = (probs * onehot * mask).sum(dims)
    if squared_denominator:
        cardinality = (probs * probs * mask).sum(dims) + (
            onehot * onehot * mask).sum(dims)
    else:
        cardinality = (probs * mask).sum(dims) + (onehot * mask).sum(dims)
    dice = safe_divide(2 * intersection + smooth, cardinality + smooth, 1.0)
    loss = 1 - dice  # (N, C) or (C, )
    if class_weight is None:
        return loss.mean(-1)
    total = class_weight.sum()
    return safe_divide((loss * class_weight).sum(-1), total, 0.0)


@MODELS.register_module()
class SoftDiceLoss(BaseSegLoss):
    """Soft Dice loss for multi-class, binary and multi-label segmentation.

    From "V-Net: Fully Convolutional Neural Networks for Volumetric Medical
    Image Segmentation" (Milletari et al., 2016). Per class ``c``:
    ``dice_c = (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)``, loss
    ``1 - dice_c`` averaged over classes weighted by ``class_weight``
    (``sum_c(w_c l_c) / sum_c(w_c)``; weight 0 removes a class). Ignored
    entries count in neither numerator nor denominator.

    A class absent from both target and prediction (denominator 0) gets
    ``dice = 1``, i.e. loss 0, and still counts in the class mean (with
    ``smooth > 0`` that is what the formula gives anyway; with ``smooth=0``
    the 0/0 is defined so). Everything ignored gives a loss of exactly 0
    with a finite (zero) gradient.

    Bad input is handled as in :class:`~.base.BaseSegLoss`: ignored entries
    contribute nothing, not even NaN; bad labels raise.

    Args:
        mode (str): ``'multiclass'``: softmax over ``C >= 2`` channels,
            ``(N, H, W)`` integer labels, one-hot encoded. ``'binary'``:
            sigmoid of ``(N, 1, H, W)`` logits, ``(N, H, W)`` or
            ``(N, 1, H, W)`` integer ``{0, 1}`` targets; only the foreground
            channel is scored. ``'multilabel'``: sigmoid per channel,
            ``(N, C, H, W)`` uint8 ``{0, 1}`` targets, ignored per
            class-pixel.
            Defaults to 'multiclass'.
        class_weight (list[float] | str, optional): Weight of each channel,
            or a ``.npy``/``.pkl`` path. Settable after construction; read at
            every forward. Defaults to None.
        smooth (float): ``>= 0``, added to numerator and denominator.
            Defaults to 1.0.
        squared_denominator (bool): Use ``sum(p^2) + sum(t^2)``.
            Defaults to False.
        per_image (bool): Dice per image, then reduced over images;
            otherwise one Dice over the whole batch. Defaults to False.
        from_logits (bool): Apply softmax/sigmoid; set False when the inputs
            are already probabilities. Defaults to True.
        reduction (str): Over images when ``per_image``: ``'mean'``,
            ``'sum'`` or ``'none'`` (an ``(N, )`` tensor). Without
            ``per_image`` the loss is one scalar whatever the reduction.
            Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int | None): Target value to ignore when the forward
            call passes none; a forward ``ignore_index`` (mmseg's decode
            heads pass theirs) takes precedence. Defaults to 255.
        loss_name (str): Loss-dict key, must start with ``'loss_'``.
            Defaults to 'loss_soft_dice'.

    Returns:
        Tensor: float32 loss. The forward also takes an optional
        ``(N, H, W)`` per-pixel ``weight`` that scales each pixel's share of
        the sums; ``avg_factor`` is accepted and ignored.

    Raises:
        ValueError: On a bad ``mode``, negative ``smooth``, bad
            ``reduction`` or ``loss_name``, or (at forward) a
            ``class_weight`` without C entries.
        LossInputError, LabelDtypeError: bad input at forward, see
            :class:`~.base.BaseSegLoss`.

    Examples:
        >>> import torch
        >>> from mmseg.registry import MODELS
        >>> import mmseg_ext  # noqa: F401
        >>> loss = MODELS.build(dict(type='SoftDiceLoss', mode='multiclass'))
        >>> logits = torch.randn(2, 3, 8, 8)
        >>> label = torch.randint(0, 3, (2, 8, 8))
        >>> loss(logits, label).shape
        torch.Size([])
    """

    _repr_keys = ('mode', 'smooth', 'squared_denominator', 'per_image')

    def __init__(self,
                 mode: str = 'multiclass',
                 class_weight: ClassWeight = None,
                 smooth: float = 1.0,
                 squared_denominator: bool = False,
                 per_image: bool = False,
                 from_logits: bool = True,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 loss_name: str = 'loss_soft_dice') -> None:
        super().__init__(class_weight, reduction, loss_weight, ignore_index,
                         loss_name)
        self.mode = check_mode(mode)
        self.smooth = check_non_negative('smooth', smooth)
        self.squared_denominator = bool(squared_denominator)
        self.per_image = bool(per_image)
        self.from_logits = bool(from_logits)

    def compute(self, seg_logits: torch.Tensor, seg_label: torch.Tensor,
                args: LossArgs) -> torch.Tensor:
        """:func:`soft_dice_loss` on the masked inputs; ``avg_factor`` is
        not used (a Dice is a ratio of sums, not a mean of entries)."""
        probs, onehot, mask = prepare_dice_inputs(
            seg_logits, seg_label, self.mode, args.ignore_index,
            self.from_logits, args.weight, args.check)
        loss = soft_dice_loss(
            probs,
            onehot,
            mask,
            class_weight=args.class_weight,
            smooth=self.smooth,
            squared_denominator=self.squared_denominator,
            per_image=self.per_image)
        return reduce_per_image(loss, args.reduction)
