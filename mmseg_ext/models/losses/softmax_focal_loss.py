# Copyright (c) mmseg_ext contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from .utils import (BaseSegLoss, ClassWeight, check_labels, check_logits,
                    check_non_negative, class_weight_tensor, pixel_weight_to,
                    valid_mask)


def softmax_focal_loss(logits: torch.Tensor,
                       label: torch.Tensor,
                       gamma: float = 2.0,
                       class_weight: Optional[torch.Tensor] = None,
                       weight: Optional[torch.Tensor] = None,
                       ignore_index: Optional[int] = 255,
                       reduction: str = 'mean',
                       avg_factor: Optional[float] = None) -> torch.Tensor:
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
        weight (Tensor, optional): ``(N, H, W)`` per-pixel weights; they
            multiply the loss (numerator only, as mmseg's cross entropy).
        ignore_index (int | None): Label to ignore. Defaults to 255.
        reduction (str): ``'none'`` (``(N, H, W)`` map, 0 on ignored
            pixels), ``'sum'`` or ``'mean'`` (``sum(l_i) / sum(a_t)`` over
            non-ignored pixels, the weighted mean of ``F.cross_entropy``).
            Defaults to 'mean'.
        avg_factor (float, optional): Divide the sum by this instead of
            ``sum(a_t)`` when ``reduction='mean'``.

    Returns:
        Tensor: float32 loss.
    """
    check_logits(logits)
    num_classes = logits.shape[1]
    if label.dim() == logits.dim() and label.shape[1] == 1:
        label = label.squeeze(1)
    if label.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError('`seg_label` should have shape (N, H, W) with '
                         f'(N, C, H, W) = {tuple(logits.shape)}, but got '
                         f'{tuple(label.shape)}')
    valid = valid_mask(label, ignore_index)
    label = label.long()
    check_labels(label, valid, num_classes, ignore_index)
    label = torch.where(valid, label, torch.zeros_like(label))

    log_prob = F.log_softmax(logits.float(), dim=1)
    log_pt = log_prob.gather(1, label.unsqueeze(1)).squeeze(1)
    loss = -log_pt
    if gamma != 0:
        # 1 - p_t via expm1 keeps precision when p_t is close to 1; the clamp
        # keeps d/dp of (1 - p_t)^gamma finite for gamma < 1.
        one_minus_pt = (-torch.expm1(log_pt)).clamp_min(1e-12)
        loss = one_minus_pt.pow(gamma) * loss

    label_weight = valid.float()
    if class_weight is not None:
        label_weight = label_weight * class_weight[label]
    loss = loss * label_weight
    weight = pixel_weight_to(weight, label.shape)
    if weight is not None:
        loss = loss * weight

    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if avg_factor is not None:
        return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
    denom = label_weight.sum()
    # All pixels ignored (or weighted 0): the sum is 0, return 0 not NaN.
    return loss.sum() / torch.where(denom > 0, denom, torch.ones_like(denom))


@MODELS.register_module()
class SoftmaxFocalLoss(BaseSegLoss):
    """Softmax focal loss for multi-class segmentation.

    From "Focal Loss for Dense Object Detection" (Lin et al., 2017), in its
    multi-class softmax form: ``-a_t (1 - p_t)^gamma log p_t`` with
    ``a_t = class_weight[t]``. ``class_weight`` plays the role of the paper's
    ``alpha`` (a scalar ``alpha`` would cancel out of the weighted mean). With
    ``gamma=0`` it equals ``F.cross_entropy(logits, label,
    weight=class_weight, ignore_index=ignore_index)``.

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
            entries or labels outside ``[0, C)``.

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

    def __init__(self,
                 gamma: float = 2.0,
                 class_weight: ClassWeight = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 loss_name: str = 'loss_focal_softmax') -> None:
        super().__init__(
            class_weight=class_weight,
            reduction=reduction,
            loss_weight=loss_weight,
            ignore_index=ignore_index,
            loss_name=loss_name)
        self.gamma = check_non_negative('gamma', gamma)

    def forward(self,
                seg_logits: torch.Tensor,
                seg_label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                ignore_index: Optional[int] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss; see the class docstring."""
        ignore_index, reduction = self._resolve(ignore_index,
                                                reduction_override)
        check_logits(seg_logits)
        class_weight = class_weight_tensor(self.class_weight,
                                           seg_logits.shape[1],
                                           seg_logits.device)
        return self.loss_weight * softmax_focal_loss(
            seg_logits,
            seg_label,
            gamma=self.gamma,
            class_weight=class_weight,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            avg_factor=avg_factor)

    def extra_repr(self) -> str:
        """Extra repr."""
        return f'gamma={self.gamma}, ' + super().extra_repr()
