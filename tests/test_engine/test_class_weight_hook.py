# Copyright (c) mmseg_ext contributors. All rights reserved.
"""ClassWeightHook, the pixel counters and the class_weights tool."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch.nn as nn
from mmengine.dataset import ConcatDataset, RepeatDataset
from mmengine.model import BaseModule
from mmengine.runner import Runner
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS, HOOKS, MODELS, TASK_UTILS
from PIL import Image

from mmseg_ext.engine.hooks import (ClassWeightHook, LabelMapPixelCounter,
                                    PixelCounter, count_dataset_pixels,
                                    iter_head_losses, read_label_map)

# ----------------------------------------------------------------------------
# pixel counters
# ----------------------------------------------------------------------------


def build_dataset(root, **kwargs):
    return DATASETS.build(
        dict(
            type='SyntheticImbalanceDataset',
            data_root=root,
            data_prefix=dict(
                img_path='img_dir/train', seg_map_path='ann_dir/train'),
            pipeline=[],
            **kwargs))


def naive_counts(dataset):
    """The reference: mmseg's LoadAnnotations, then np.bincount."""
    load = LoadAnnotations()
    num_classes = len(dataset.metainfo['classes'])
    counts = np.zeros(num_classes, np.int64)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        info['seg_fields'] = []
        seg = load(info)['gt_seg_map']
        counts += np.bincount(seg[seg < num_classes], minlength=num_classes)
    return counts


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(reduce_zero_label=True),
    dict(metainfo=dict(classes=('background', 'road'))),  # label_map
])
@pytest.mark.parametrize('num_workers', [0, 2])
def test_counts_match_mmseg_loader(toy_data_root, kwargs, num_workers):
    dataset = build_dataset(toy_data_root, **kwargs)
    counts, info = count_dataset_pixels(
        dataset, num_workers=num_workers, show_progress=False)
    assert counts.dtype == np.int64
    assert counts.tolist() == naive_counts(dataset).tolist()
    assert info['num_items'] == 8 and not info['cache_hit']


def test_counts_match_bincount_of_files(toy_data_root):
    dataset = build_dataset(toy_data_root)
    expected = np.zeros(4, np.int64)
    folder = osp.join(toy_data_root, 'ann_dir', 'train')
    for name in sorted(os.listdir(folder)):
        label = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
        expected += np.bincount(label.ravel(), minlength=4)
    counts, _ = count_dataset_pixels(dataset, show_progress=True)
    assert counts.tolist() == expected.tolist()
    # wrappers: each label file counted once
    concat = ConcatDataset([dataset, build_dataset(toy_data_root)])
    counts2, info = count_dataset_pixels(concat, num_workers=0)
    assert counts2.tolist() == (2 * expected).tolist()
    assert info['num_items'] == 16
    counts3, info = count_dataset_pixels(
        RepeatDataset(dataset, times=3), num_workers=0)
    assert counts3.tolist() == expected.tolist()


def test_read_label_map_formats_and_errors(tmp_path):
    label = np.array([[0, 1], [2, 255]], np.uint8)
    pal = Image.fromarray(label, mode='P')
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] * 85 + [1, 2, 3])
    pal.save(tmp_path / 'pal.png')  # cv2 would expand it to BGR
    assert read_label_map(str(tmp_path / 'pal.png')).tolist() == \
        label.tolist()
    cv2.imwrite(str(tmp_path / 'l16.png'), label.astype(np.uint16) + 256)
    assert read_label_map(str(tmp_path / 'l16.png')).tolist() == \
        label.tolist()  # uint8 cast, like mmseg's loader
    cv2.imwrite(str(tmp_path / 'rgb.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='rgb.png.*single-channel'):
        read_label_map(str(tmp_path / 'rgb.png'))
    (tmp_path / 'bad.png').write_bytes(b'not an image')
    with pytest.raises(ValueError, match='bad.png'):
        read_label_map(str(tmp_path / 'bad.png'))
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_label_map(str(tmp_path / 'missing.png'))


@pytest.fixture
def data_copy(toy_data_root, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(toy_data_root, root)
    return str(root)


def test_fingerprint_changes_and_cache(data_copy, tmp_path):
    dataset = build_dataset(data_copy)
    cache = str(tmp_path / 'cache')
    counts, info = count_dataset_pixels(dataset, num_workers=0,
                                        cache_dir=cache)
    assert osp.isfile(info['cache']) and not info['cache_hit']

    class Exploding(LabelMapPixelCounter):

        def count(self, item):
            raise AssertionError('counted despite the cache')

        def settings(self):  # same cache key as the default counter
            return dict(super().settings(), type='LabelMapPixelCounter')

    counts2, info2 = count_dataset_pixels(
        dataset, counter=Exploding(), num_workers=0, cache_dir=cache)
    assert info2['cache_hit'] and info2['fingerprint'] == info['fingerprint']
    assert counts2.tolist() == counts.tolist()

    # other settings, other key
    _, info3 = count_dataset_pixels(
        build_dataset(data_copy, reduce_zero_label=True), num_workers=0)
    assert info3['fingerprint'] != info['fingerprint']

    # rewrite one label file: new fingerprint, recount
    path = dataset.get_data_info(0)['seg_map_path']
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    label[:4, :4] = 3
    cv2.imwrite(path, label)
    counts4, info4 = count_dataset_pixels(
        build_dataset(data_copy), num_workers=0, cache_dir=cache)
    assert info4['fingerprint'] != info['fingerprint']
    assert not info4['cache_hit']
    assert counts4[3] > counts[3]

    os.remove(path)
    with pytest.raises(FileNotFoundError, match=osp.basename(path)):
        count_dataset_pixels(build_dataset(data_copy), num_workers=0)


@TASK_UTILS.register_module()
class _ConstantTestCounter(PixelCounter):
    """Counts (1, 2, 3, 4) per item: stands in for an RLE/polygon counter."""

    def items(self, dataset):
        return list(range(len(dataset)))

    def fingerprint(self, items):
        return f'{len(items)}'

    def count(self, item):
        return np.arange(1, self.num_classes + 1, dtype=np.int64)


def test_dataset_names_its_counter(toy_data_root):
    dataset = build_dataset(toy_data_root)
    dataset.pixel_counter = dict(type='_ConstantTestCounter')
    counts, info = count_dataset_pixels(dataset, num_workers=2,
                                        show_progress=False)
    assert counts.tolist() == [8, 16, 24, 32]
    assert info['counters'][0]['type'] == '_ConstantTestCounter'
    # get_pixel_counter() wins over the attribute; the override over both
    dataset.get_pixel_counter = lambda: LabelMapPixelCounter()
    counts, _ = count_dataset_pixels(dataset, num_workers=0)
    assert counts.tolist() == naive_counts(dataset).tolist()
    counts, _ = count_dataset_pixels(
        dataset, counter=dict(type='_ConstantTestCounter'), num_workers=0)
    assert counts.tolist() == [8, 16, 24, 32]
    with pytest.raises(TypeError, match='PixelCounter'):
        count_dataset_pixels(dataset, counter=42)


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
