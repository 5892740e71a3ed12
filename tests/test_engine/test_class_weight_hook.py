# Copyright (c) mmseg_ext contributors. All rights reserved.
"""ClassWeightHook and the class_weights tool (the pixel counters:
tests/test_datasets/test_pixel_counters/)."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.runner import Runner
from mmseg.registry import HOOKS, MODELS, TASK_UTILS

from mmseg_ext.datasets.pixel_counters import LabelMapPixelCounter
from mmseg_ext.engine.hooks import ClassWeightHook, iter_head_losses


# ----------------------------------------------------------------------------
# ClassWeightHook in a Runner
# ----------------------------------------------------------------------------


@MODELS.register_module()
class _TinyStubBackbone(BaseModule):
    """A 1x1 conv at 1/4 resolution: the smallest backbone for a smoke run."""

    def __init__(self, channels=8):
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.conv = nn.Conv2d(3, channels, 1)

    def forward(self, x):
        return (self.conv(self.pool(x)), )


def head(loss_decode, **kwargs):
    return dict(
        type='FCNHead', in_channels=8, channels=8, num_convs=1,
        concat_input=False, num_classes=4, in_index=0, dropout_ratio=0,
        loss_decode=loss_decode, **kwargs)


def expected_weights(data_root, method, **kwargs):
    """Hand reference: np.bincount over the training label files."""
    counts = np.zeros(4, np.int64)
    folder = osp.join(data_root, 'ann_dir', 'train')
    for name in sorted(os.listdir(folder)):
        label = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
        counts += np.bincount(label.ravel(), minlength=4)
    freq = counts / counts.sum()
    if method == 'median_freq':
        w = np.median(freq) / freq
    else:  # inverse_freq
        w = counts.sum() / (4 * counts)
    return counts, w / w.mean()


def make_runner(data_root, work_dir, max_iters=2, hook=None, **kwargs):
    hook = hook or dict(type='ClassWeightHook', method='median_freq')
    return Runner(
        model=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1],
                bgr_to_rgb=False, size=(64, 64)),
            backbone=dict(type='_TinyStubBackbone'),
            decode_head=head([
                dict(type='CrossEntropyLoss', loss_weight=1.0),
                dict(type='CrossEntropyLoss', loss_name='loss_ce2',
                     loss_weight=0.5)
            ]),
            auxiliary_head=[
                head(dict(type='CrossEntropyLoss', loss_weight=0.4)),
                head(dict(type='CrossEntropyLoss', loss_weight=0.4))
            ]),
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=2,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            dataset=dict(
                type='SyntheticImbalanceDataset',
                data_root=data_root,
                data_prefix=dict(
                    img_path='img_dir/train', seg_map_path='ann_dir/train'),
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='LoadAnnotations'),
                    dict(type='PackSegInputs')
                ])),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1),
            param_scheduler=None,
            checkpoint=None,
            sampler_seed=None),
        custom_hooks=[hook],
        default_scope='mmseg',
        log_level='WARNING',
        **kwargs)


def test_hook_in_runner_sets_every_loss(toy_data_root, tmp_path):
    work_dir = str(tmp_path / 'work')
    runner = make_runner(toy_data_root, work_dir)
    runner.train()
    counts, expected = expected_weights(toy_data_root, 'median_freq')
    losses = iter_head_losses(runner.model)
    assert len(losses) == 4  # 2 decode + 2 auxiliary heads
    for name, _, loss in losses:
        assert isinstance(loss.class_weight, list), name
        assert loss.class_weight == pytest.approx(expected.tolist()), name
    report = json.load(open(osp.join(work_dir, 'class_weights.json')))
    assert report['counts'] == counts.tolist()
    assert report['weights'] == pytest.approx(expected.tolist())
    assert report['method'] == 'median_freq'
    assert report['classes'] == ['background', 'field', 'road', 'car']
    assert osp.getsize(osp.join(work_dir, 'class_weights.png')) > 1000
    caches = [f for f in os.listdir(work_dir)
              if f.startswith('class_pixel_counts_')]
    assert len(caches) == 1
    assert runner.message_hub  # ran to the end

    hook = [h for h in runner.hooks if isinstance(h, ClassWeightHook)][0]
    assert hook.class_weights == pytest.approx(expected.tolist())

    # A second run (e.g. a resume) in the same work dir: cached counts, no
    # recount (the counter would raise), the same weights.
    runner2 = make_runner(
        toy_data_root, work_dir, max_iters=1,
        hook=dict(type='ClassWeightHook', method='median_freq',
                  counter=dict(type='_ExplodingLabelCounter')))
    runner2.train()
    for name, _, loss in iter_head_losses(runner2.model):
        assert loss.class_weight == pytest.approx(expected.tolist()), name


def test_checkpoint_meta_round_trip():
    hook = ClassWeightHook(method='median_freq')
    hook.class_weights = [0.5, 1.5]
    ckpt = dict(meta=dict())
    hook.before_save_checkpoint(None, ckpt)
    assert ckpt['meta']['class_weights']['weights'] == [0.5, 1.5]

    class _Runner:
        _resume = True

    other = ClassWeightHook(method='median_freq')
    other.after_load_checkpoint(_Runner(), ckpt)
    assert other._resumed_weights == [0.5, 1.5]
    _Runner._resume = False  # load_from (fine-tuning): recompute
    third = ClassWeightHook(method='median_freq')
    third.after_load_checkpoint(_Runner(), ckpt)
    assert third._resumed_weights is None
    _Runner._resume = True  # other parameters: recompute
    fourth = ClassWeightHook(method='inverse_freq')
    fourth.after_load_checkpoint(_Runner(), ckpt)
    assert fourth._resumed_weights is None


@TASK_UTILS.register_module()
class _ExplodingLabelCounter(LabelMapPixelCounter):
    """Same cache key as the default counter; fails if it has to count."""

    def settings(self):
        return dict(super().settings(), type='LabelMapPixelCounter')

    def count(self, item):
        raise AssertionError('counted although the cache should be used')


def test_apply_to_and_head_mismatch(toy_data_root, tmp_path):
    hook = HOOKS.build(dict(type='ClassWeightHook', apply_to=['loss_ce2'],
                            num_workers=0, save_plot=False))
    model = MODELS.build(dict(
        type='EncoderDecoder', backbone=dict(type='_TinyStubBackbone'),
        decode_head=head([dict(type='CrossEntropyLoss'),
                          dict(type='CrossEntropyLoss',
                               loss_name='loss_ce2')])))
    names = hook._apply(model, [1.0, 2.0, 3.0, 4.0])
    assert names == ['decode_head.loss_decode[1] (loss_ce2)']
    assert model.decode_head.loss_decode[0].class_weight is None
    with pytest.raises(ValueError, match='num_classes=4'):
        hook._apply(model, [1.0, 2.0])
    with pytest.warns(UserWarning, match='not used'):
        HOOKS.build(dict(type='ClassWeightHook', apply_to='loss_x'))._apply(
            model, [1.0] * 4)


@pytest.mark.parametrize('kwargs,match', [
    (dict(method='foo'), '`method`'),
    (dict(beta=1.5), '`beta`'),
    (dict(normalize='l2'), '`normalize`'),
    (dict(max_ratio=0.9), '`max_ratio`'),
    (dict(num_workers=-1), '`num_workers`'),
])
def test_hook_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassWeightHook(**kwargs)


def test_analysis_tool(toy_data_root, tmp_path, capsys):
    import importlib.util
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        '_class_weights_tool',
        osp.join(root, 'tools', 'analysis_tools', 'class_weights.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        "default_scope = 'mmseg'\n"
        "custom_imports = dict(imports=['mmseg_ext'])\n"
        'train_dataloader = dict(dataset=dict(\n'
        "    type='SyntheticImbalanceDataset', data_root='unset',\n"
        "    data_prefix=dict(img_path='img_dir/train',\n"
        "                     seg_map_path='ann_dir/train'),\n"
        '    pipeline=[]))\n')
    out = tmp_path / 'out'
    weights = tool.main([
        str(cfg), '--method', 'median_freq', '--out-dir', str(out),
        '--num-workers', '2', '--cfg-options',
        f'train_dataloader.dataset.data_root={toy_data_root}'
    ])
    _, expected = expected_weights(toy_data_root, 'median_freq')
    assert weights.tolist() == pytest.approx(expected.tolist())
    assert 'frequency' in capsys.readouterr().out
    report = json.load(open(out / 'class_weights.json'))
    assert report['weights'] == pytest.approx(expected.tolist())
    assert (out / 'class_weights.png').is_file()


@pytest.mark.parametrize('kwargs,exc,match', [
    (dict(beta='0.9'), ValueError, '`beta`'),
    (dict(max_ratio=float('nan')), ValueError, '`max_ratio`'),
    (dict(max_ratio=True), ValueError, '`max_ratio`'),
    (dict(num_workers=True), ValueError, '`num_workers`'),
    (dict(counter='PixelCounter'), TypeError, '`counter`'),
    (dict(apply_to=[]), ValueError, '`apply_to`'),
    (dict(apply_to=['loss_ce', 3]), ValueError, '`apply_to`'),
    (dict(ignore_index='255'), TypeError, '`ignore_index`'),
    (dict(use_cache='no'), TypeError, '`use_cache`'),
    (dict(save_plot=None), TypeError, '`save_plot`'),
    (dict(priority='SUPER_HIGH'), ValueError, '`priority`'),
    (dict(priority=101), ValueError, '`priority`'),
    (dict(priority=1.5), ValueError, '`priority`'),
])
def test_hook_validation_through_registry(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        HOOKS.build(dict(type='ClassWeightHook', **kwargs))


def test_hook_uses_the_shared_check(monkeypatch):
    from mmseg_ext.engine.hooks import class_weight_hook
    calls = []
    monkeypatch.setattr(class_weight_hook, 'check_class_weight_args',
                        lambda *args: calls.append(args))
    HOOKS.build(dict(type='ClassWeightHook', method='median_freq',
                     priority=10))
    assert calls == [('median_freq', 0.9999, 'mean', None)]
