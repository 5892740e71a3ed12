# Copyright (c) mmseg_ext contributors. All rights reserved.
"""ValidationClassWeightHook: the update rule on scripted scores, a Runner."""
import json
import os.path as osp

import numpy as np
import pytest
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.runner import Runner
from mmseg.registry import HOOKS, MODELS

from mmseg_ext.engine.hooks import (ValidationClassWeightHook,
                                    find_class_dice, iter_head_losses,
                                    update_validation_multipliers)


def test_rule_on_a_scripted_sequence():
    """Hand-computed: m <- clip(m * (0.5 + 0.5 g), 0.5, 4), g = e / mean e.
    """
    kwargs = dict(gamma=1.0, momentum=0.5, bounds=(0.5, 4.0), eps=0.0)
    m = np.ones(3)
    # e = .1 .5 1, mean .5333: g = .1875 .9375 1.875
    m = update_validation_multipliers(m, [0.9, 0.5, 0.0], **kwargs)
    assert m == pytest.approx([0.59375, 0.96875, 1.4375])
    # e = .05 .4 .8, mean .41667: g = .12 .96 1.92; class 0 hits lo
    m = update_validation_multipliers(m, [0.95, 0.6, 0.2], **kwargs)
    assert m == pytest.approx([0.5, 0.949375, 2.09875])
    # class 0 not scored (NaN): kept; 1 and 2 equal: g = 1, unchanged
    m = update_validation_multipliers(m, [np.nan, 0.5, 0.5], **kwargs)
    assert m == pytest.approx([0.5, 0.949375, 2.09875])
    # g = 0 0 3: class 2 would be 4.1975, bounded to 4
    m = update_validation_multipliers(m, [1.0, 1.0, 0.0], **kwargs)
    assert m == pytest.approx([0.5, 0.5, 4.0])
    # gamma = 2, momentum = 1: m * g**2 directly
    m2 = update_validation_multipliers([1, 1], [0.8, 0.4], gamma=2.0,
                                       momentum=1.0, bounds=(0.1, 10),
                                       eps=0.0)
    assert m2 == pytest.approx([(0.2 / 0.4)**2, (0.6 / 0.4)**2])


def test_find_class_dice():
    names = ['a', 'b']
    assert find_class_dice({'mDice': 0.5, 'Dice.a': 0.25, 'Dice.b': 0.75},
                           names) == pytest.approx([0.25, 0.75])
    assert find_class_dice({'val/Dice.b': 40.0, 'val/Dice.a': 20.0},
                           names) == pytest.approx([0.2, 0.4])  # percent
    assert find_class_dice({'mDice': 50.0, 'mIoU': 30.0}, names) is None


@pytest.mark.parametrize('kwargs,match', [
    (dict(gamma=0), '`gamma`'), (dict(momentum=0), '`momentum`'),
    (dict(bounds=(2, 4)), '`bounds`'), (dict(eps=-1), '`eps`')])
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HOOKS.build(dict(type='ValidationClassWeightHook', **kwargs))


@MODELS.register_module()
class _VcwStubBackbone(BaseModule):

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        return (self.conv(self.pool(x)), )


def test_hook_in_runner(toy_data_root, tmp_path):
    work_dir = str(tmp_path / 'work')
    json_path = osp.join(str(tmp_path), 'val_scores.json')

    def dataset(split):
        return dict(
            type='SyntheticImbalanceDataset', data_root=toy_data_root,
            data_prefix=dict(img_path=f'img_dir/{split}',
                             seg_map_path=f'ann_dir/{split}'),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations'),
                      dict(type='PackSegInputs')])

    runner = Runner(
        model=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1],
                bgr_to_rgb=False, size=(64, 64)),
            backbone=dict(type='_VcwStubBackbone'),
            decode_head=dict(
                type='FCNHead', in_channels=8, channels=8, num_convs=1,
                concat_input=False, num_classes=4, in_index=0,
                dropout_ratio=0, loss_decode=dict(type='CrossEntropyLoss')),
            test_cfg=ConfigDict(mode='whole')),
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            dataset=dataset('train')),
        val_dataloader=dict(
            batch_size=1, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset('val')),
        val_evaluator=dict(type='PerClassIoUMetric', iou_metrics=['mDice'],
                           per_class_json=json_path),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2,
                       val_interval=1),
        val_cfg=dict(type='ValLoop'),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           param_scheduler=None, checkpoint=None),
        custom_hooks=[dict(type='ValidationClassWeightHook', momentum=1.0,
                           bounds=(0.25, 8.0))],
        default_scope='mmseg', log_level='WARNING')
    runner.train()
    hook = [h for h in runner.hooks
            if isinstance(h, ValidationClassWeightHook)][0]
    assert len(hook.history) == 2  # two validations
    last = json.load(open(json_path))['dice']
    assert hook.history[-1]['dice'] == pytest.approx(
        [np.nan if v is None else v for v in last], nan_ok=True)
    expected = np.ones(4)
    for step in hook.history:
        dice = [np.nan if v is None else v for v in step['dice']]
        expected = update_validation_multipliers(
            expected, dice, 1.0, 1.0, (0.25, 8.0), 0.02)
    assert hook.multipliers == pytest.approx(expected)
    (_, _, loss), = iter_head_losses(runner.model)
    assert loss.class_weight == pytest.approx(expected.tolist())
    assert not np.allclose(expected, 1)  # the weights did move
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    other = ValidationClassWeightHook()
    runner._resume = True
    other.after_load_checkpoint(runner, ckpt)
    assert other.multipliers == pytest.approx(expected)
