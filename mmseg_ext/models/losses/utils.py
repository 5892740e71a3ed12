# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Plain helpers shared by the losses of :mod:`mmseg_ext.models.losses`.

The input preparation every loss runs (ignored entries masked *before* any
arithmetic) and the reductions; the argument and input checks live in
:mod:`.checks` and are re-exported here. The module-side bookkeeping lives in
:class:`mmseg_ext.models.losses.base.BaseSegLoss`.

Ignored entries: :func:`prepare_class_labels` and
:func:`prepare_binary_targets` replace the logits of ignored entries by 0
and their labels / weights by 0 with ``torch.where`` before softmax, sigmoid
or log run, so a NaN or inf there (padding, a masked-out region of a
mixed-precision forward) cannot reach the loss, and the gradient there is
exactly 0 (``where`` routes no gradient to the branch it does not select).
Multiplying by a 0 mask afterwards would not do: ``0 * nan`` is ``nan``.
"""
from typing import Optional, Tuple

import torch
from mmseg.models.losses.utils import weight_reduce_loss

from .checks import *  # noqa: F401,F403  (re-exported)
from .checks import (  # noqa: F401
    LabelDtypeError, LossInputError, check_label_dtype, check_logits,
    check_values, resolve_check)


def valid_mask(target: torch.Tensor,
               ignore_index: Optional[int]) -> Optional[torch.Tensor]:
    """Bool mask of the entries that are not ignored; None: all valid."""
    if ignore_index is None:
        return None
    return target != ignore_index


def _masked(x: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """``x`` with 0 where ``valid`` is False, before any arithmetic on it."""
    if valid is None:
        return x
    return torch.where(valid, x, torch.zeros((), dtype=x.dtype,
                                             device=x.device))


def _weight_to(weight: Optional[torch.Tensor], shape: torch.Size,
               per_channel: bool) -> Optional[torch.Tensor]:
    """Check a per-pixel ``weight`` and cast it to float32.

    Args:
        weight (Tensor | None): ``(N, H, W)`` or ``(N, 1, H, W)``, and with
            ``per_channel`` also ``(N, C, H, W)``.
        shape (torch.Size): ``(N, H, W)`` (``per_channel`` False) or
            ``(N, C, H, W)`` of the targets.
        per_channel (bool): ``(N, C, H, W)`` targets; the weight is
            returned as ``(N, 1, H, W)`` or ``(N, C, H, W)``.

    Returns:
        Tensor | None: float32 weights.
    """
    if weight is None:
        return None
    if not isinstance(weight, torch.Tensor):
        raise LossInputError('`weight` should be None or a tensor of '
                             'per-pixel weights, but got '
                             f'{type(weight).__name__}')
    if per_channel:
        if weight.dim() == len(shape) - 1:
            weight = weight.unsqueeze(1)
        if weight.shape not in (shape, shape[:1] + (1, ) + shape[2:]):
            raise LossInputError(
                '`weight` should have shape (N, H, W) or '
                f'{tuple(shape)}, but got {tuple(weight.shape)}')
    else:
        if weight.dim() == len(shape) + 1 and weight.shape[1] == 1:
            weight = weight.squeeze(1)
        if weight.shape != shape:
            raise LossInputError(f'`weight` should have shape {tuple(shape)} '
                                 '(one weight per pixel), but got '
                                 f'{tuple(weight.shape)}')
    return weight.float()


def prepare_class_labels(
    logits: torch.Tensor,
    label: torch.Tensor,
    ignore_index: Optional[int],
    weight: Optional[torch.Tensor] = None,
    check: str = 'sync',
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor],
           Optional[torch.Tensor]]:
    """Check softmax inputs and mask the ignored pixels.

    Args:
        logits (Tensor): ``(N, C, H, W)`` scores.
        label (Tensor): ``(N, H, W)`` (or ``(N, 1, H, W)``) integer labels in
            ``[0, C)`` or ``ignore_index``.
        ignore_index (int | None): Label to ignore.
        weight (Tensor, optional): ``(N, H, W)`` per-pixel weights, ``>= 0``.
        check (str): Value checks, see :func:`resolve_check`.
            Defaults to 'sync'.

    Returns:
        tuple: ``logits`` (float32, 0 at ignored pixels), ``label`` (long,
        0 at ignored pixels), ``valid`` (bool ``(N, H, W)``, None when
        nothing can be ignored) and ``weight`` (float32 ``(N, H, W)``, 0 at
        ignored pixels, or None).

    Raises:
        LossInputError: On shapes that do not fit, labels outside ``[0, C)``
            or negative weights.
        LabelDtypeError: On floating labels.
    """
    check_logits(logits)
    if label.dim() == logits.dim() and label.shape[1] == 1:
        label = label.squeeze(1)
    if label.shape != logits.shape[:1] + logits.shape[2:]:
        raise LossInputError('`seg_label` should have shape (N, H, W) with '
                             f'(N, C, H, W) = {tuple(logits.shape)}, but got '
                             f'{tuple(label.shape)}')
    check_label_dtype(label, binary=False)
    valid = valid_mask(label, ignore_index)
    label = _masked(label, valid).long()
    weight = _weight_to(weight, label.shape, per_channel=False)
    if weight is not None:
        weight = _masked(weight, valid)
    check_values(label, logits.shape[1], weight, ignore_index, False, check)
    if valid is not None:
        logits = _masked(logits, valid.unsqueeze(1))
    return logits.float(), label, valid, weight


def prepare_binary_targets(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: Optional[int],
    weight: Optional[torch.Tensor] = None,
    check: str = 'sync',
    per_channel_weight: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor],
           Optional[torch.Tensor]]:
    """Check sigmoid inputs and mask the ignored entries.

    Args:
        logits (Tensor): ``(N, C, H, W)`` scores.
        target (Tensor): ``(N, C, H, W)`` integer ``{0, 1}`` maps or
            ``ignore_index`` (per class-pixel); ``(N, H, W)`` is accepted
            when ``C == 1``.
        ignore_index (int | None): Target value to ignore.
        weight (Tensor, optional): ``(N, H, W)``, ``(N, 1, H, W)`` or (with
            ``per_channel_weight``) ``(N, C, H, W)`` weights, ``>= 0``.
        check (str): Value checks, see :func:`resolve_check`.
            Defaults to 'sync'.
        per_channel_weight (bool): Accept ``(N, C, H, W)`` weights.
            Defaults to True.

    Returns:
        tuple: ``logits`` (float32, 0 at ignored entries), ``target``
        (float32 ``(N, C, H, W)``, 0 at ignored entries), ``valid`` (bool
        ``(N, C, H, W)``, or None when nothing can be ignored) and
        ``weight`` (float32, broadcastable to ``(N, C, H, W)``, 0 at ignored
        entries, or None).

    Raises:
        LossInputError: On shapes that do not fit, targets outside
            ``{0, 1}`` or negative weights.
        LabelDtypeError: On floating targets.
    """
    check_logits(logits)
    if target.dim() == logits.dim() - 1 and logits.shape[1] == 1:
        target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise LossInputError(
            f'`seg_label` should have shape {tuple(logits.shape)} (N, C, H, '
            'W) with one {0, 1} map per class, or (N, H, W) when C == 1, '
            f'but got {tuple(target.shape)}')
    check_label_dtype(target, binary=True)
    valid = valid_mask(target, ignore_index)
    target = _masked(target, valid)
    if per_channel_weight:
        weight = _weight_to(weight, target.shape, per_channel=True)
    else:
        weight = _weight_to(weight, target.shape[:1] + target.shape[2:],
                            per_channel=False)
        weight = None if weight is None else weight.unsqueeze(1)
    if weight is not None and valid is not None:
        weight = torch.where(valid, weight, 0.)
    check_values(target, 2, weight, ignore_index, True, check)
    logits = _masked(logits, valid)
    return logits.float(), target.float(), valid, weight


def prepare_dice_inputs(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    ignore_index: Optional[int],
    from_logits: bool = True,
    weight: Optional[torch.Tensor] = None,
    check: str = 'sync',
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Build flattened probabilities, targets and masks for Dice losses.

    Args:
        logits (Tensor): ``(N, C, H, W)`` scores (``C == 1`` in ``'binary'``
            mode). Probabilities when ``from_logits`` is False.
        target (Tensor): ``(N, H, W)`` integer labels (``'multiclass'``),
            ``(N, H, W)`` or ``(N, 1, H, W)`` integer ``{0, 1}`` maps
            (``'binary'``) or ``(N, C, H, W)`` ones (``'multilabel'``);
            entries equal to ``ignore_index`` are ignored.
        mode (str): ``'multiclass'`` (softmax, one-hot), ``'binary'`` or
            ``'multilabel'`` (sigmoid, one channel per class).
        ignore_index (int | None): Target value to ignore.
        from_logits (bool): Apply softmax/sigmoid to ``logits``.
            Defaults to True.
        weight (Tensor, optional): ``(N, H, W)`` per-pixel weights; they
            multiply the mask. Defaults to None.
        check (str): Value checks, see :func:`resolve_check`.
            Defaults to 'sync'.

    Returns:
        tuple[Tensor]: ``probs``, ``onehot`` and ``mask``, all float32 of
        shape ``(N, C, P)`` with ``P = H * W``. ``mask`` is 0 on ignored
        entries and holds the per-pixel weight (1 by default) elsewhere;
        reductions weight every term by it. ``probs`` are computed from
        logits that are 0 at ignored entries, so they are finite there.
    """
    check_logits(logits)
    num, channels = logits.shape[:2]
    spatial = logits.shape[2:]
    if mode == 'multiclass':
        if channels < 2:
            raise LossInputError('`seg_logits` should have C >= 2 channels in '
                                 "mode='multiclass', but got C=1; use "
                                 "mode='binary' for one foreground channel")
        if target.dim() == logits.dim() and target.shape[1] == 1:
            target = target.squeeze(1)
        if target.shape != (num, ) + spatial:
            raise LossInputError(
                "`seg_label` should have shape (N, H, W) in mode='multiclass' "
                f'with (N, C, H, W) = {tuple(logits.shape)}, but got '
                f'{tuple(target.shape)}')
        logits, label, valid, weight = prepare_class_labels(
            logits, target, ignore_index, weight, check)
        onehot = torch.nn.functional.one_hot(label, channels).movedim(-1, 1)
        probs = logits.softmax(dim=1) if from_logits else logits
        if weight is not None:
            mask = weight.unsqueeze(1)
        elif valid is not None:
            mask = valid.unsqueeze(1).float()
        else:
            mask = torch.ones_like(label, dtype=torch.float32).unsqueeze(1)
        # An ignored pixel's one-hot row is class 0's; its mask is 0.
        mask = mask.expand(-1, channels, *spatial)
    else:
        if mode == 'binary':
            if channels != 1:
                raise LossInputError(
                    '`seg_logits` should have shape (N, 1, H, W) '
                    f"in mode='binary', but got {tuple(logits.shape)}")
            if target.dim() == logits.dim() - 1:
                target = target.unsqueeze(1)
        if target.shape != logits.shape:
            raise LossInputError(
                f'`seg_label` should have shape {tuple(logits.shape)} in '
                f"mode='{mode}' (one {{0, 1}} map per channel), but got "
                f'{tuple(target.shape)}')
        logits, onehot, valid, weight = prepare_binary_targets(
            logits, target, ignore_index, weight, check,
            per_channel_weight=False)
        probs = logits.sigmoid() if from_logits else logits
        if weight is not None:
            mask = weight.expand_as(onehot)
        elif valid is not None:
            mask = valid.float()
        else:
            mask = torch.ones_like(onehot)
    return probs.flatten(2), onehot.float().flatten(2), mask.flatten(2)


# --------------------------------------------------------------------------
# Arithmetic and reductions
# --------------------------------------------------------------------------
def safe_divide(numer: torch.Tensor, denom: torch.Tensor,
                empty_value: float) -> torch.Tensor:
    """``numer / denom`` with ``empty_value`` where ``denom == 0``.

    Both branches stay finite, so the gradient is finite too (a plain
    ``torch.where`` over ``0 / 0`` would leak NaN into the backward pass).
    """
    nonzero = denom != 0
    ratio = numer / torch.where(nonzero, denom, torch.ones_like(denom))
    return torch.where(nonzero, ratio, torch.full_like(ratio, empty_value))


def reduce_weighted(loss: torch.Tensor,
                    weight: Optional[torch.Tensor],
                    mean_weight: Optional[torch.Tensor],
                    reduction: str,
                    avg_factor: Optional[float] = None) -> torch.Tensor:
    """mmseg's ``weight_reduce_loss``, with our ``'mean'`` and ``'sum'``.

    Calls :func:`mmseg.models.losses.utils.weight_reduce_loss` (multiply by
    ``weight``, then ``'none'`` / ``'sum'`` / ``sum / (avg_factor + eps)``)
    and wraps only where its semantics differ from this package's contract:

    - ``'mean'`` without ``avg_factor``: mmseg's is ``loss.mean()`` over all
      entries, counting ignored ones as 0. Ours is the weighted mean
      ``sum(weight * loss) / sum(mean_weight)`` over the non-ignored entries
      (what ``F.cross_entropy(weight=class_weight, ignore_index=...)``
      computes; ``mean_weight`` is validity times class weight, without the
      per-pixel weight, as mmseg's cross entropy), divided exactly (no
      ``eps``) and 0 rather than NaN when every entry is ignored.
    - ``'sum'`` with ``avg_factor``: mmseg raises ``ValueError``; ours
      returns the sum (``avg_factor`` only divides a mean), as before.

    Args:
        loss (Tensor): Unreduced loss, finite at ignored entries.
        weight (Tensor, optional): Weight of each entry (0 at ignored
            ones), broadcastable to ``loss``.
        mean_weight (Tensor, optional): Entries whose sum divides the
            ``'mean'``; None: ``loss.numel()``.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float, optional): Divisor of the sum for ``'mean'``.

    Returns:
        Tensor: The reduced loss (the weighted loss for ``'none'``).
    """
    if weight is not None and weight.shape != loss.shape:
        weight = weight.expand_as(loss)
    if reduction == 'mean' and avg_factor is None:
        total = weight_reduce_loss(loss, weight, reduction='sum')
        if mean_weight is None:
            return total / loss.numel() if loss.numel() else total
        denom = mean_weight.sum()
        # Everything ignored (or weighted 0): the sum is 0, return 0 not NaN.
        return total / torch.where(denom > 0, denom, torch.ones_like(denom))
    if reduction == 'sum':
        avg_factor = None
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def reduce_entry_loss(loss: torch.Tensor,
                      valid: Optional[torch.Tensor],
                      class_weight: Optional[torch.Tensor],
                      weight: Optional[torch.Tensor],
                      reduction: str,
                      avg_factor: Optional[float] = None) -> torch.Tensor:
    """Weight and reduce a per-entry ``(N, C, H, W)`` sigmoid loss.

    Each entry is weighted by ``w = valid * class_weight[c]`` (times the
    optional per-pixel ``weight``); ``'mean'`` is ``sum(w l) / sum(w)``
    over the entries' validity and class weights (0, not NaN, when every
    entry is ignored), or ``sum / avg_factor`` when one is given (see
    :func:`reduce_weighted`).

    Args:
        loss (Tensor): ``(N, C, H, W)`` unreduced loss, finite everywhere.
        valid (Tensor, optional): ``(N, C, H, W)`` bool, False on ignored
            entries; None: all valid.
        class_weight (Tensor, optional): ``(C, )`` weights.
        weight (Tensor, optional): Checked per-pixel weights from
            :func:`prepare_binary_targets`, broadcastable to ``loss``.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float, optional): Divisor of the sum for ``'mean'``.

    Returns:
        Tensor: The reduced loss (``(N, C, H, W)`` for ``'none'``).
    """
    entry_weight = None if valid is None else valid.float()
    if class_weight is not None:
        view = (1, loss.shape[1]) + (1, ) * (loss.dim() - 2)
        class_weight = class_weight.view(view)
        entry_weight = class_weight.expand_as(loss) if entry_weight is None \
            else entry_weight * class_weight
    if weight is None:
        full_weight = entry_weight
    else:
        full_weight = weight if entry_weight is None else entry_weight * weight
    return reduce_weighted(loss, full_weight, entry_weight, reduction,
                           avg_factor)


def reduce_per_image(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a per-image ``(N, )`` (or batch ``()``) loss.

    mmseg's ``weight_reduce_loss`` without weights (its ``reduce_loss``).
    """
    return weight_reduce_loss(loss, None, reduction)
