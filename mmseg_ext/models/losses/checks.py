# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Checks shared by the losses of :mod:`mmseg_ext.models.losses`: arguments
at construction (``loss_name``, ``reduction``, modes, ``class_weight``) and
inputs at forward (logits, label dtype, label / weight value ranges), with
the losses' error classes. :mod:`.utils` re-exports every name.
"""
import math
import os
from numbers import Number
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmseg.models.losses.utils import get_class_weight

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
