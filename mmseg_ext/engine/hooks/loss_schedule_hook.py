# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Tell iteration-scheduled losses the current training iteration."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

__all__ = ['LossScheduleHook']


@HOOKS.register_module()
class LossScheduleHook(Hook):
    """Call ``set_iteration(runner.iter)`` on every module that has it.

    Before each training iteration, every submodule of the model with a
    ``set_iteration`` method (e.g.
    :class:`~mmseg_ext.models.losses.DistanceBoundaryLoss`, whose boundary
    / region weights follow a schedule) gets the 0-based iteration about to
    run. ``runner.iter`` is restored on resume, so the schedule continues
    where it stopped.

    Args:
        priority (str | int): Hook priority. Defaults to 'NORMAL'.

    Raises:
        RuntimeError: in ``before_train`` if no module of the model has
            ``set_iteration`` (the hook would do nothing: a config
            mistake).

    Examples:
        >>> custom_hooks = [dict(type='LossScheduleHook')]
    """

    def __init__(self, priority='NORMAL') -> None:
        self.priority = priority
        self._targets = []

    @staticmethod
    def _modules(runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        return [m for m in model.modules()
                if callable(getattr(m, 'set_iteration', None))]

    def before_train(self, runner) -> None:
        """Find the scheduled modules."""
        self._targets = self._modules(runner)
        if not self._targets:
            raise RuntimeError(
                'LossScheduleHook: no module of the model has '
                '`set_iteration` (e.g. DistanceBoundaryLoss); remove the '
                'hook or add such a loss')

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        """Set ``runner.iter`` on every scheduled module."""
        for module in self._targets:
            module.set_iteration(runner.iter)
