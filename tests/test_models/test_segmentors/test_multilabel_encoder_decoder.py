# Copyright (c) mmseg_ext contributors. All rights reserved.
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_ext.models.segmentors import (MultiLabelEncoderDecoder,
                                         remove_small_components)


@MODELS.register_module(name='MLTestRampBackbone', force=True)
class RampBackbone(nn.Module):
    """Feature = image + ``scale * column index`` (not flip-equivariant)."""

    def __init__(self, scale=0.5):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        ramp = torch.arange(x.shape[-1], dtype=x.dtype) * self.scale
        return [x + ramp.view(1, 1, 1, -1)]


@MODELS.register_module(name='MLTestWindowMeanBackbone', force=True)
class WindowMeanBackbone(nn.Module):
    """Feature = mean of the whole input window at every pixel."""

    def forward(self, x):
        return [x.mean((2, 3), keepdim=True).expand_as(x).clone()]


def build(backbone, test_cfg=None, num_classes=2):
    model = MODELS.build(
        dict(
            type='MultiLabelEncoderDecoder',
            backbone=dict(type=backbone),
            decode_head=dict(
                type='MultiLabelHead',
                head=dict(
                    type='FCNHead',
                    in_channels=3,
                    channels=3,
                    num_convs=0,
                    concat_input=False,
                    dropout_ratio=0.0,
                    num_classes=num_classes)),
            test_cfg=test_cfg))
    conv = model.decode_head.head.conv_seg
    with torch.no_grad():  # logit of class c = feature channel c
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(num_classes):
            conv.weight[c, c] = 1.0
    return model.eval()


def samples(h, w, **meta):
    sample = SegDataSample()
    sample.set_metainfo(dict(ori_shape=(h, w), img_shape=(h, w), **meta))
    return [sample]


def test_whole_returns_probabilities_and_masks():
    model = build('MLTestRampBackbone')
    assert isinstance(model, MultiLabelEncoderDecoder)
    x = torch.randn(1, 3, 4, 6)
    out = model.predict(x, samples(4, 6))[0]
    ramp = torch.arange(6.) * 0.5
    expected = torch.sigmoid(x[0, :2] + ramp)
    torch.testing.assert_close(out.seg_logits.data, expected)
    assert out.seg_logits.data.dtype == torch.float32
    pred = out.pred_sem_seg.data
    assert pred.dtype == torch.uint8 and pred.shape == (2, 4, 6)
    torch.testing.assert_close(pred, (expected > 0.5).to(torch.uint8))


def test_slide_averages_window_probabilities():
    x = torch.randn(1, 3, 4, 6)
    whole = build('MLTestWindowMeanBackbone')
    slide = build(
        'MLTestWindowMeanBackbone',
        test_cfg=dict(mode='slide', crop_size=(4, 4), stride=(2, 2)))
    # Windows: columns [0, 4) and [2, 6).
    pa = torch.sigmoid(x[0, :2, :, 0:4].mean((1, 2)))
    pb = torch.sigmoid(x[0, :2, :, 2:6].mean((1, 2)))
    expected = torch.empty(2, 4, 6)
    expected[:, :, 0:2] = pa.view(2, 1, 1)
    expected[:, :, 2:4] = ((pa + pb) / 2).view(2, 1, 1)
    expected[:, :, 4:6] = pb.view(2, 1, 1)
    got = slide.predict(x, samples(4, 6))[0].seg_logits.data
    torch.testing.assert_close(got, expected)
    # Whole inference sees one window: the global mean.
    got_whole = whole.predict(x, samples(4, 6))[0].seg_logits.data
    torch.testing.assert_close(
        got_whole,
        torch.sigmoid(x[0, :2].mean((1, 2))).view(2, 1, 1).expand(2, 4, 6))


def test_slide_equals_whole_for_a_per_pixel_model():
    x = torch.randn(1, 3, 7, 9)
    whole = build('MLTestRampBackbone')
    slide = build(
        'MLTestRampBackbone',
        test_cfg=dict(mode='slide', crop_size=(4, 4), stride=(3, 3)))
    # The ramp restarts in every window, so compare a ramp-free model.
    whole.backbone.scale = slide.backbone.scale = 0.0
    torch.testing.assert_close(
        slide.predict(x, samples(7, 9))[0].seg_logits.data,
        whole.predict(x, samples(7, 9))[0].seg_logits.data)


@pytest.mark.parametrize('directions,expected_fn', [
    ('horizontal', lambda a, j, w: (torch.sigmoid(a + j) + torch.sigmoid(
        a + (w - 1 - j))) / 2),
    (['horizontal', 'vertical'], lambda a, j, w:
     (2 * torch.sigmoid(a + j) + torch.sigmoid(a + (w - 1 - j))) / 3),
])
def test_flip_averages_probabilities(directions, expected_fn):
    model = build(
        'MLTestRampBackbone',
        test_cfg=dict(mode='whole', flip=True, flip_direction=directions))
    model.backbone.scale = 1.0
    x = torch.randn(1, 3, 4, 5)
    got = model.predict(x, samples(4, 5))[0].seg_logits.data
    j = torch.arange(5.)
    expected = expected_fn(x[0, :2], j, 5)
    torch.testing.assert_close(got, expected)
    # Not the sigmoid of averaged logits.
    assert not torch.allclose(got, torch.sigmoid(x[0, :2] + 2.0))
    metas = [dict(img_shape=(4, 5), ori_shape=(4, 5))]
    torch.testing.assert_close(model.predict_probs(x, metas)[0], expected)


def test_postprocess_removes_padding_flip_and_resizes():
    model = build('MLTestRampBackbone')
    probs = torch.rand(1, 2, 6, 8)
    meta = dict(
        ori_shape=(10, 12),
        img_shape=(5, 6),
        padding_size=[0, 2, 0, 1],
        flip=True,
        flip_direction='horizontal')
    out = model.postprocess_result(probs.clone(), samples(10, 12, **{
        k: v
        for k, v in meta.items() if k not in ('ori_shape', 'img_shape')
    }))[0]
    expected = F.interpolate(
        probs[:, :, :5, :6].flip(3),
        size=(10, 12),
        mode='bilinear',
        align_corners=False)[0]
    torch.testing.assert_close(out.seg_logits.data, expected)
    assert out.pred_sem_seg.data.shape == (2, 10, 12)


@pytest.mark.parametrize('unify_flip', [True, False])
def test_postprocess_flips_unified_samples_back(unify_flip):
    """A sample flipped at load (``unify_flip``, e.g. a left hand): its
    probabilities, masks and ground truth come back in the original
    orientation; other samples are untouched."""
    from mmengine.structures import PixelData
    model = build('MLTestRampBackbone')
    probs = torch.zeros(1, 2, 3, 4)
    probs[0, 0, :, 0] = 0.9  # first model column: the unified left edge
    probs[0, 1, 1, 1] = 0.8
    batch = samples(3, 4, unify_flip=unify_flip)
    gt = torch.arange(12, dtype=torch.int16).view(1, 3, 4)
    batch[0].gt_sem_seg = PixelData(data=gt.clone())
    out = model.postprocess_result(probs.clone(), batch)[0]
    expected = probs[0].flip(-1) if unify_flip else probs[0]
    torch.testing.assert_close(out.seg_logits.data, expected)
    mask = out.pred_sem_seg.data
    col = 3 if unify_flip else 0
    assert mask[0, :, col].tolist() == [1, 1, 1] and mask[0].sum() == 3
    assert mask[1, 1, 2 if unify_flip else 1] == 1 and mask[1].sum() == 1
    expected_gt = gt.flip(-1) if unify_flip else gt
    assert torch.equal(out.gt_sem_seg.data, expected_gt)


def test_per_class_threshold_and_min_area():
    model = build(
        'MLTestRampBackbone',
        test_cfg=dict(threshold=[0.3, 0.9], min_area=[5, 0]))
    probs = torch.zeros(1, 2, 10, 10)
    probs[0, :, 0:2, 0:2] = 0.5  # 4-pixel blob
    probs[0, :, 4:9, 4:9] = 0.95  # 25-pixel blob
    out = model.postprocess_result(probs, samples(10, 10))[0]
    pred = out.pred_sem_seg.data
    # class 0 (threshold 0.3, min_area 5): the small blob is removed.
    assert pred[0, 0:2, 0:2].sum() == 0 and pred[0, 4:9, 4:9].all()
    assert pred[0].sum() == 25
    # class 1 (threshold 0.9): the 0.5 blob is below it.
    assert pred[1].sum() == 25
    # Threshold 0.3 with no min_area keeps both blobs.
    model.test_cfg.min_area = 0
    out = model.postprocess_result(probs, samples(10, 10))[0]
    assert out.pred_sem_seg.data[0].sum() == 29


def test_remove_small_components():
    mask = np.zeros((6, 6), np.uint8)
    mask[0, 0] = 1
    mask[2:5, 2:5] = 1
    mask[5, 5] = 1  # diagonal neighbour of the 3x3 block: 8-connected
    np.testing.assert_array_equal(
        remove_small_components(mask, 2).sum(), 10)
    assert remove_small_components(mask, 11).sum() == 0
    np.testing.assert_array_equal(remove_small_components(mask, 0), mask)


def test_predict_without_data_samples():
    model = build('MLTestRampBackbone', test_cfg=dict(flip=True))
    out = model.predict(torch.randn(2, 3, 4, 4))
    assert len(out) == 2 and out[0].seg_logits.data.shape == (2, 4, 4)


@pytest.mark.parametrize('test_cfg,match', [
    (dict(mode='foo'), 'mode'),
    (dict(mode='slide', crop_size=(4, 4)), 'stride'),
    (dict(flip=True, flip_direction='diagonal'), 'flip_direction'),
    (dict(threshold=[0.5]), 'threshold'),
    (dict(threshold=1.5), 'threshold'),
    (dict(min_area=-1), 'min_area'),
    (dict(min_area=[1, 2.5]), 'min_area'),
])
def test_bad_test_cfg(test_cfg, match):
    with pytest.raises(ValueError, match=match):
        build('MLTestRampBackbone', test_cfg=test_cfg)


@pytest.mark.parametrize('test_cfg,match', [
    (dict(mode='slide', crop_size=(4, 4), stride=(5, 2)), 'stride.*<='),
    (dict(mode='slide', crop_size=(4, 0), stride=(2, 2)), 'crop_size'),
    (dict(mode='slide', crop_size=(4, 4), stride=(2, 2.5)), 'stride'),
    (dict(threshold=float('nan')), 'threshold'),
    (dict(threshold=1.0), 'threshold'),
    (dict(threshold=[0.5, True]), 'threshold'),
    (dict(min_area=[1, 2, 3]), 'min_area'),
    (dict(blend='gauss'), 'blend'),
    (dict(sigma_scale=0), 'sigma_scale'),
])
def test_impossible_test_cfg(test_cfg, match):
    with pytest.raises(ValueError, match=match):
        build('MLTestRampBackbone', test_cfg=test_cfg)


def test_flip_should_be_bool():
    with pytest.raises(TypeError, match='flip'):
        build('MLTestRampBackbone', test_cfg=dict(flip='yes'))


def test_unknown_test_cfg_key_warns_with_closest():
    with pytest.warns(UserWarning, match="did you mean 'threshold'"):
        build('MLTestRampBackbone', test_cfg=dict(treshold=0.5))


def test_valid_slide_test_cfg_builds():
    model = build(
        'MLTestRampBackbone',
        test_cfg=dict(mode='slide', crop_size=(4, 4), stride=(4, 3),
                      blend='gaussian', sigma_scale=0.2, threshold=[0, 0.9],
                      min_area=[0, 3]))
    assert model.class_thresholds == [0.0, 0.9]
