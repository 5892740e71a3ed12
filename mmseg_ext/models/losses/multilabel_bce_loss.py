# Copyright (c) mmseg_ext contributors. All rights reserved.
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from .base import BaseSegLoss, LossArgs
from .utils import (ClassWeight, normalize_class_weight,
                    prepare_binary_targets, reduce_entry_loss)


def multilabel_bce_loss(logits: torch.Tensor,
                        target: torch.Tensor,
                        class_weight: Optional[torch.Tensor] = None,
                        pos_weight: Optional[torch.Tensor] = None,
                        weight: Optional[torch.Tensor] = None,
                        ignore_index: Optional[int] = 255,
                        reduction: str = 'mean',
                        avg_factor: Optional[float] = None,
                        check: str = 'sync') -> torch.Tensor:
    """Per-class sigmoid binary cross entropy with ignored entries.

    ``l_nchw = F.binary_cross_entropy_with_logits(x, t, pos_weight)``, times
    ``w_nchw = class_weight[c] * valid_nchw``.

    Args:
        logits (Tensor): ``(N, C, H, W)`` scores.
        target (Tensor): ``(N, C, H, W)`` integer (uint8) ``{0, 1}`` maps
            or ``ignore_index``; ``(N, H, W)`` is accepted when ``C == 1``.
        class_weight (Tensor, optional): ``(C, )`` per-class weights.
        pos_weight (Tensor, optional): ``(C, )`` weights of the positive
            term, as ``F.binary_cross_entropy_with_logits``.
        weight (Tensor, optional): ``(N, H, W)`` or ``(N, C, H, W)``
            per-entry weights ``>= 0`` multiplying the loss (numerator
            only).
        ignore_index (int | None): Target value to ignore; the logit,
            target and weight of an ignored entry are replaced by 0 before
            any arithmetic (no NaN gets through, zero gradient).
            Defaults to 255.
        reduction (str): ``'none'`` (``(N, C, H, W)``, 0 on ignored
            entries), ``'sum'`` or ``'mean'`` (``sum(w l) / sum(w)``).
            Defaults to 'mean'.
        avg_factor (float, optional): Divide the sum by this instead of
            ``sum(w)`` when ``reduction='mean'``.
        check (str): Target / weight value checks: ``'sync'``, ``'async'``
            or ``'off'`` (see :func:`.utils.resolve_check`).
            Defaults to 'sync'.

    Returns:
        Tensor: float32 loss.

    Raises:
        LossInputError: On mismatched shapes, a non-ignored target outside
            ``{0, 1}`` or a negative / non-finite weight.
        LabelDtypeError: On floating targets.
    """
    logits, target, valid, weight = prepare_binary_targets(
        logits, target, ignore_index, weight, check)
    channels = logits.shape[1]
    view = (1, channels) + (1, ) * (logits.dim() - 2)
    if pos_weight is not None:
        pos_weight = pos_weight.view(view)
    loss = F.binary_cross_entropy_with_logits(
        logits, target, pos_weight=pos_weight, reduction='none')

    return reduce_entry_loss(loss, valid, class_weight, weight, reduction,
                             avg_factor)


@MODELS.register_module()
class MultiLabelBCELoss(BaseSegLoss):
    """Per-class sigmoid binary cross entropy for multi-label segmentation.

    Each of the C channels is an independent ``{0, 1}`` map (classes may
    overlap). The loss is ``F.binary_cross_entropy_with_logits`` per entry,
    weighted by ``w = class_weight[c] * valid`` and averaged as
    ``sum(w l) / sum(w)`` over non-ignored entries.

    Bad input is handled as in :class:`~.base.BaseSegLoss`: ignored entries
    contribute nothing, not even NaN; bad labels raise.

    Args:
        class_weight (list[float] | str, optional): Weight of each class
            (broadcast over the C dim), or a ``.npy``/``.pkl`` path.
            Settable after construction; read at every forward.
            Defaults to None.
        pos_weight (list[float] | str, optional): Weight of the positive
            term of each class (``> 1`` favours recall), as
            ``F.binary_cross_entropy_with_logits``. Defaults to None.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'`` (an
            ``(N, C, H, W)`` map). Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int | None): Target value to ignore (per class-pixel)
            when the forward call passes none; a forward ``ignore_index``
            (mmseg's decode heads pass theirs) takes precedence.
            Defaults to 255.
        loss_name (str): Loss-dict key, must start with ``'loss_'``.
            Defaults to 'loss_ml_bce'.

    Returns:
        Tensor: float32 loss; the forward takes ``(N, C, H, W)`` logits and
        ``(N, C, H, W)`` uint8 ``{0, 1}`` targets (``(N, H, W)`` when
        ``C == 1``), plus optional per-pixel ``weight``, ``avg_factor``,
        ``reduction_override`` and ``ignore_index``.

    Raises:
        ValueError: On a bad ``pos_weight``, ``reduction`` or ``loss_name``,
            or (at forward) a ``class_weight`` or ``pos_weight`` without C
            entries.
        LossInputError, LabelDtypeError: bad input at forward, see
            :class:`~.base.BaseSegLoss`.

    Examples:
        >>> import torch
        >>> from mmseg.registry import MODELS
        >>> import mmseg_ext  # noqa: F401
        >>> loss = MODELS.build(dict(type='MultiLabelBCELoss'))
        >>> logits = torch.randn(2, 3, 8, 8)
        >>> target = torch.randint(0, 2, (2, 3, 8, 8))
        >>> loss(logits, target).shape
        torch.Size([])
    """

    _repr_keys = ('pos_weight', )

    def __init__(self,
                 class_weight: ClassWeight = None,
                 pos_weight: Optional[Sequence[float]] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 loss_name: str = 'loss_ml_bce') -> None:
        super().__init__(class_weight, reduction, loss_weight, ignore_index,
                         loss_name)
        self.pos_weight = normalize_class_weight(pos_weight, 'pos_weight')

    def compute(self, seg_logits: torch.Tensor, seg_label: torch.Tensor,
                args: LossArgs) -> torch.Tensor:
        """:func:`multilabel_bce_loss` with the module's settings."""
        pos_weight = self.channel_tensor(
            self.pos_weight, seg_logits.shape[1], seg_logits.device,
            name='pos_weight')
        return multilabel_bce_loss(
            seg_logits, seg_label, pos_weight=pos_weight, **args._asdict())
