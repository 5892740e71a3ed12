# Copyright (c) mmseg_ext contributors. All rights reserved.
from typing import Optional

import torch
from mmseg.registry import MODELS

from .utils import (BaseSegLoss, ClassWeight, check_logits, check_mode,
                    check_non_negative, class_weight_tensor,
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
        from_logits (bool): Apply softmax/sigmoid. Defaults to True.
        reduction (str): Over images when ``per_image``: ``'mean'``,
            ``'sum'`` or ``'none'`` (an ``(N, )`` tensor). Defaults to
            'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int | None): Target value to ignore when the forward
            call passes none; a forward ``ignore_index`` (mmseg's decode
            heads pass theirs) takes precedence. Defaults to 255.
        loss_name (str): Loss-dict key, must start with ``'loss_'``.
            Defaults to 'loss_generalized_dice'.

    Returns:
        Tensor: float32 loss. The forward also takes an optional
        ``(N, H, W)`` per-pixel ``weight`` that scales each pixel's share of
        the sums; ``avg_factor`` is accepted and ignored.

    Raises:
        ValueError: On a bad ``mode``, negative ``smooth``, bad
            ``reduction`` or ``loss_name``, or (at forward) shapes that do
            not fit ``mode``, a ``class_weight`` without C entries, or
            targets outside their range.

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
        super().__init__(
            class_weight=class_weight,
            reduction=reduction,
            loss_weight=loss_weight,
            ignore_index=ignore_index,
            loss_name=loss_name)
        self.mode = check_mode(mode)
        self.smooth = check_non_negative('smooth', smooth)
        self.per_image = bool(per_image)
        self.from_logits = bool(from_logits)

    def forward(self,
                seg_logits: torch.Tensor,
                seg_label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                ignore_index: Optional[int] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss; see the class docstring."""
        ignore_index, reduction = self._resolve(ignore_index,
                                                reduction_override)
        check_logits(seg_logits)
        binary = self.mode == 'binary'
        class_weight = class_weight_tensor(
            self.class_weight,
            2 if binary else seg_logits.shape[1],
            seg_logits.device,
            hint=("mode='binary' scores [background, foreground]"
                  if binary else 'set one weight per channel of the logits'))
        probs, onehot, mask = prepare_dice_inputs(seg_logits, seg_label,
                                                  self.mode, ignore_index,
                                                  self.from_logits, weight)
        if binary:
            # The paper's two-class setting: score the background too, else
            # the class weights would have a single class to balance.
            probs = torch.cat([1 - probs, probs], dim=1)
            onehot = torch.cat([1 - onehot, onehot], dim=1)
            mask = torch.cat([mask, mask], dim=1)
        loss = generalized_dice_loss(
            probs,
            onehot,
            mask,
            class_weight=class_weight,
            smooth=self.smooth,
            per_image=self.per_image)
        return self.loss_weight * reduce_per_image(loss, reduction)

    def extra_repr(self) -> str:
        """Extra repr."""
        return (f'mode={self.mode!r}, smooth={self.smooth}, '
                f'per_image={self.per_image}, ' + super().extra_repr())
