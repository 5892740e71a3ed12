# Copyright (c) mmseg_ext contributors. All rights reserved.
"""GenerateDistanceMaps on packed labels: the maps of the unpacked masks,
packed as gt_dist_map, through the data preprocessor into MultiLabelHead's
DistanceBoundaryLoss (same loss as maps computed from the targets)."""
import numpy as np
import pytest
import torch
from mmseg.registry import MODELS, TRANSFORMS

from mmseg_ext.utils.distance_maps import signed_distance_maps
from mmseg_ext.datasets.transforms.multilabel_transforms import \
    pipeline_packed_map
from mmseg_ext.utils.multilabel import pack_multilabel

C = 17  # K = 2 packed channels: classes in both


def _packed(seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((C, 12, 10), bool)
    for c in range(0, C, 2):  # odd classes empty
        r, q = rng.integers(0, 8, 2)
        masks[c, r:r + 4, q:q + 3] = True
    ignore = np.zeros((12, 10), bool)
    ignore[0, :] = True
    masks[:, ignore] = False
    return masks, ignore, pipeline_packed_map(pack_multilabel(masks, ignore))


def test_maps_of_packed_labels():
    masks, ignore, packed = _packed()
    t = TRANSFORMS.build(dict(type='GenerateDistanceMaps', max_distance=4))
    out = t(dict(gt_seg_map=packed, num_classes=C))['gt_dist_map']
    assert out.shape == (C, 12, 10) and out.dtype == np.float16
    expected = signed_distance_maps(masks, ~ignore, 4)
    np.testing.assert_array_equal(out, expected)
    assert not out[:, 0].any()  # ignored row
    assert not out[1::2].any()  # empty classes
    assert out[0].min() < 0 < out[0].max()
    assert 'max_distance=4.0' in repr(t)


def test_errors():
    t = TRANSFORMS.build(dict(type='GenerateDistanceMaps'))
    with pytest.raises(ValueError, match='num_classes'):
        t(dict(gt_seg_map=np.zeros((4, 4), np.uint16)))
    with pytest.raises(ValueError, match='packed'):
        t(dict(gt_seg_map=np.zeros((4, 4), np.uint8), num_classes=3))
    with pytest.raises(ValueError, match='max_distance'):
        TRANSFORMS.build(dict(type='GenerateDistanceMaps', max_distance=-1))


def test_pipeline_maps_reach_the_loss():
    masks, ignore, packed = _packed(1)
    results = dict(gt_seg_map=packed, num_classes=C,
                   img=np.zeros((12, 10, 3), np.uint8), img_shape=(12, 10),
                   ori_shape=(12, 10))
    results = TRANSFORMS.build(dict(type='GenerateDistanceMaps'))(results)
    packed_inputs = TRANSFORMS.build(
        dict(type='PackMultiLabelSegInputs', num_classes=C))(results)
    sample = packed_inputs['data_samples']
    assert sample.gt_dist_map.shape == (12, 10)
    pre = MODELS.build(dict(type='MultiLabelSegDataPreProcessor',
                            num_classes=C, seg_pad_val=0, size=(16, 16)))
    data = pre(dict(inputs=[packed_inputs['inputs']], data_samples=[sample]),
               training=True)
    head = MODELS.build(dict(
        type='MultiLabelHead',
        head=dict(type='FCNHead', in_channels=4, channels=4, num_convs=1,
                  concat_input=False, num_classes=C),
        loss_decode=[dict(type='DistanceBoundaryLoss',
                          schedule=dict(type='constant', start=1.0))]))
    torch.manual_seed(0)
    logits = torch.randn(1, C, 16, 16)
    samples = data['data_samples']
    with_maps = head.loss_by_feat(logits, samples)['loss_boundary']
    del samples[0].gt_dist_map
    computed = head.loss_by_feat(logits, samples)['loss_boundary']
    # float16 maps: integer and sqrt distances to ~1e-3
    assert with_maps.item() == pytest.approx(computed.item(), rel=2e-3)
    assert with_maps.item() != 0
