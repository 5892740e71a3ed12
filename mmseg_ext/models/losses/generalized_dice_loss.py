# Copyright (c) mmseg_ext contributors. All rights reserved.
from typing import Optional

import torch
from mmseg.registry import MODELS

from .base import BaseSegLoss, LossArgs
from .utils import (ClassWeight, check_mode, check_non_negative,
                    prepare_dice_inputs, reduce_per_image, safe_divide)


def generalized_dice_weights(volume: torch.Tensor) -> torch.Tensor:
    """Sudre et al. class weights ``1 / volume^2`` with finite fallbacks.

    A class with zero reference volume would get an infinite weight; it gets
    the largest finite weight of the same image (``per_image``) or batch
    instead, or 0 if no class of it has a finite weight (as MONAI's
    ``GeneralizedDiceLoss``). The weights are then divided by their sum,
    which leaves the smoothing-free loss unchanged and keeps ``smooth``
    negligible however large the volumes are.

    Args:
        volume (Tensor): ``(..., C)`` reference volumes ``sum_i t_ci``.

    Returns:
        Tensor: ``(..., C)`` weights, summing to 1 (or all 0), no gradient.
    """
    volume = volume.detach()
    present = volume > 0
    weight = torch.where(present, 1.0 / torch.where(present, volume, 1.0)**2,
                         0.0)
    fallback = weight.amax(dim=-1, keepdim=True)
    weight = torch.where(present, weight, fallback)
    return safe_divide(weight, weight.sum(-1, keepdim=True), 0.0)


def generalized_dice_loss(probs: torch.Tensor,
                          onehot: torch.Tensor,
                          mask: torch.Tensor,
                          class_weight: Optional[torch.Tensor] = None,
                          smooth: float = 1e-5,
                          per_image: bool = False) -> torch.Tensor:
    """Generalised Dice loss on masked, flattened inputs.

    ``GDL = 1 - (2 sum_c w_c sum_i p_ci t_ci + smooth) /
    (sum_c w_c sum_i (p_ci + t_ci) + smooth)`` with ``w_c = 1 / (sum_i
    t_ci)^2`` (see :func:`generalized_dice_weights`), times ``class_weight``.
    When the denominator is 0 (nothing to score) the loss is 0.

    Args:
        probs (Tensor): ``(N, C, P)`` probabilities.
        onehot (Tensor): ``(N, C, P)`` targets.
        mask (Tensor): ``(N, C, P)`` weight of each entry in the sums, 0 on
            ignored entries.
        class_weight (Tensor, optional): ``(C, )`` extra factor on ``w_c``.
            Defaults to None.
        smooth (float): Added to numerator and denominator.
            Defaults to 1e-5.
        per_image (bool): One loss per image instead of one for the batch.
            Defaults to False.

    Returns:
        Tensor: ``(N, )`` if ``per_image`` else a scalar.
    """
    dims = (2, ) if per_image else (0, 2)
    intersection = (probs * onehot * mask).sum(dims)
    target_sum = (onehot * mask).sum(dims)
    cardinality = (probs * mask).sum(dims) + target_sum
    weight = generalized_dice_weights(target_sum)
    if class_weight is not None:
        weight = weight * class_weight
    numer = 2 * (weight * intersection).sum(-1) + smooth
    denom = (weight * cardinality).sum(-1) + smooth
    return 1 - safe_divide(numer, denom, 1.0)


@MODELS.register_module()
class GeneralizedDiceLoss(BaseSegLoss):
    """Generalised Dice loss for highly unbalanced segmentation.

    From "Generalised Dice overlap as a deep learning loss function for
    highly unbalanced segmentations" (Sudre et al., 2017):
    ``GDL = 1 - 2 sum_c w_c sum_i p_ci t_ci / sum_c w_c sum_i (p_ci + t_ci)``
    with ``w_c = 1 / (sum_i t_ci)^2``, so rare classes weigh as much as
    frequent ones. Ignored entries count nowhere.

    Bad input is handled as in :class:`~.base.BaseSegLoss`: ignored entries
    contribute nothing, not even NaN; bad labels raise.

    Zero reference volume: a class absent from the target (of the image with
    ``per_image``, else of the batch) gets the largest finite weight of the
    other classes there, or 0 if every class is absent (as MONAI's
    ``GeneralizedDiceLoss``); so an image with no positive target at all
    (binary/multilabel) or with every pixel ignored gives a loss of 0. The
    weights are normalised to sum to 1 before use: the ratio is unchanged,
    and ``smooth`` stays negligible for large images (unnormalised weights
    ``~1 / volume^2`` would let it dominate). An optional ``class_weight``
    multiplies ``w_c``; weight 0 removes a class.

    Args:
        mode (str): ``'multiclass'``, ``'binary'`` or ``'multilabel'``, with
            the inputs of :class:`SoftDiceLoss`. Unlike there, ``'binary'``
            scores two classes, background ``1 - p`` and foreground ``p``,
            as in the paper's two-class experiments (a single foreground
            class would make the GDL a plain Dice). Defaults to
            'multiclass'.
        class_weight (list[float] | str, optional): Extra factor per channel
            (2 entries ``[background, foreground]`` in ``'binary'`` mode),
            or a ``.npy``/``.pkl`` path. Settable after construction; read at
            every forward. Defaults to None.
        smooth (float): ``>= 0``, added to numerator and denominator.
            Defaults to 1e-5.
        per_image (bool): GDL per image, then reduced over images; otherwise
            one GDL over the whole batch. Defaults to False.
        from_logits (bool), reduction (str), loss_weight (float),
            ignore_index (int | None): As :class:`SoftDiceLoss`, with the
            same defaults (True, 'mean', 1.0, 255).
        loss_name (str): Loss-dict key, must start with ``'loss_'``.
            Defaults to 'loss_generalized_dice'.

    Returns:
        Tensor: float32 loss; the forward takes what
        :class:`SoftDiceLoss`'s does.

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
        >>> loss = MODELS.build(dict(type='GeneralizedDiceLoss'))
        >>> logits = torch.randn(2, 3, 8, 8)
        >>> label = torch.randint(0, 3, (2, 8, 8))
        >>> loss(logits, label).shape
        torch.Size([])
    """

    _repr_keys = ('mode', 'smooth', 'per_image')

    def __init__(self,
                 mode: str = 'multiclass',
                 class_weight: ClassWeight = None,
                 smooth: float = 1e-5,
                 per_image: bool = False,
                 from_logits: bool = True,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 loss_name: str = 'loss_generalized_dice') -> None:
        super().__init__(class_weight, reduction, loss_weight, ignore_index,
                         loss_name)
        self.mode = check_mode(mode)
        self.smooth = check_non_negative('smooth', smooth)
        self.per_image = bool(per_image)
        self.from_logits = bool(from_logits)

    def class_weight_channels(self, seg_logits: torch.Tensor):
        """Two channels in ``'binary'`` mode: background and foreground."""
        if self.mode == 'binary':
            return 2, "mode='binary' scores [background, foreground]"
        return super().class_weight_channels(seg_logits)

    def compute(self, seg_logits: torch.Tensor, seg_label: torch.Tensor,
                args: LossArgs) -> torch.Tensor:
        """:func:`generalized_dice_loss` on the masked inputs;
        ``avg_factor`` is not used (a ratio of sums, not a mean)."""
        probs, onehot, mask = prepare_dice_inputs(
            seg_logits, seg_label, self.mode, args.ignore_index,
            self.from_logits, args.weight, args.check)
        if self.mode == 'binary':
            # The paper's two-class setting: score the background too, else
            # the class weights would have a single class to balance.
            probs = torch.cat([1 - probs, probs], dim=1)
            onehot = torch.cat([1 - onehot, onehot], dim=1)
            mask = torch.cat([mask, mask], dim=1)
        loss = generalized_dice_loss(
            probs,
            onehot,
            mask,
            class_weight=args.class_weight,
            smooth=self.smooth,
            per_image=self.per_image)
        return reduce_per_image(loss, args.reduction)
