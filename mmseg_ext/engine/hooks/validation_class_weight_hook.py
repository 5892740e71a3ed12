# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Raise the loss weight of the classes that validate badly.

A hook of its own rather than a ``ClassWeightHook`` mode: that one sets
weights once from counts in ``before_train``; this one changes them after
every validation, from scores, on top of whatever weights the losses start
with (``ClassWeightHook``'s, set earlier in ``before_train``, or none).
"""
import math
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dist import broadcast_object_list, get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .class_weight_hook import iter_head_losses

__all__ = [
    'ValidationClassWeightHook', 'update_validation_multipliers',
    'find_class_dice'
]


def update_validation_multipliers(multipliers: Sequence[float],
                                  dice: Sequence[float],
                                  gamma: float = 1.0,
                                  momentum: float = 0.5,
                                  bounds: Sequence[float] = (0.5, 4.0),
                                  eps: float = 0.02) -> np.ndarray:
    """One update of the per-class weight multipliers from validation Dice.

    With the error ``e_c = 1 - d_c`` of each scored class (``d_c`` not NaN)
    and ``g_c = ((e_c + eps) / (mean_scored(e) + eps)) ** gamma``::

        m_c <- clip((1 - momentum) * m_c + momentum * m_c * g_c, lo, hi)

    a class worse than the average (``g_c > 1``) gains weight, a better one
    loses some, multiplicatively and smoothed by ``momentum`` (an EMA of
    the target ``m_c * g_c``), bounded to ``[lo, hi]``. Unscored classes
    (NaN) keep their multiplier.

    Args:
        multipliers (Sequence[float]): ``(C,)`` current ``m``.
        dice (Sequence[float]): ``(C,)`` validation Dice in ``[0, 1]``
            (NaN: not scored).
        gamma (float): Strength. Defaults to 1.
        momentum (float): EMA weight of the new target, in ``(0, 1]``.
            Defaults to 0.5.
        bounds (Sequence[float]): ``(lo, hi)``. Defaults to (0.5, 4).
        eps (float): Keeps a perfect class's weight finite and damps the
            ratio when every class is near perfect. Defaults to 0.02.

    Returns:
        np.ndarray: ``(C,)`` float64 new multipliers.

    Examples:
        >>> update_validation_multipliers([1, 1], [0.9, 0.5], 1, 1, (0, 9), 0)
        array([0.33333333, 1.66666667])
    """
    m = np.asarray(multipliers, dtype=np.float64)
    d = np.asarray(dice, dtype=np.float64)
    scored = ~np.isnan(d)
    if not scored.any():
        return m.copy()
    err = np.clip(1.0 - d, 0.0, 1.0)
    mean_err = err[scored].mean()
    g = np.ones_like(m)
    g[scored] = ((err[scored] + eps) / (mean_err + eps))**gamma
    new = (1.0 - momentum) * m + momentum * m * g
    return np.where(scored, np.clip(new, bounds[0], bounds[1]), m)


def find_class_dice(metrics: Dict[str, float],
                    class_names: Sequence[str]) -> Optional[np.ndarray]:
    """Per-class Dice (fractions) in an evaluator's metrics, or None.

    Reads the ``Dice.{class}`` keys of ``MultiLabelDiceMetric`` (any
    evaluator prefix, ``'prefix/Dice.{class}'``). Values above 1 are taken
    as percent.
    """
    out = np.full(len(class_names), np.nan)
    found = False
    for key, value in metrics.items():
        leaf = key.rsplit('/', 1)[-1]
        if not leaf.startswith('Dice.'):
            continue
        name = leaf[len('Dice.'):]
        if name in class_names:
            out[list(class_names).index(name)] = float(value)
            found = True
    if not found:
        return None
    if np.nanmax(out) > 1.0:
        out = out / 100.0
    return out


@HOOKS.register_module()
class ValidationClassWeightHook(Hook):
    """After each validation, raise the loss weight of low-Dice classes.

    The weights set on the losses are ``base_c * m_c``: ``base`` is the
    ``class_weight`` each loss has in ``before_train`` (e.g. from
    ``ClassWeightHook``, which runs first; ones when None) and the
    multipliers ``m`` (all 1 at the start) follow
    :func:`update_validation_multipliers` after every validation (bounded
    to ``bounds``, smoothed by ``momentum``). Set on every loss of the
    decode and auxiliary heads with a ``class_weight`` attribute (or those
    named in ``apply_to``), as ``ClassWeightHook`` does. Each update is
    logged as a table (class, val Dice, multiplier, weight) and the
    multipliers as scalars ``val_class_weight/{class}``; they are saved in
    the checkpoint's ``meta`` and restored on resume.

    Where the per-class Dice comes from, in order:

    1. ``Dice.{class}`` keys of the returned metrics
       (``MultiLabelDiceMetric``);
    2. the ``per_class_json`` file of a validation metric
       (``PerClassIoUMetric(per_class_json=...)``, the ``dice`` list;
       mmseg's ``IoUMetric`` returns no per-class values), read on rank 0
       and broadcast.

    Two-stage recipe: train stage 1 without it, then a second short stage
    resuming the same work dir with this hook and a validation interval
    (``configs/unet/unet-s5-d16_fcn_1xb8-300-stage2_synthimb-128x128.py``).

    Args:
        gamma (float): Update strength. Defaults to 1.
        momentum (float): EMA weight in ``(0, 1]``. Defaults to 0.5.
        bounds (Sequence[float]): ``(lo, hi)`` of the multipliers,
            ``0 < lo <= 1 <= hi``. Defaults to (0.5, 4.0).
        eps (float): See :func:`update_validation_multipliers`.
            Defaults to 0.02.
        apply_to (Sequence[str], optional): ``loss_name`` s to set; None:
            all losses with ``class_weight``. Defaults to None.
        priority (int | str): Defaults to ``'LOW'`` (after
            ``ClassWeightHook``'s ``'VERY_HIGH'`` in ``before_train``, so
            its weights are the base).

    Raises:
        ValueError: on bad ``gamma``, ``momentum``, ``bounds`` or ``eps``.
        RuntimeError: after a validation without per-class Dice.

    Examples:
        >>> custom_hooks = [dict(type='ValidationClassWeightHook',
        ...                      gamma=1.0, bounds=(0.5, 4.0))]
        >>> val_evaluator = dict(type='PerClassIoUMetric',
        ...                      iou_metrics=['mDice'],
        ...                      per_class_json='work_dirs/x/val.json')
    """

    def __init__(self,
                 gamma: float = 1.0,
                 momentum: float = 0.5,
                 bounds: Sequence[float] = (0.5, 4.0),
                 eps: float = 0.02,
                 apply_to: Optional[Sequence[str]] = None,
                 priority: Union[int, str] = 'LOW') -> None:
        if not gamma > 0:
            raise ValueError(f'`gamma` should be > 0, but got {gamma!r}')
        if not 0 < momentum <= 1:
            raise ValueError('`momentum` should be in (0, 1], but got '
                             f'{momentum!r}')
        if not (len(bounds) == 2 and 0 < bounds[0] <= 1 <= bounds[1]):
            raise ValueError('`bounds` should be (lo, hi) with 0 < lo <= 1 '
                             f'<= hi, but got {bounds!r}')
        if not eps >= 0:
            raise ValueError(f'`eps` should be >= 0, but got {eps!r}')
        self.gamma = float(gamma)
        self.momentum = float(momentum)
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self.eps = float(eps)
        self.apply_to = None if apply_to is None else list(apply_to)
        self.priority = priority
        self.multipliers: Optional[np.ndarray] = None
        self.history: List[Dict] = []
        self._base: Dict[int, np.ndarray] = {}

    def _losses(self, model):
        for name, head, loss in iter_head_losses(model):
            if not hasattr(loss, 'class_weight'):
                continue
            if self.apply_to is not None and getattr(
                    loss, 'loss_name', None) not in self.apply_to:
                continue
            yield name, head, loss

    def before_train(self, runner) -> None:
        """Remember each loss's starting ``class_weight`` (the base)."""
        names = self._class_names(runner)
        for _, head, loss in self._losses(runner.model):
            base = loss.class_weight
            num = getattr(head, 'num_classes', len(names))
            self._base[id(loss)] = np.ones(num) if base is None else \
                np.asarray(base, dtype=np.float64)
        if self.multipliers is None:
            self.multipliers = np.ones(len(names))
        self._apply(runner)

    def _class_names(self, runner) -> List[str]:
        meta = getattr(runner.train_dataloader.dataset, 'metainfo', {})
        return [str(c) for c in meta.get('classes', ())]

    def _apply(self, runner) -> None:
        for _, _, loss in self._losses(runner.model):
            base = self._base.get(id(loss))
            if base is not None and len(base) == len(self.multipliers):
                loss.class_weight = (base * self.multipliers).tolist()

    def _read_dice(self, runner, metrics: Dict[str, float],
                   names: List[str]) -> np.ndarray:
        dice = find_class_dice(metrics or {}, names)
        if dice is not None:
            return dice
        payload = [None]
        if get_rank() == 0:
            from mmseg_ext.evaluation.metrics import read_per_class_json
            for metric in getattr(runner.val_evaluator, 'metrics', []):
                path = getattr(metric, 'per_class_json', None)
                if path:
                    payload = [read_per_class_json(path, keys=('dice', ))
                               ['dice'].tolist()]
                    break
        broadcast_object_list(payload, src=0)
        if payload[0] is None:
            raise RuntimeError(
                'ValidationClassWeightHook found no per-class Dice after '
                f'validation (metrics: {sorted(metrics or {})}); use '
                "val_evaluator=dict(type='PerClassIoUMetric', "
                "iou_metrics=['mDice'], per_class_json=...) or "
                'MultiLabelDiceMetric, which report per-class Dice')
        return np.asarray(payload[0], dtype=np.float64)

    def after_val_epoch(self, runner, metrics=None) -> None:
        """Update the multipliers from this validation; set the weights."""
        if self.multipliers is None:  # validation before training
            return
        names = self._class_names(runner)
        dice = self._read_dice(runner, metrics, names)
        if len(dice) != len(self.multipliers):
            raise RuntimeError(
                f'ValidationClassWeightHook got {len(dice)} per-class Dice '
                f'values for {len(self.multipliers)} classes')
        self.multipliers = update_validation_multipliers(
            self.multipliers, dice, self.gamma, self.momentum, self.bounds,
            self.eps)
        self._apply(runner)
        self.history.append(
            dict(iter=runner.iter, dice=[_finite(v) for v in dice],
                 multipliers=self.multipliers.tolist()))
        rows = [f'| {"class":<16s} | {"val Dice":>8s} | {"multiplier":>10s} |']
        for name, d, m in zip(names, dice, self.multipliers):
            rows.append(f'| {name:<16s} | {d:8.4f} | {m:10.4f} |')
            runner.message_hub.update_scalar(f'val_class_weight/{name}',
                                             float(m))
        runner.logger.info('ValidationClassWeightHook class weight '
                           f'multipliers at iter {runner.iter}:\n' +
                           '\n'.join(rows))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the multipliers in ``meta['validation_class_weights']``."""
        if self.multipliers is not None:
            checkpoint.setdefault('meta', {})['validation_class_weights'] = \
                dict(multipliers=self.multipliers.tolist(),
                     history=self.history)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume, continue from the checkpoint's multipliers."""
        saved = checkpoint.get('meta', {}).get('validation_class_weights')
        if saved and getattr(runner, '_resume', False):
            self.multipliers = np.asarray(saved['multipliers'], np.float64)
            self.history = list(saved.get('history', []))


def _finite(value: float) -> Optional[float]:
    return None if math.isnan(value) else float(value)
