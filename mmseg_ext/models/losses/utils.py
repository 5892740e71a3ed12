# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Helpers shared by the losses of :mod:`mmseg_ext.models.losses`.

The plain functions here validate arguments, turn ``class_weight`` into a
tensor and build the ``(N, C, P)`` probability / target / mask triplets that
the Dice-type losses reduce. :class:`BaseSegLoss` holds the bookkeeping every
loss module shares (``loss_name``, ``loss_weight``, ``class_weight``,
``ignore_index`` precedence) so each loss module stays thin.
"""
import math
from numbers import Number
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmseg.models.losses.utils import get_class_weight

REDUCTIONS = ('none', 'mean', 'sum')
DICE_MODES = ('multiclass', 'binary', 'multilabel')

ClassWeight = Union[None, str, Sequence[float], np.ndarray, torch.Tensor]


def check_loss_name(loss_name) -> str:
    """Return ``loss_name`` if it is a ``str`` starting with ``'loss_'``."""
    if not isinstance(loss_name, str) or not loss_name.startswith('loss_'):
        raise ValueError('`loss_name` should be a str starting with '
                         "'loss_' (mmseg only back-propagates such keys), "
                         f'but got {loss_name!r}')
    return loss_name


def check_reduction(reduction) -> str:
    """Return ``reduction`` if it is ``'none'``, ``'mean'`` or ``'sum'``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f'`reduction` should be one of {REDUCTIONS}, '
                         f'but got {reduction!r}')
    return reduction


def check_non_negative(name: str, value) -> float:
    """Return ``float(value)`` if it is a finite number ``>= 0``."""
    if (isinstance(value, bool) or not isinstance(value, Number)
            or not math.isfinite(value) or value < 0):
        raise ValueError(f'`{name}` should be a finite number >= 0, '
                         f'but got {value!r}')
    return float(value)


def check_mode(mode) -> str:
    """Return ``mode`` if it is one of :data:`DICE_MODES`."""
    if mode not in DICE_MODES:
        raise ValueError(f'`mode` should be one of {DICE_MODES}, '
                         f'but got {mode!r}')
    return mode


def normalize_class_weight(class_weight: ClassWeight,
                           name: str = 'class_weight'
                           ) -> Optional[List[float]]:
    """Turn any accepted ``class_weight`` into ``list[float]`` or ``None``.

    Args:
        class_weight (None | str | Sequence[float] | np.ndarray | Tensor):
            Per-class weights, or the path of a ``.npy``/``.pkl``/``.json``
            file holding them (read with mmseg's ``get_class_weight``).
        name (str): Argument name used in error messages.
            Defaults to 'class_weight'.

    Returns:
        list[float] | None: The weights as plain floats.

    Raises:
        ValueError: If the weights are not a non-empty 1-D sequence of finite
            numbers ``>= 0``.
    """
    if class_weight is None:
        return None
    source = class_weight
    if isinstance(class_weight, str):
        class_weight = get_class_weight(class_weight)
    if isinstance(class_weight, torch.Tensor):
        class_weight = class_weight.detach().cpu().numpy()
    try:
        array = np.asarray(class_weight, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1 or array.size == 0:
        raise ValueError(f'`{name}` should be None, a 1-D sequence of '
                         'floats (one per class) or the path of a .npy/.pkl '
                         f'file holding one, but got {source!r}')
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f'`{name}` should hold finite numbers >= 0, '
                         f'but got {array.tolist()}')
    return array.tolist()


def class_weight_tensor(
        class_weight: Optional[Sequence[float]],
        num_classes: int,
        device: torch.device,
        hint: str = 'set one weight per channel of the logits',
        name: str = 'class_weight') -> Optional[torch.Tensor]:
    """Return ``class_weight`` as a float32 tensor of shape ``(C, )``.

    Args:
        class_weight (Sequence[float] | None): Per-class weights.
        num_classes (int): ``C``, the channel count of the logits.
        device (torch.device): Device of the logits.
        hint (str): How to fix a wrong length, appended to the error.
        name (str): Argument name used in error messages.
            Defaults to 'class_weight'.

    Returns:
        Tensor | None: The weights on ``device``, or ``None``.

    Raises:
        ValueError: If the number of weights is not ``C``.
    """
    if class_weight is None:
        return None
    if len(class_weight) != num_classes:
        raise ValueError(f'`{name}` should have C={num_classes} '
                         f'entries, but got {len(class_weight)}: {hint}')
    return torch.tensor(class_weight, dtype=torch.float32, device=device)


def check_logits(logits: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``logits`` is a float ``(N, C, ...)``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() < 3 \
            or not logits.is_floating_point():
        shape = tuple(logits.shape) if isinstance(logits,
                                                  torch.Tensor) else logits
        raise ValueError('`seg_logits` should be a float tensor of shape '
                         f'(N, C, H, W), but got {shape}')


def valid_mask(target: torch.Tensor,
               ignore_index: Optional[int]) -> torch.Tensor:
    """Boolean mask of the entries of ``target`` that are not ignored."""
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_index


def check_labels(label: torch.Tensor, valid: torch.Tensor, num_classes: int,
                 ignore_index: Optional[int]) -> None:
    """Raise ``ValueError`` if a non-ignored label is outside ``[0, C)``."""
    bad = valid & ((label < 0) | (label >= num_classes))
    if bad.any():
        raise ValueError(f'`seg_label` values should be in [0, '
                         f'{num_classes - 1}] or ignore_index={ignore_index}, '
                         f'but got {label[bad][0].item()}')


def check_binary_targets(target: torch.Tensor, valid: torch.Tensor,
                         ignore_index: Optional[int]) -> None:
    """Raise ``ValueError`` if a non-ignored target is outside ``[0, 1]``."""
    bad = valid & ((target < 0) | (target > 1))
    if bad.any():
        raise ValueError('binary/multilabel targets should be in [0, 1] or '
                         f'ignore_index={ignore_index}, but got '
                         f'{target[bad][0].item()}')


def pixel_weight_to(weight: Optional[torch.Tensor],
                    shape: torch.Size) -> Optional[torch.Tensor]:
    """Check a per-pixel ``weight`` of shape ``(N, H, W)`` and cast it.

    Args:
        weight (Tensor | None): Per-pixel weights, ``(N, H, W)`` or
            ``(N, 1, H, W)``.
        shape (torch.Size): ``(N, H, W)`` of the labels.

    Returns:
        Tensor | None: float32 weights of shape ``(N, H, W)``.
    """
    if weight is None:
        return None
    if weight.dim() == len(shape) + 1 and weight.shape[1] == 1:
        weight = weight.squeeze(1)
    if weight.shape != shape:
        raise ValueError(f'`weight` should have shape {tuple(shape)} '
                         '(one weight per pixel), but got '
                         f'{tuple(weight.shape)}')
    return weight.float()


def prepare_dice_inputs(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    ignore_index: Optional[int],
    from_logits: bool = True,
    weight: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Build flattened probabilities, targets and masks for Dice losses.

    Args:
        logits (Tensor): ``(N, C, H, W)`` scores (``C == 1`` in ``'binary'``
            mode). Probabilities when ``from_logits`` is False.
        target (Tensor): ``(N, H, W)`` integer labels (``'multiclass'``),
            ``(N, H, W)`` or ``(N, 1, H, W)`` values in ``[0, 1]``
            (``'binary'``) or ``(N, C, H, W)`` values in ``[0, 1]``
            (``'multilabel'``); entries equal to ``ignore_index`` are ignored.
        mode (str): ``'multiclass'`` (softmax, one-hot), ``'binary'`` or
            ``'multilabel'`` (sigmoid, one channel per class).
        ignore_index (int | None): Target value to ignore.
        from_logits (bool): Apply softmax/sigmoid to ``logits``.
            Defaults to True.
        weight (Tensor, optional): ``(N, H, W)`` per-pixel weights; they
            multiply the mask. Defaults to None.

    Returns:
        tuple[Tensor]: ``probs``, ``onehot`` and ``mask``, all float32 of
        shape ``(N, C, P)`` with ``P = H * W``. ``mask`` is 0 on ignored
        entries and holds the per-pixel weight (1 by default) elsewhere;
        reductions weight every term by it.
    """
    check_logits(logits)
    num, channels = logits.shape[:2]
    spatial = logits.shape[2:]
    logits = logits.float()
    if mode == 'multiclass':
        if channels < 2:
            raise ValueError('`seg_logits` should have C >= 2 channels in '
                             "mode='multiclass', but got C=1; use "
                             "mode='binary' for one foreground channel")
        if target.dim() == logits.dim() and target.shape[1] == 1:
            target = target.squeeze(1)
        if target.shape != (num, ) + spatial:
            raise ValueError(
                "`seg_label` should have shape (N, H, W) in mode='multiclass' "
                f'with (N, C, H, W) = {tuple(logits.shape)}, but got '
                f'{tuple(target.shape)}')
        valid = valid_mask(target, ignore_index)
        label = target.long()
        check_labels(label, valid, channels, ignore_index)
        label = torch.where(valid, label, torch.zeros_like(label))
        onehot = nn.functional.one_hot(label, channels).movedim(-1, 1)
        probs = logits.softmax(dim=1) if from_logits else logits
        mask = valid.unsqueeze(1).float()
        if weight is not None:
            mask = mask * pixel_weight_to(weight, target.shape).unsqueeze(1)
        mask = mask.expand(-1, channels, *spatial)
    else:
        if mode == 'binary':
            if channels != 1:
                raise ValueError('`seg_logits` should have shape (N, 1, H, W) '
                                 f"in mode='binary', but got "
                                 f'{tuple(logits.shape)}')
            if target.dim() == logits.dim() - 1:
                target = target.unsqueeze(1)
        if target.shape != logits.shape:
            raise ValueError(
                f'`seg_label` should have shape {tuple(logits.shape)} in '
                f"mode='{mode}' (one {{0, 1}} map per channel), but got "
                f'{tuple(target.shape)}')
        valid = valid_mask(target, ignore_index)
        check_binary_targets(target, valid, ignore_index)
        onehot = torch.where(valid, target.float(), 0.)
        probs = logits.sigmoid() if from_logits else logits
        mask = valid.float()
        if weight is not None:
            mask = mask * pixel_weight_to(weight,
                                          target.shape[:1] +
                                          target.shape[2:]).unsqueeze(1)
    return probs.flatten(2), onehot.float().flatten(2), mask.flatten(2)


def safe_divide(numer: torch.Tensor, denom: torch.Tensor,
                empty_value: float) -> torch.Tensor:
    """``numer / denom`` with ``empty_value`` where ``denom == 0``.

    Both branches stay finite, so the gradient is finite too (a plain
    ``torch.where`` over ``0 / 0`` would leak NaN into the backward pass).
    """
    nonzero = denom != 0
    ratio = numer / torch.where(nonzero, denom, torch.ones_like(denom))
    return torch.where(nonzero, ratio, torch.full_like(ratio, empty_value))


def prepare_sigmoid_targets(
        logits: torch.Tensor, target: torch.Tensor,
        ignore_index: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Check ``(N, C, H, W)`` sigmoid targets; return them as float with
    ignored entries set to 0, and the validity mask.

    ``(N, H, W)`` targets are accepted when ``C == 1`` (binary).

    Raises:
        ValueError: on logits that are not ``(N, C, H, W)`` float, a target
            of another shape, or non-ignored values outside ``[0, 1]``.
    """
    check_logits(logits)
    if target.dim() == logits.dim() - 1 and logits.shape[1] == 1:
        target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise ValueError(f'`seg_label` should have shape {tuple(logits.shape)}'
                         ' (N, C, H, W) with one {0, 1} map per class, or '
                         '(N, H, W) when C == 1, but got '
                         f'{tuple(target.shape)}')
    valid = valid_mask(target, ignore_index)
    check_binary_targets(target, valid, ignore_index)
    return torch.where(valid, target.float(), 0.), valid


def reduce_entry_loss(loss: torch.Tensor,
                      valid: torch.Tensor,
                      class_weight: Optional[torch.Tensor],
                      weight: Optional[torch.Tensor],
                      reduction: str,
                      avg_factor: Optional[float] = None) -> torch.Tensor:
    """Weight and reduce a per-entry ``(N, C, H, W)`` sigmoid loss.

    Each entry is weighted by ``w = valid * class_weight[c]`` (times the
    optional per-pixel ``weight``); ``'mean'`` is ``sum(w l) / sum(w)``
    over the entries' validity and class weights (0, not NaN, when every
    entry is ignored), or ``sum / avg_factor`` when one is given.

    Args:
        loss (Tensor): ``(N, C, H, W)`` unreduced loss.
        valid (Tensor): ``(N, C, H, W)`` bool, False on ignored entries.
        class_weight (Tensor, optional): ``(C, )`` weights.
        weight (Tensor, optional): ``(N, H, W)``, ``(N, 1, H, W)`` or
            ``(N, C, H, W)`` per-pixel weights.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float, optional): Divisor of the sum for ``'mean'``.

    Returns:
        Tensor: The reduced loss (``(N, C, H, W)`` for ``'none'``).
    """
    view = (1, loss.shape[1]) + (1, ) * (loss.dim() - 2)
    entry_weight = valid.float()
    if class_weight is not None:
        entry_weight = entry_weight * class_weight.view(view)
    loss = loss * entry_weight
    if weight is not None:
        if weight.dim() == loss.dim() - 1:
            weight = weight.unsqueeze(1)
        if weight.shape not in (loss.shape, loss[:, :1].shape):
            raise ValueError('`weight` should have shape (N, H, W) or '
                             f'{tuple(loss.shape)}, but got '
                             f'{tuple(weight.shape)}')
        loss = loss * weight.float()
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if avg_factor is not None:
        return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
    denom = entry_weight.sum()
    # Everything ignored (or weighted 0): the sum is 0, return 0 not NaN.
    return loss.sum() / torch.where(denom > 0, denom, torch.ones_like(denom))


def reduce_per_image(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a per-image ``(N, )`` (or batch ``()``) loss."""
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    return loss


class BaseSegLoss(nn.Module):
    """Bookkeeping shared by the losses of this package (not registered).

    Args:
        class_weight (list[float] | str, optional): Weight of each class, or
            the path of a ``.npy``/``.pkl`` file holding them. Also settable
            after construction (``loss.class_weight = [...]``, e.g. by a
            hook); it is read at every forward. Defaults to None.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int | None): Target value to ignore when the forward
            call passes none. Defaults to 255.
        loss_name (str): Key of the loss in mmseg's loss dict; must start
            with ``'loss_'``. Defaults to 'loss'.

    Raises:
        ValueError: On an invalid ``reduction``, ``loss_weight``,
            ``class_weight`` or ``loss_name``.
    """

    def __init__(self,
                 class_weight: ClassWeight = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 loss_name: str = 'loss') -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        if isinstance(loss_weight, bool) or not isinstance(
                loss_weight, Number) or not math.isfinite(loss_weight):
            raise ValueError('`loss_weight` should be a finite number, '
                             f'but got {loss_weight!r}')
        self.loss_weight = float(loss_weight)
        if ignore_index is not None and (isinstance(ignore_index, bool)
                                         or not isinstance(ignore_index, int)):
            raise ValueError('`ignore_index` should be an int or None, '
                             f'but got {ignore_index!r}')
        self.ignore_index = ignore_index
        self.class_weight = class_weight
        self._loss_name = check_loss_name(loss_name)

    @property
    def class_weight(self) -> Optional[List[float]]:
        """list[float] | None: Per-class weights, read at every forward."""
        return self._class_weight

    @class_weight.setter
    def class_weight(self, value: ClassWeight) -> None:
        self._class_weight = normalize_class_weight(value)

    @property
    def loss_name(self) -> str:
        """str: Key of this loss in the loss dict (starts with ``loss_``)."""
        return self._loss_name

    def _resolve(self, ignore_index: Optional[int],
                 reduction_override: Optional[str]) -> Tuple[Optional[int],
                                                             str]:
        """Pick the forward-time ``ignore_index`` and reduction."""
        if ignore_index is None:
            ignore_index = self.ignore_index
        if reduction_override is None:
            reduction = self.reduction
        else:
            reduction = check_reduction(reduction_override)
        return ignore_index, reduction

    def extra_repr(self) -> str:
        """Extra repr."""
        return (f'loss_name={self.loss_name!r}, loss_weight='
                f'{self.loss_weight}, reduction={self.reduction!r}, '
                f'ignore_index={self.ignore_index}, '
                f'class_weight={self.class_weight}')
