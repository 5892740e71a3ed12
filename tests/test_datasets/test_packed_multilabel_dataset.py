# Copyright (c) mmseg_ext contributors. All rights reserved.
"""PackedMultiLabelDataset, and one tiny multi-label training Runner run."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmseg.registry import DATASETS, TASK_UTILS

from mmseg_ext.utils.io import imwrite_atomic
from mmseg_ext.utils.multilabel import (pack_multilabel,
                                        packed_positive_counts,
                                        unpack_multilabel, write_packed_label)

# 17 classes: K = 2 packed channels (3 in the pipeline), as hand bones.
CLASSES = tuple('abcdefghijklmnopq')


def generate(root, num_train=4, num_val=2, size=64, num_classes=17, seed=0):
    """Images with overlapping ellipses, labels as packed PNGs."""
    rng = np.random.default_rng(seed)
    for split, num in (('train', num_train), ('val', num_val)):
        for i in range(num):
            masks = np.zeros((num_classes, size, size), np.uint8)
            img = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
            for k in range(num_classes):
                center = tuple(int(v) for v in rng.integers(16, size - 16, 2))
                axes = tuple(int(v) for v in rng.integers(6, 16, 2))
                cv2.ellipse(masks[k], center, axes, 0, 0, 360, 1, -1)
                img[masks[k] == 1, k % 3] += 40
            ignore = np.zeros((size, size), bool)
            ignore[:3] = True
            imwrite_atomic(img, osp.join(root, 'img_dir', split,
                                         f'{i:03d}.png'))
            write_packed_label(
                osp.join(root, 'ann_dir', split, f'{i:03d}.png'),
                pack_multilabel(masks, ignore))
    return root


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return generate(str(tmp_path_factory.mktemp('packed_multilabel')))


def build_dataset(root, split='train', **kwargs):
    cfg = dict(
        type='PackedMultiLabelDataset',
        data_root=root,
        metainfo=dict(classes=CLASSES),
        data_prefix=dict(
            img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadMultiLabelAnnotations'),
            dict(type='PackMultiLabelSegInputs')
        ])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_dataset(data_root):
    dataset = build_dataset(data_root)
    assert len(dataset) == 4 and dataset.num_classes == 17
    info = dataset.get_data_info(0)
    assert info['num_classes'] == 17 and info['seg_fields'] == []
    item = dataset[0]
    gt = item['data_samples'].gt_sem_seg.data
    assert gt.dtype == torch.int16 and gt.shape == (2, 64, 64)
    assert item['data_samples'].metainfo['num_classes'] == 17
    unpacked = unpack_multilabel(
        gt.numpy().view(np.uint16).transpose(1, 2, 0), 17)
    assert (unpacked[:, :3] == 255).all() and unpacked[:, 3:].max() == 1
    assert dataset.get_pixel_counter() == dict(type='PackedLabelPixelCounter')


def test_pixel_counter(data_root):
    if 'PackedLabelPixelCounter' not in TASK_UTILS.module_dict:
        pytest.skip('PackedLabelPixelCounter (datasets/pixel_counters/'
                    'packed_label_pixel_counter.py) is not registered yet')
    dataset = build_dataset(data_root)
    counter = TASK_UTILS.build(dataset.get_pixel_counter())
    counter.setup(dataset)
    info = dataset.get_data_info(0)
    from mmseg_ext.utils.multilabel import read_packed_label
    expected, _ = packed_positive_counts(
        read_packed_label(info['seg_map_path'], 17), 17)
    np.testing.assert_array_equal(counter.count(info['seg_map_path']),
                                  expected)


def test_dataset_errors(data_root):
    with pytest.raises(ValueError, match='classes'):
        build_dataset(data_root, metainfo=None)
    with pytest.raises(ValueError, match='reduce_zero_label'):
        build_dataset(data_root, reduce_zero_label=True)


def tiny_cfg(data_root, work_dir):
    num_classes = len(CLASSES)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadMultiLabelAnnotations'),
        dict(type='RandomResize', scale=(64, 64), ratio_range=(0.75, 1.25),
             keep_ratio=True),
        dict(type='MultiLabelRandomCrop', crop_size=(48, 48),
             cat_max_ratio=0.9),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomRotate', prob=0.5, degree=20),
        dict(type='PackMultiLabelSegInputs')
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadMultiLabelAnnotations'),
        dict(type='PackMultiLabelSegInputs')
    ]

    def loader(split, pipeline, batch_size, sampler):
        return dict(
            batch_size=batch_size,
            num_workers=0,
            sampler=dict(type=sampler, shuffle=split == 'train'),
            dataset=dict(
                type='PackedMultiLabelDataset',
                data_root=data_root,
                metainfo=dict(classes=CLASSES),
                data_prefix=dict(
                    img_path=f'img_dir/{split}',
                    seg_map_path=f'ann_dir/{split}'),
                pipeline=pipeline))

    evaluator = dict(
        type='MultiLabelDiceMetric',
        per_class_json=osp.join(work_dir, 'val_dice.json'))
    return Config(
        dict(
            default_scope='mmseg',
            work_dir=work_dir,
            model=dict(
                type='MultiLabelEncoderDecoder',
                data_preprocessor=dict(
                    type='MultiLabelSegDataPreProcessor',
                    num_classes=num_classes,
                    mean=[123.675, 116.28, 103.53],
                    std=[58.395, 57.12, 57.375],
                    bgr_to_rgb=True,
                    size=(48, 48)),
                pretrained=None,
                backbone=dict(
                    type='MixVisionTransformer',
                    in_channels=3,
                    embed_dims=8,
                    num_stages=2,
                    num_layers=[1, 1],
                    num_heads=[1, 1],
                    patch_sizes=[7, 3],
                    strides=[4, 2],
                    sr_ratios=[4, 2],
                    out_indices=(0, 1),
                    mlp_ratio=2),
                decode_head=dict(
                    type='MultiLabelHead',
                    head=dict(
                        type='SegformerHead',
                        in_channels=[8, 8],
                        in_index=[0, 1],
                        channels=8,
                        dropout_ratio=0.0,
                        num_classes=num_classes,
                        align_corners=False)),
                auxiliary_head=dict(
                    type='MultiLabelHead',
                    head=dict(
                        type='FCNHead',
                        in_channels=8,
                        in_index=1,
                        channels=8,
                        num_convs=1,
                        concat_input=False,
                        num_classes=num_classes),
                    loss_decode=dict(
                        type='MultiLabelBCELoss', loss_weight=0.4)),
                test_cfg=dict(mode='whole', flip=True, min_area=4)),
            train_dataloader=loader('train', train_pipeline, 2,
                                    'InfiniteSampler'),
            val_dataloader=loader('val', test_pipeline, 1, 'DefaultSampler'),
            test_dataloader=loader('val', test_pipeline, 1,
                                   'DefaultSampler'),
            val_evaluator=evaluator,
            test_evaluator=evaluator,
            optim_wrapper=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01)),
            train_cfg=dict(
                type='IterBasedTrainLoop', max_iters=4, val_interval=4),
            val_cfg=dict(type='ValLoop'),
            test_cfg=dict(type='TestLoop'),
            default_hooks=dict(
                logger=dict(
                    type='LoggerHook', interval=1,
                    log_metric_by_epoch=False),
                checkpoint=dict(
                    type='CheckpointHook', by_epoch=False, interval=4)),
            log_level='WARNING',
            randomness=dict(seed=0),
            env_cfg=dict(cudnn_benchmark=False)))


def test_tiny_runner_train_val_test(data_root, tmp_path):
    work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(tiny_cfg(data_root, work_dir))
    runner.train()
    scalars = runner.message_hub.log_scalars
    for key in ('train/decode.loss_ml_bce', 'train/decode.loss_soft_dice',
                'train/decode.dice_seg', 'train/aux.loss_ml_bce'):
        assert key in scalars, key
    assert np.isfinite(scalars['train/loss'].current())
    with open(osp.join(work_dir, 'val_dice.json')) as f:
        dumped = json.load(f)
    assert dumped['classes'] == list(CLASSES) and dumped['num_images'] == 2
    assert all(0 <= v <= 1 for v in dumped['dice'])
    # Test with sliding windows (no flip): same metric keys.
    runner.model.test_cfg.update(
        mode='slide', crop_size=(48, 48), stride=(32, 32), flip=False)
    metrics = runner.test()
    assert {'mDice', 'mIoU', 'Dice.a'} <= set(metrics)
    assert 0 <= metrics['mDice'] <= 1
