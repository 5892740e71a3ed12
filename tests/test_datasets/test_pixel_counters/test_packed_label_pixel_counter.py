# Copyright (c) mmseg_ext contributors. All rights reserved.
"""PackedLabelPixelCounter: direct counts, the dataset path and
ClassWeightHook on hand-bone labels in a real Runner."""
import glob
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.runner import Runner
from mmseg.registry import DATASETS, TASK_UTILS

from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import (HAND_BONE_CLASSES,
                                                     generate_hand_bone)
from mmseg_ext.datasets.pixel_counters import (PackedLabelPixelCounter,
                                              count_dataset_pixels)
from mmseg_ext.utils.multilabel import (pack_multilabel, read_packed_label,
                                        unpack_multilabel, write_packed_label)

C = len(HAND_BONE_CLASSES)


@pytest.fixture(scope='module')
def hand_bone_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('hand_bone_counter'))
    generate_hand_bone(root, num_train_ids=2, num_test_ids=0, size=128,
                       seed=1)
    convert_hand_bone(root, num_folds=2, show_progress=False)
    return root


def _direct_counts(path):
    masks = unpack_multilabel(read_packed_label(path, C), C)
    return (masks == 1).sum((1, 2)).astype(np.int64)


def test_count_equals_direct_count_with_overlaps_and_ignore(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.random((3, 20, 30)) < 0.4  # overlapping classes
    ignore = np.zeros((20, 30), bool)
    ignore[:4] = True
    path = str(tmp_path / 'label.png')
    write_packed_label(path, pack_multilabel(masks, ignore))
    counter = TASK_UTILS.build(
        dict(type='PackedLabelPixelCounter', num_classes=3))
    assert isinstance(counter, PackedLabelPixelCounter)
    assert counter.parallel_backend == 'thread'
    counts = counter.count(path)
    assert counts.dtype == np.int64
    assert counts.tolist() == (masks & ~ignore).sum((1, 2)).tolist()


def test_count_needs_num_classes(tmp_path):
    with pytest.raises(RuntimeError, match='call `setup\\(dataset\\)`'):
        PackedLabelPixelCounter().count(str(tmp_path / 'x.png'))


def test_count_rejects_a_label_of_other_classes(tmp_path):
    path = str(tmp_path / 'label.png')
    write_packed_label(path, pack_multilabel(np.ones((40, 4, 4), bool)))
    counter = PackedLabelPixelCounter(num_classes=C)
    with pytest.raises(ValueError, match='was it written for another'):
        counter.count(path)


@pytest.mark.parametrize('num_workers', [0, 2])
def test_dataset_counts_equal_direct_counts(hand_bone_root, num_workers,
                                            tmp_path):
    dataset = DATASETS.build(
        dict(type='HandBoneDataset', data_root=hand_bone_root, split='all'))
    counts, info = count_dataset_pixels(
        dataset, num_workers=num_workers, cache_dir=str(tmp_path),
        show_progress=False)
    expected = sum(
        _direct_counts(p) for p in sorted(
            glob.glob(osp.join(hand_bone_root, 'train', 'packed_labels', '*',
                               '*.png'))))
    assert counts.tolist() == expected.tolist()
    assert (counts > 0).all()
    assert info['num_items'] == 4
    assert info['counters'][0]['type'] == 'PackedLabelPixelCounter'
    again, info2 = count_dataset_pixels(
        dataset, num_workers=num_workers, cache_dir=str(tmp_path),
        show_progress=False)
    assert info2['cache_hit'] and again.tolist() == counts.tolist()


def _tiny_cfg(data_root, work_dir):
    norm_cfg = dict(type='BN', requires_grad=True)
    return dict(
        default_scope='mmseg',
        custom_imports=dict(imports=['mmseg_ext'],
                            allow_failed_imports=False),
        work_dir=work_dir,
        model=dict(
            type='MultiLabelEncoderDecoder',
            data_preprocessor=dict(
                type='MultiLabelSegDataPreProcessor', num_classes=C,
                mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True, size=(64, 64), seg_pad_val=0),
            backbone=dict(
                type='MixVisionTransformer', in_channels=3, embed_dims=8,
                num_stages=4, num_layers=[1, 1, 1, 1],
                num_heads=[1, 1, 1, 1], patch_sizes=[7, 3, 3, 3],
                sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
                mlp_ratio=2),
            decode_head=dict(
                type='MultiLabelHead',
                head=dict(type='SegformerHead', in_channels=[8, 8, 8, 8],
                          in_index=[0, 1, 2, 3], channels=8,
                          num_classes=C, norm_cfg=norm_cfg),
                loss_decode=[
                    dict(type='MultiLabelBCELoss', loss_weight=1.0),
                    dict(type='SoftDiceLoss', mode='multilabel',
                         loss_weight=1.0),
                ])),
        train_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dict(
                type='HandBoneDataset', data_root=data_root, split='all',
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='LoadMultiLabelAnnotations'),
                    dict(type='Resize', scale=(64, 64)),
                    dict(type='PackMultiLabelSegInputs'),
                ])),
        optim_wrapper=dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=1),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[
            dict(type='ClassWeightHook', method='inverse_freq',
                 num_workers=2, save_plot=False)
        ],
        log_level='WARNING')


def test_class_weight_hook_counts_packed_labels(hand_bone_root, tmp_path):
    runner = Runner.from_cfg(_tiny_cfg(hand_bone_root, str(tmp_path)))
    runner.train()
    hook = next(h for h in runner.hooks
                if type(h).__name__ == 'ClassWeightHook')
    weights = np.array(hook.class_weights)
    assert weights.shape == (C, )
    with open(osp.join(str(tmp_path), 'class_weights.json')) as f:
        report = json.load(f)
    expected = sum(
        _direct_counts(p) for p in glob.glob(
            osp.join(hand_bone_root, 'train', 'packed_labels', '*', '*.png')))
    assert report['classes'] == list(HAND_BONE_CLASSES)
    assert report['counts'] == expected.tolist()
    # inverse frequency: the rarest bone gets the largest weight
    assert int(np.argmax(weights)) == int(np.argmin(expected))
    assert weights.mean() == pytest.approx(1.0)
    for loss in runner.model.decode_head.loss_decode:
        assert loss.class_weight == pytest.approx(list(weights))


def test_per_item_rows_equal_direct_counts(hand_bone_root, tmp_path):
    # RareClassSampler's per-image counts of packed labels (overlaps count
    # for every class they belong to).
    dataset = DATASETS.build(dict(type='HandBoneDataset',
                                  data_root=hand_bone_root, split='all',
                                  pipeline=[]))
    rows, info = count_dataset_pixels(dataset, num_workers=0,
                                      cache_dir=str(tmp_path),
                                      per_item=True, show_progress=False)
    expected = np.stack([
        _direct_counts(dataset.get_data_info(i)['seg_map_path'])
        for i in range(len(dataset))])
    assert rows.shape == (len(dataset), C)
    assert rows.tolist() == expected.tolist()
    assert (expected.sum(0) > 0).all()
    again, info = count_dataset_pixels(dataset, num_workers=0,
                                       cache_dir=str(tmp_path),
                                       per_item=True, show_progress=False)
    assert info['cache_hit'] and again.tolist() == expected.tolist()
