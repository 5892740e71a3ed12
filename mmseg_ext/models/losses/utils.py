# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Plain helpers shared by the losses of :mod:`mmseg_ext.models.losses`.

Argument checks, ``class_weight`` parsing, the input preparation every loss
runs (shape / dtype / range checks, ignored entries masked *before* any
arithmetic) and the reductions. The module-side bookkeeping lives in
:class:`mmseg_ext.models.losses.base.BaseSegLoss`.

Ignored entries: :func:`prepare_class_labels` and
:func:`prepare_binary_targets` replace the logits of ignored entries by 0
and their labels / weights by 0 with ``torch.where`` before softmax, sigmoid
or log run, so a NaN or inf there (padding, a masked-out region of a
mixed-precision forward) cannot reach the loss, and the gradient there is
exactly 0 (``where`` routes no gradient to the branch it does not select).
Multiplying by a 0 mask afterwards would not do: ``0 * nan`` is ``nan``.
"""
import math
import os
from numbers import Number
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmseg.models.losses.utils import get_class_weight, weight_reduce_loss

from mmseg_ext.utils.errors import InputError

REDUCTIONS = ('none', 'mean', 'sum')
DICE_MODES = ('multiclass', 'binary', 'multilabel')

#: Environment variable choosing how label / weight values are checked.
CHECKS_ENV = 'MMSEG_EXT_LOSS_CHECKS'
#: Its values; see :func:`resolve_check`.
CHECK_MODES = ('auto', 'sync', 'async', 'off')

ClassWeight = Union[None, str, Sequence[float], np.ndarray, torch.Tensor]


class LossInputError(InputError):
    """A loss got inputs it cannot score (shape, value range, weights).

    The project's :class:`~mmseg_ext.utils.errors.InputError` (a
    ``ValueError``), so ``except ValueError`` keeps working.
    """


class LabelDtypeError(LossInputError, TypeError):
    """Labels / targets of a floating dtype where integers are expected.

    Both a :class:`LossInputError` (``ValueError``) and a ``TypeError``.
    """


# --------------------------------------------------------------------------
# Argument checks (at construction)
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# Input checks (at forward)
# --------------------------------------------------------------------------
def check_logits(logits: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``logits`` is a float ``(N, C, ...)``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() < 3 \
            or not logits.is_floating_point():
        shape = tuple(logits.shape) if isinstance(logits,
                                                  torch.Tensor) else logits
        raise LossInputError('`seg_logits` should be a float tensor of shape '
                             f'(N, C, H, W), but got {shape}')


def resolve_check(device: torch.device, checked_before: bool) -> str:
    """How to check label and weight values on this forward call.

    Read from the ``MMSEG_EXT_LOSS_CHECKS`` environment variable at every
    call (so a debugging session can flip it without a rebuild):

    - ``auto`` (default, also when unset): ``sync`` for CPU tensors, where
      reading a reduction back costs no device synchronisation; on an
      accelerator ``sync`` for the first forward of each loss module (a wrong
      ``num_classes``, ``reduce_zero_label`` or label map shows up on the
      first batch, with a clear message) and ``async`` afterwards.
    - ``sync``: read the min / max back and raise :class:`LossInputError`
      naming the value and the expected range (one host sync per call on an
      accelerator; for debugging).
    - ``async``: ``torch._assert_async`` on the device (no host sync; on
      CUDA a failure surfaces as a device-side assertion at a later
      synchronisation and ends the process, as an out-of-range label in
      ``F.cross_entropy`` does; rerun with ``sync`` to see the value).
    - ``off``: no value checks (shape and dtype checks, which read no data,
      stay on).

    Why this default: the check is one ``aminmax`` over labels the loss has
    already masked, so its arithmetic is negligible
    (``benchmarks/bench_loss_checks.py``, 2 shared CPU cores, forward +
    backward with / without checks: ``MultiLabelBCELoss`` on
    ``(8, 29, 512, 512)`` uint8 targets 1.003, ``SoftmaxFocalLoss`` on
    ``(8, 5, 512, 512)`` labels 0.989, i.e. within noise; the check alone is
    0.3 % and 1.6 % of the call). What costs on an accelerator is reading
    the result back: a host sync in the middle of the step, before the
    backward is queued, which stalls launch-bound models. Hence a clear,
    synchronous error where it is free (CPU) or once (the first batch, which
    catches configuration mistakes), and a device-side assertion, with no
    sync, for a bad label that only appears later.

    Args:
        device (torch.device): Device of the inputs.
        checked_before (bool): Whether this loss module already ran one
            ``sync`` check.

    Returns:
        str: ``'sync'``, ``'async'`` or ``'off'``.

    Raises:
        ValueError: If the environment variable holds another value.
    """
    mode = os.environ.get(CHECKS_ENV, 'auto').strip().lower() or 'auto'
    if mode not in CHECK_MODES:
        raise ValueError(f'${CHECKS_ENV} should be one of {CHECK_MODES}, '
                         f'but got {mode!r}; unset it for the default')
    if mode != 'auto':
        return mode
    if device.type == 'cpu' or not checked_before:
        return 'sync'
    return 'async'


def check_label_dtype(label: torch.Tensor, binary: bool) -> None:
    """Raise :class:`LabelDtypeError` on floating or complex labels.

    Fractional labels mean an interpolated label map (bilinear resize) or a
    cast gone wrong; they are never class indices or ``{0, 1}`` maps.
    """
    if label.is_floating_point() or label.is_complex():
        if binary:
            expected = ('an integer tensor of {0, 1} maps (uint8 '
                        '(N, C, H, W) with 0, 1 or ignore_index)')
            fix = '`.to(torch.uint8)`'
        else:
            expected = ('an integer tensor of class indices (long '
                        '(N, H, W))')
            fix = '`.long()`'
        raise LabelDtypeError(
            f'`seg_label` should be {expected}, but got {label.dtype}; cast '
            f'it with {fix} and resize labels with mode=\'nearest\' (soft or '
            'fractional targets are not supported)')


def check_values(label: torch.Tensor,
                 num_values: int,
                 weight: Optional[torch.Tensor],
                 ignore_index: Optional[int],
                 binary: bool,
                 check: str = 'sync') -> None:
    """Check masked labels against ``[0, num_values)`` and weights ``>= 0``.

    One ``aminmax`` pass over the labels (and one over the weights); the
    caller has already replaced ignored entries by 0 (the loss needs that
    anyway), so ``ignore_index`` needs no extra pass.

    Args:
        label (Tensor): Integer labels, 0 at ignored entries.
        num_values (int): ``C`` (class indices) or 2 (``{0, 1}`` maps).
        weight (Tensor, optional): Per-pixel weights, 0 at ignored entries.
        ignore_index (int | None): For the message.
        binary (bool): ``{0, 1}`` maps (for the message).
        check (str): ``'sync'``, ``'async'`` or ``'off'`` (see
            :func:`resolve_check`). Defaults to 'sync'.

    Raises:
        LossInputError: (``sync``) a non-ignored label outside the range, or
            a weight that is negative or not finite.
        RuntimeError: (``async`` on CPU) the same, from
            ``torch._assert_async``.
    """
    if check == 'off' or label.numel() == 0:
        return
    if label.dtype == torch.bool:
        label = label.view(torch.uint8)
    lo, hi = torch.aminmax(label)
    if weight is not None and weight.numel():
        wlo, whi = torch.aminmax(weight)
    else:
        weight = None
    if check == 'async':
        ok = (lo >= 0) & (hi < num_values)
        if weight is not None:
            ok = ok & (wlo >= 0) & (whi < math.inf)  # NaN compares False
        torch._assert_async(
            ok, 'mmseg_ext loss: label outside its range or bad weight; '
            f'rerun with {CHECKS_ENV}=sync for the value')
        return
    lo, hi = int(lo), int(hi)
    if lo < 0 or hi >= num_values:
        value = lo if lo < 0 else hi
        if binary:
            expected = 'in [0, 1] (one {0, 1} map per class)'
            fix = 'binarise the targets'
        else:
            expected = (f'in [0, {num_values - 1}] (class indices, '
                        f'C={num_values})')
            fix = ('check num_classes of the head against the dataset and '
                   'its reduce_zero_label / label_map')
        raise LossInputError(
            f'`seg_label` values should be {expected} or '
            f'ignore_index={ignore_index}, but got {value} (non-ignored '
            f'values span [{lo}, {hi}]); {fix}')
    if weight is not None:
        wlo, whi = float(wlo), float(whi)
        if not (wlo >= 0 and math.isfinite(whi)):
            raise LossInputError(
                '`weight` (per-pixel) should hold finite values >= 0, but '
                f'non-ignored weights span [{wlo}, {whi}]; weight 0 removes '
                'a pixel')


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
