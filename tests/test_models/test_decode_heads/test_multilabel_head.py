# Copyright (c) mmseg_ext contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_ext.engine.hooks import iter_head_losses
from mmseg_ext.models.decode_heads import MultiLabelHead, multilabel_dice

FCN = dict(
    type='FCNHead',
    in_channels=4,
    channels=4,
    num_convs=1,
    concat_input=False,
    dropout_ratio=0.0)
SEGFORMER = dict(
    type='SegformerHead',
    in_channels=[4, 4],
    in_index=[0, 1],
    channels=4,
    dropout_ratio=0.0)


def make_samples(n=2, c=3, h=8, w=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        gt = torch.randint(0, 2, (c, h, w), generator=gen).to(torch.uint8)
        gt[:, :2, :2] = 255
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=gt)
        samples.append(sample)
    return samples


def build(head=FCN, **kwargs):
    cfg = dict(type='MultiLabelHead', head=dict(head, num_classes=3))
    cfg.update(kwargs)
    return MODELS.build(cfg)


@pytest.mark.parametrize('inner,feats', [
    (FCN, lambda: [torch.randn(2, 4, 4, 4)]),
    (SEGFORMER, lambda: [torch.randn(2, 4, 4, 4),
                         torch.randn(2, 4, 2, 2)]),
])
def test_loss_keys_and_grads(inner, feats):
    head = build(inner)
    assert isinstance(head, MultiLabelHead)
    assert head.num_classes == head.out_channels == 3
    assert head.head.out_channels == 3 and head.threshold == 0.5
    assert len(head.head.loss_decode) == 0  # inner losses unused
    logits = head(feats())
    assert logits.shape[:2] == (2, 3)
    losses = head.loss_by_feat(logits, make_samples())
    assert set(losses) == {'loss_ml_bce', 'loss_soft_dice', 'dice_seg'}
    total = losses['loss_ml_bce'] + losses['loss_soft_dice']
    assert torch.isfinite(total)
    total.backward()
    for p in head.parameters():
        if p.requires_grad and p.grad is not None:
            assert torch.isfinite(p.grad).all()
    assert head.head.conv_seg.weight.grad.abs().sum() > 0
    assert 0 <= losses['dice_seg'].item() <= 1


def test_losses_equal_direct_calls_on_resized_logits():
    head = build(loss_decode=[
        dict(type='MultiLabelBCELoss', loss_weight=1.0),
        dict(type='MultiLabelBCELoss', loss_weight=2.0)
    ])
    logits = torch.randn(2, 3, 4, 4)
    samples = make_samples()
    losses = head.loss_by_feat(logits, samples)
    # Same loss_name: summed, as in MMSeg (1 + 2 = 3 times one BCE).
    big = nn.functional.interpolate(
        logits, size=(8, 8), mode='bilinear', align_corners=False)
    target = torch.stack([s.gt_sem_seg.data for s in samples])
    single = head.loss_decode[0](big, target, ignore_index=255)
    assert losses['loss_ml_bce'].item() == pytest.approx(3 * single.item())


def test_multilabel_dice_hand_values():
    # class 0: pred {0, 1}, gt {1, 2} -> (2 * 1 + eps) / (4 + eps)
    # class 1: both empty -> 1; pixel 3 ignored in class 0.
    logits = torch.full((1, 2, 1, 4), -10.)
    logits[0, 0, 0, :2] = 10.
    logits[0, 0, 0, 3] = 10.  # ignored, not counted
    target = torch.tensor([[[[0, 1, 1, 255]], [[0, 0, 0, 0]]]],
                          dtype=torch.uint8)
    eps = 1e-4
    expected = ((2 + eps) / (4 + eps) + 1) / 2
    assert multilabel_dice(logits, target).item() == pytest.approx(expected)
    # Perfect prediction: 1.
    perfect = torch.where(target == 1, 10., -10.)
    assert multilabel_dice(perfect, target).item() == pytest.approx(1.0)


def test_binary_head():
    head = MODELS.build(
        dict(type='MultiLabelHead', head=dict(FCN), num_classes=1,
             threshold=0.4))
    assert head.out_channels == 1 and head.head.threshold == 0.4
    losses = head.loss_by_feat(
        head([torch.randn(2, 4, 4, 4)]), make_samples(c=1))
    assert torch.isfinite(losses['loss_ml_bce'])


def test_predict_resizes_like_inner_head():
    head = build()
    feats = [torch.randn(1, 4, 4, 4)]
    out = head.predict(feats, [dict(img_shape=(8, 8), pad_shape=(8, 8))],
                       None)
    assert out.shape == (1, 3, 8, 8)


def test_in_encoder_decoder_with_aux_heads_and_class_weight_hook():
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(
                type='ResNetV1c',
                depth=18,
                num_stages=2,
                out_indices=(0, 1),
                dilations=(1, 1),
                strides=(1, 2),
                stem_channels=8,
                base_channels=4),
            decode_head=dict(
                type='MultiLabelHead',
                head=dict(
                    type='FCNHead',
                    in_channels=8,
                    in_index=1,
                    channels=4,
                    num_convs=1,
                    num_classes=3)),
            auxiliary_head=[
                dict(
                    type='MultiLabelHead',
                    head=dict(
                        type='FCNHead',
                        in_channels=4,
                        in_index=0,
                        channels=4,
                        num_convs=1,
                        num_classes=3),
                    loss_decode=dict(
                        type='MultiLabelBCELoss', loss_weight=0.4)),
                dict(
                    type='MultiLabelHead',
                    head=dict(
                        type='FCNHead',
                        in_channels=8,
                        in_index=1,
                        channels=4,
                        num_convs=1,
                        num_classes=3),
                    loss_decode=dict(
                        type='SoftDiceLoss',
                        mode='multilabel',
                        loss_weight=0.4))
            ]))
    assert model.num_classes == model.out_channels == 3
    losses = model.loss(torch.randn(2, 3, 16, 16), make_samples(h=16, w=16))
    assert {
        'decode.loss_ml_bce', 'decode.loss_soft_dice', 'decode.dice_seg',
        'aux_0.loss_ml_bce', 'aux_1.loss_soft_dice'
    } <= set(losses)
    found = [(name, type(loss).__name__)
             for name, _, loss in iter_head_losses(model)]
    assert found == [
        ('decode_head.loss_decode[0]', 'MultiLabelBCELoss'),
        ('decode_head.loss_decode[1]', 'SoftDiceLoss'),
        ('auxiliary_head[0].loss_decode', 'MultiLabelBCELoss'),
        ('auxiliary_head[1].loss_decode', 'SoftDiceLoss'),
    ]
    assert all(head.num_classes == 3
               for _, head, _ in iter_head_losses(model))


@pytest.mark.parametrize('kwargs,match', [
    (dict(head=dict(FCN)), 'num_classes'),
    (dict(head=dict(FCN, num_classes=3), num_classes=4), 'should match'),
    (dict(head=dict(FCN, num_classes=3), threshold=1.0), 'threshold'),
    (dict(head='FCNHead', num_classes=3), 'head'),
    (dict(head=dict(FCN, num_classes=3), loss_decode=[]), 'loss_decode'),
    (dict(head=dict(FCN, num_classes=3, sampler=dict(type='OHEMPixelSampler'))
          ), 'sampler'),
])
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='MultiLabelHead', **kwargs))


def test_rejects_packed_or_index_targets():
    head = build()
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match='MultiLabelSegDataPreProcessor'):
        head.loss_by_feat(torch.randn(1, 3, 4, 4), [sample])
