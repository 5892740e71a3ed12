# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Hooks used only by the tools tests (``tests/test_tools``).

Imported through ``custom_imports`` of the test configs; the tests put
``tests/test_tools`` on ``PYTHONPATH``.
"""
import json
import os
import os.path as osp
import sys

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


def _to_list(value):
    if value is None:
        return None
    if hasattr(value, 'tolist'):
        return value.tolist()
    return [float(v) for v in value]


@HOOKS.register_module()
class KillAfterIterHook(Hook):
    """Ends the process abruptly (``os._exit(1)``), as a crash or a kill would.

    Runs after the ``CheckpointHook`` of the same iteration, so the
    checkpoint of that iteration is on disk.

    Args:
        kill_after_iter (int, optional): Number of finished iterations after
            which to exit; None never exits. Defaults to None.
    """
    priority = 'LOWEST'

    def __init__(self, kill_after_iter=None):
        self.kill_after_iter = kill_after_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.kill_after_iter is not None and \
                runner.iter + 1 == self.kill_after_iter:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)


@HOOKS.register_module()
class RecordRunHook(Hook):
    """Writes ``{work_dir}/rank{rank}_weights.json`` after training.

    The file holds the iteration training started at, the iteration it ended
    at, the world size, the sum of all parameters (equal on every rank when
    DDP synchronises the gradients) and ``class_weight`` of every loss of the
    decode head, as lists.
    """
    priority = 'LOWEST'

    def before_train(self, runner):
        self.start_iter = runner.iter

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        losses = model.decode_head.loss_decode
        losses = list(losses) if hasattr(losses, '__iter__') else [losses]
        record = dict(
            start_iter=self.start_iter,
            end_iter=runner.iter,
            world_size=runner.world_size,
            param_sum=sum(
                float(p.detach().double().sum()) for p in model.parameters()),
            class_weights=[
                _to_list(getattr(loss, 'class_weight', None))
                for loss in losses
            ])
        path = osp.join(runner.work_dir, f'rank{get_rank()}_weights.json')
        with open(path, 'w') as f:
            json.dump(record, f)
