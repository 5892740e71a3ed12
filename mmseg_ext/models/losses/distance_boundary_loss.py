# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The boundary loss of Kervadec et al. with a region loss and a schedule.

"Boundary loss for highly unbalanced segmentation" (Kervadec et al., MIDL
2019 / MedIA 2021): ``L_B = mean over pixels of p * phi``, ``phi`` the
signed distance map of the ground truth (negative inside), trained together
with a region loss ``L_R`` as ``(1 - b) L_R + b L_B``, the boundary weight
``b`` rising during training (their "rebalance" strategy; ``rebalance=False``
gives ``L_R + b L_B``).

Why not MMSeg's: its ``BoundaryLoss`` is PIDNet's binary edge BCE, and
``HuasdorffDisstanceLoss`` is a softmax-only Hausdorff surrogate with the
distance maps computed per batch with scipy inside the step.

How the loss knows the iteration: :class:`LossScheduleHook` calls
:meth:`DistanceBoundaryLoss.set_iteration` with ``runner.iter`` before every
training iteration (so a resumed run continues the schedule where it
stopped); without the hook the loss stays at iteration 0 (``start``). A
counter inside the loss would restart at 0 on resume and count every extra
call (auxiliary heads, validation losses).

Where the distance maps come from: multi-label heads get them from the
pipeline (:class:`GenerateDistanceMaps` after the crop,
``data_sample.gt_dist_map``; :class:`MultiLabelHead` passes them as
``dist_map``); otherwise (softmax heads: MMSeg's decode heads pass only the
labels) the loss computes them from the labels on the host with the same
function (:func:`mmseg_ext.utils.distance_maps.signed_distance_maps`).
"""
import math
from numbers import Number
from typing import Optional

import numpy as np
import torch
from mmseg.registry import MODELS

from mmseg_ext.utils.distance_maps import signed_distance_maps
from .base import BaseSegLoss, LossArgs
from .utils import (ClassWeight, LossInputError, normalize_class_weight,
                    prepare_binary_targets, prepare_class_labels,
                    reduce_entry_loss)

__all__ = ['DistanceBoundaryLoss', 'boundary_weight_at', 'boundary_loss']

SCHEDULES = ('constant', 'linear', 'step')


def _number(schedule: dict, key: str, default=None, low=0.0):
    value = schedule.get(key, default)
    if isinstance(value, bool) or not isinstance(value, Number) or \
            not math.isfinite(value) or value < low:
        raise ValueError(f'`schedule[{key!r}]` should be a finite number >= '
                         f'{low}, but got {value!r}')
    return value


def check_schedule(schedule: dict) -> dict:
    """Validate a boundary-weight schedule; returns it with defaults.

    Keys: ``type`` (``'constant'``, ``'linear'``, ``'step'``); ``start``
    (weight at ``begin``, default 0.01), ``stop`` (final weight, default
    0.99), ``begin`` (default 0); ``'linear'``: ``end`` (iteration where
    ``stop`` is reached); ``'step'``: ``step`` (increment, default 0.01)
    every ``interval`` iterations.
    """
    if not isinstance(schedule, dict) or schedule.get('type') not in \
            SCHEDULES:
        raise ValueError(f'`schedule` should be a dict with type in '
                         f'{SCHEDULES}, but got {schedule!r}')
    out = dict(schedule)
    out['start'] = _number(out, 'start', 0.01)
    out['stop'] = _number(out, 'stop', 0.99)
    out['begin'] = int(_number(out, 'begin', 0))
    if out['type'] == 'linear':
        out['end'] = int(_number(out, 'end', None))
        if out['end'] <= out['begin']:
            raise ValueError('`schedule` should have end > begin, but got '
                             f"begin={out['begin']}, end={out['end']}")
    elif out['type'] == 'step':
        out['step'] = _number(out, 'step', 0.01)
        out['interval'] = int(_number(out, 'interval', None, low=1))
    return out


def boundary_weight_at(schedule: dict, iteration: int) -> float:
    """The boundary weight ``b`` at ``iteration`` (0-based).

    ``'constant'``: ``start``. ``'linear'``: ``start`` before ``begin``,
    then linear to ``stop`` at ``end``, ``stop`` after. ``'step'``:
    ``start + step * floor((iteration - begin) / interval)``, capped at
    ``stop`` (Kervadec et al.: +0.01 per epoch).

    Examples:
        >>> s = dict(type='linear', begin=0, end=100, start=0.0, stop=1.0)
        >>> boundary_weight_at(s, 25)
        0.25
    """
    start, stop = schedule['start'], schedule['stop']
    kind = schedule['type']
    if kind == 'constant' or iteration <= schedule['begin']:
        return float(start)
    elapsed = iteration - schedule['begin']
    if kind == 'linear':
        frac = min(1.0, elapsed / (schedule['end'] - schedule['begin']))
        return float(start + (stop - start) * frac)
    value = start + schedule['step'] * (elapsed // schedule['interval'])
    return float(min(value, stop) if stop >= start else max(value, stop))


def boundary_loss(probs: torch.Tensor,
                  dist_map: torch.Tensor,
                  valid: Optional[torch.Tensor] = None,
                  class_weight: Optional[torch.Tensor] = None,
                  weight: Optional[torch.Tensor] = None,
                  reduction: str = 'mean',
                  avg_factor: Optional[float] = None) -> torch.Tensor:
    """``mean(p * phi)`` over the valid class-pixels (Kervadec et al.).

    Args:
        probs (Tensor): ``(N, C, H, W)`` probabilities.
        dist_map (Tensor): ``(N, C, H, W)`` signed distances (negative
            inside the ground truth).
        valid (Tensor, optional): Bool, broadcastable to ``(N, C, H, W)``.
        class_weight (Tensor, optional): ``(C, )``.
        weight (Tensor, optional): Per-pixel weights, broadcastable.
        reduction (str): ``'none'``, ``'mean'`` (weighted mean over the
            valid entries) or ``'sum'``. Defaults to 'mean'.
        avg_factor (float, optional): Divisor of a ``'mean'``.

    Returns:
        Tensor: The loss (may be negative: ``p = 1`` inside gives
        ``-mean(d_in - 1)``).
    """
    loss = probs * dist_map.to(probs.dtype)
    if valid is not None:
        valid = valid.expand_as(loss)
        loss = torch.where(valid, loss, torch.zeros((), dtype=loss.dtype,
                                                    device=loss.device))
    return reduce_entry_loss(loss, valid, class_weight, weight, reduction,
                             avg_factor)


@MODELS.register_module()
class DistanceBoundaryLoss(BaseSegLoss):
    """Boundary loss (signed distance maps) plus a scheduled region loss.

    ``L = (1 - b(t)) L_R + b(t) L_B`` (``rebalance=True``) or
    ``L_R + b(t) L_B``, with ``L_B`` = :func:`boundary_loss` of the
    probabilities (sigmoid per class for ``'multilabel'``, softmax for
    ``'multiclass'``) and the signed distance maps, ``L_R`` the
    ``region_loss`` (any loss of this package or MMSeg, called as MMSeg
    calls a loss) and ``b(t)`` = :func:`boundary_weight_at` of ``schedule``
    at the iteration set by :class:`LossScheduleHook`. Ignored entries count
    nowhere; empty classes have ``phi = 0`` (no boundary term).

    The distance maps come as the forward's ``dist_map`` (``(N, C, H, W)``,
    from :class:`GenerateDistanceMaps` through :class:`MultiLabelHead`);
    when none is given they are computed from the labels on the host
    (:func:`~mmseg_ext.utils.distance_maps.signed_distance_maps`, with
    ``max_distance``), e.g. under a softmax MMSeg decode head.

    Setting ``class_weight`` (e.g. :class:`ClassWeightHook`) sets it on the
    region loss too. Kervadec et al. leave the background out of the
    softmax boundary term: give it ``class_weight`` 0.

    Args:
        mode (str): ``'multilabel'`` (``(N, C, H, W)`` uint8 targets) or
            ``'multiclass'`` (``(N, H, W)`` class indices).
            Defaults to 'multilabel'.
        region_loss (dict, optional): Config of ``L_R``. Defaults to None
            (the loss is ``b(t) L_B`` alone).
        schedule (dict): See :func:`check_schedule`. Defaults to
            ``dict(type='linear', begin=0, end=20000, start=0.01,
            stop=0.99)``.
        rebalance (bool): ``(1 - b) L_R`` instead of ``L_R``.
            Defaults to True.
        max_distance (float, optional): Clip of the maps the loss computes
            itself. Defaults to None (exact).
        class_weight, reduction, loss_weight, ignore_index: As
            :class:`~.base.BaseSegLoss`.
        loss_name (str): Defaults to 'loss_boundary'.

    Returns:
        Tensor: float32 loss times ``loss_weight``.

    Raises:
        ValueError: On a bad ``mode``, ``schedule`` or ``max_distance``;
            at forward, a ``dist_map`` of the wrong shape
            (:class:`LossInputError`).

    Examples:
        >>> loss_decode = [
        ...     dict(type='MultiLabelBCELoss', loss_weight=1.0),
        ...     dict(type='DistanceBoundaryLoss', mode='multilabel',
        ...          region_loss=dict(type='SoftDiceLoss',
        ...                           mode='multilabel'),
        ...          schedule=dict(type='linear', begin=0, end=20000,
        ...                        start=0.01, stop=0.5))]
        >>> custom_hooks = [dict(type='LossScheduleHook')]
    """

    _repr_keys = ('mode', 'schedule', 'rebalance', 'max_distance',
                  'iteration')
    #: :class:`MultiLabelHead` passes ``gt_dist_map`` as ``dist_map``.
    uses_dist_map = True

    def __init__(self,
                 mode: str = 'multilabel',
                 region_loss: Optional[dict] = None,
                 schedule: dict = dict(
                     type='linear', begin=0, end=20000, start=0.01,
                     stop=0.99),
                 rebalance: bool = True,
                 max_distance: Optional[float] = None,
                 class_weight: ClassWeight = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 loss_name: str = 'loss_boundary') -> None:
        super().__init__(class_weight, reduction, loss_weight, ignore_index,
                         loss_name)
        if mode not in ('multilabel', 'multiclass'):
            raise ValueError("`mode` should be 'multilabel' or 'multiclass'"
                             f', but got {mode!r}')
        if max_distance is not None and (
                isinstance(max_distance, bool)
                or not isinstance(max_distance, Number)
                or not 0 < max_distance < math.inf):
            raise ValueError('`max_distance` should be None or a finite '
                             f'number > 0, but got {max_distance!r}')
        self.mode = mode
        self.schedule = check_schedule(schedule)
        self.rebalance = bool(rebalance)
        self.max_distance = max_distance
        self.iteration = 0
        self._dist_map: Optional[torch.Tensor] = None
        self.region_loss = None if region_loss is None else \
            MODELS.build(region_loss)
        if self.class_weight is not None:
            self.class_weight = self.class_weight  # to the region loss

    @property
    def class_weight(self):
        """list[float] | None: Per-class weights (also the region loss's
        when set)."""
        return self._class_weight

    @class_weight.setter
    def class_weight(self, value: ClassWeight) -> None:
        self._class_weight = normalize_class_weight(value)
        region = self.__dict__.get('_modules', {}).get('region_loss')
        if region is not None and hasattr(region, 'class_weight'):
            region.class_weight = self._class_weight

    def set_iteration(self, iteration: int) -> None:
        """Set the training iteration the schedule reads (0-based)."""
        self.iteration = int(iteration)

    @property
    def boundary_weight(self) -> float:
        """``b`` at the current iteration."""
        return boundary_weight_at(self.schedule, self.iteration)

    def forward(self,
                seg_logits: torch.Tensor,
                seg_label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                ignore_index: Optional[int] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                dist_map: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        """MMSeg's loss call plus the optional ``(N, C, H, W)``
        ``dist_map``."""
        self._dist_map = dist_map
        try:
            return super().forward(seg_logits, seg_label, weight,
                                   ignore_index, avg_factor,
                                   reduction_override, **kwargs)
        finally:
            self._dist_map = None

    def distance_maps(self, target: torch.Tensor, valid: torch.Tensor,
                      num_classes: int) -> torch.Tensor:
        """``(N, C, H, W)`` maps of masked targets, computed on the host."""
        if self.mode == 'multilabel':
            masks = target.detach().cpu().numpy().astype(bool)
            valid_np = None if valid is None else valid.cpu().numpy()
        else:
            label = target.detach().cpu().numpy()
            masks = label[:, None] == np.arange(num_classes).reshape(
                1, -1, 1, 1)
            valid_np = None if valid is None else valid.cpu().numpy()
        maps = [
            signed_distance_maps(
                masks[i], None if valid_np is None else valid_np[i],
                self.max_distance, dtype=np.float32)
            for i in range(masks.shape[0])
        ]
        return torch.from_numpy(np.stack(maps)).to(target.device)

    def compute(self, seg_logits: torch.Tensor, seg_label: torch.Tensor,
                args: LossArgs) -> torch.Tensor:
        """The scheduled sum of the region and boundary losses."""
        b = self.boundary_weight
        if self.mode == 'multilabel':
            logits, target, valid, weight = prepare_binary_targets(
                seg_logits, seg_label, args.ignore_index, args.weight,
                args.check)
            probs = logits.sigmoid()
            entry_valid = valid
        else:
            logits, target, valid, weight = prepare_class_labels(
                seg_logits, seg_label, args.ignore_index, args.weight,
                args.check)
            probs = logits.softmax(dim=1)
            entry_valid = None if valid is None else valid.unsqueeze(1)
            weight = None if weight is None else weight.unsqueeze(1)
        dist = self._dist_map
        if dist is None:
            dist = self.distance_maps(target, valid, probs.shape[1])
        elif dist.shape != probs.shape:
            raise LossInputError(
                f'`dist_map` should have the shape {tuple(probs.shape)} of '
                f'the logits (N, C, H, W), but got {tuple(dist.shape)}')
        boundary = boundary_loss(probs, dist, entry_valid, args.class_weight,
                                 weight, args.reduction, args.avg_factor)
        if self.region_loss is None:
            return b * boundary
        region = self.region_loss(
            seg_logits, seg_label, weight=args.weight,
            ignore_index=args.ignore_index)
        region_weight = 1.0 - b if self.rebalance else 1.0
        return region_weight * region + b * boundary
