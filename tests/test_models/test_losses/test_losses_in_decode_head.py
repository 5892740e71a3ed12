# Copyright (c) mmseg_ext contributors. All rights reserved.
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmseg_ext  # noqa: F401


def make_samples(n=2, h=8, w=8, num_classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        label = torch.randint(0, num_classes, (1, h, w), generator=gen)
        label[:, :2, :2] = 255
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return samples


def build_head(loss_decode, num_classes=3, **kwargs):
    return MODELS.build(
        dict(
            type='FCNHead',
            in_channels=4,
            channels=4,
            num_convs=1,
            num_classes=num_classes,
            loss_decode=loss_decode,
            **kwargs))


def test_focal_and_dice_in_fcn_head():
    head = build_head([
        dict(type='SoftmaxFocalLoss', loss_weight=1.0),
        dict(type='SoftDiceLoss', loss_weight=0.5)
    ])
    seg_logits = head([torch.randn(2, 4, 4, 4)])
    losses = head.loss_by_feat(seg_logits, make_samples())
    assert {'loss_focal_softmax', 'loss_soft_dice', 'acc_seg'} <= set(losses)
    total = losses['loss_focal_softmax'] + losses['loss_soft_dice']
    assert torch.isfinite(total)
    total.backward()
    grad = head.conv_seg.weight.grad
    assert grad is not None and torch.isfinite(grad).all()


def test_runtime_class_weight_and_head_ignore_index():
    head = build_head([
        dict(type='SoftmaxFocalLoss', ignore_index=0),
        dict(type='GeneralizedDiceLoss', ignore_index=0)
    ])
    seg_logits = head([torch.randn(2, 4, 4, 4)])
    samples = make_samples(seed=1)
    before = head.loss_by_feat(seg_logits, samples)
    # The head's ignore_index (255) wins over the losses' own (0).
    for loss in head.loss_decode:
        loss.ignore_index = 255
    same = head.loss_by_feat(seg_logits, samples)
    for key in ('loss_focal_softmax', 'loss_generalized_dice'):
        assert same[key].item() == pytest.approx(before[key].item())
    # A hook may set class weights after construction.
    head.loss_decode[0].class_weight = [1.0, 0.0, 0.0]
    weighted = head.loss_by_feat(seg_logits, samples)
    assert weighted['loss_focal_softmax'].item() != pytest.approx(
        before['loss_focal_softmax'].item())


def test_binary_head_with_one_output_channel():
    head = build_head(
        [
            dict(type='SoftDiceLoss', mode='binary'),
            dict(type='GeneralizedDiceLoss', mode='binary'),
            dict(type='MultiLabelBCELoss')
        ],
        num_classes=2,
        out_channels=1,
        threshold=0.5)
    seg_logits = head([torch.randn(2, 4, 4, 4)])
    losses = head.loss_by_feat(seg_logits, make_samples(num_classes=2))
    for key in ('loss_soft_dice', 'loss_generalized_dice', 'loss_ml_bce'):
        assert torch.isfinite(losses[key])
