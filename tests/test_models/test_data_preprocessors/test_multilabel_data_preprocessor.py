# Copyright (c) mmseg_ext contributors. All rights reserved.
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_ext.datasets.transforms import (PackMultiLabelSegInputs,
                                           pipeline_packed_map)
from mmseg_ext.utils.multilabel import pack_multilabel, unpack_multilabel


def make_masks(num_classes, h, w, seed):
    rng = np.random.default_rng(seed)
    masks = rng.random((num_classes, h, w)) < 0.3
    ignore = np.zeros((h, w), bool)
    ignore[0, 0] = True
    return masks, ignore


def packed_sample(num_classes, h, w, seed, pipeline=False):
    masks, ignore = make_masks(num_classes, h, w, seed)
    packed = pack_multilabel(masks, ignore)
    if pipeline:
        packed = pipeline_packed_map(packed)
    pack = PackMultiLabelSegInputs()
    out = pack(
        dict(
            img=np.zeros((h, w, 3), np.uint8),
            gt_seg_map=packed,
            img_shape=(h, w),
            ori_shape=(h, w)))
    expected = unpack_multilabel(pack_multilabel(masks, ignore), num_classes)
    return out['inputs'], out['data_samples'], expected


def build(**kwargs):
    cfg = dict(type='MultiLabelSegDataPreProcessor', num_classes=29)
    cfg.update(kwargs)
    return MODELS.build(cfg)


@pytest.mark.parametrize('seg_pad_val', [0, 255])
def test_training_pads_then_unpacks(seg_pad_val):
    pre = build(size=(8, 10), seg_pad_val=seg_pad_val)
    a = packed_sample(29, 6, 7, 0)
    b = packed_sample(29, 8, 10, 1, pipeline=True)  # (3, H, W) for K = 2
    data = pre(
        dict(inputs=[a[0], b[0]], data_samples=[a[1], b[1]]), training=True)
    assert data['inputs'].shape == (2, 3, 8, 10)
    gt_a = data['data_samples'][0].gt_sem_seg.data
    gt_b = data['data_samples'][1].gt_sem_seg.data
    assert gt_a.dtype == torch.uint8 and gt_a.shape == (29, 8, 10)
    np.testing.assert_array_equal(gt_a[:, :6, :7].numpy(), a[2])
    # Padding is ignored in every class, whatever seg_pad_val (0 or 255).
    assert (gt_a[:, 6:] == 255).all() and (gt_a[:, :, 7:] == 255).all()
    np.testing.assert_array_equal(gt_b.numpy(), b[2])


def test_val_unpacks_each_size_and_is_idempotent():
    pre = build()
    a = packed_sample(29, 6, 7, 0)
    b = packed_sample(29, 6, 7, 1)
    data = pre(dict(inputs=[a[0], b[0]], data_samples=[a[1], b[1]]))
    for sample, (_, _, expected) in zip(data['data_samples'], (a, b)):
        assert sample.gt_sem_seg.data.dtype == torch.uint8
        np.testing.assert_array_equal(sample.gt_sem_seg.data.numpy(),
                                      expected)
    # A second pass leaves unpacked targets alone.
    again = pre.unpack_data_samples(data['data_samples'])
    np.testing.assert_array_equal(again[0].gt_sem_seg.data.numpy(), a[2])


@pytest.mark.parametrize('num_classes', [1, 3])
def test_small_num_classes(num_classes):
    pre = build(num_classes=num_classes)
    a = packed_sample(num_classes, 5, 4, 2)
    data = pre(dict(inputs=[a[0]], data_samples=[a[1]]))
    np.testing.assert_array_equal(
        data['data_samples'][0].gt_sem_seg.data.numpy(), a[2])


def test_unpacked_uint8_padding_becomes_ignored():
    pre = build(num_classes=2, size=(4, 4), seg_pad_val=0)
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.ones(2, 3, 3, dtype=torch.uint8))
    data = pre(
        dict(inputs=[torch.zeros(3, 3, 3)], data_samples=[sample]),
        training=True)
    gt = data['data_samples'][0].gt_sem_seg.data
    assert (gt[:, :3, :3] == 1).all()
    assert (gt[:, 3] == 255).all() and (gt[:, :, 3] == 255).all()


def test_rejects_unpacked_plain_labels():
    pre = build(num_classes=3)
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='int16'):
        pre(dict(inputs=[torch.zeros(3, 4, 4)], data_samples=[sample]))
    sample.gt_sem_seg = PixelData(
        data=torch.zeros(2, 4, 4, dtype=torch.int16))
    with pytest.raises(ValueError, match=r'\(1, H, W\)'):
        pre(dict(inputs=[torch.zeros(3, 4, 4)], data_samples=[sample]))
    sample.gt_sem_seg = PixelData(data=torch.zeros(2, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r'\(3, H, W\)'):
        pre(dict(inputs=[torch.zeros(3, 4, 4)], data_samples=[sample]))


@pytest.mark.parametrize(
    'kwargs,match',
    [(dict(num_classes=0), 'num_classes'),
     (dict(num_classes=3, seg_pad_val=-1), 'seg_pad_val'),
     (dict(num_classes=3, seg_pad_val=40000), 'seg_pad_val'),
     (dict(num_classes=3, ignore_index=1), 'ignore_index'),
     (dict(num_classes=3, ignore_index=300), 'ignore_index')])
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='MultiLabelSegDataPreProcessor', **kwargs))
