# Copyright (c) mmseg_ext contributors. All rights reserved.
"""ProbSegTTAModel: probability averaging of augmented predictions."""
import math

import pytest
import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_ext.models.segmentors.tta import ProbSegTTAModel


@MODELS.register_module(name='TTATestIdentityBackbone', force=True)
class IdentityBackbone(nn.Module):
    """Feature = the image plus a column ramp (not flip-equivariant)."""

    def forward(self, x):
        ramp = torch.arange(x.shape[-1], dtype=x.dtype) * 0.1
        return [x + ramp.view(1, 1, 1, -1)]


def head(num_classes, **kwargs):
    return dict(
        type='FCNHead',
        in_channels=3,
        channels=3,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=num_classes,
        **kwargs)


def softmax_model():
    return dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(type='TTATestIdentityBackbone'),
        decode_head=head(3),
        test_cfg=ConfigDict(mode='whole'))  # as from a config file


def binary_model(threshold=0.35):
    return dict(
        type='EncoderDecoder',
        backbone=dict(type='TTATestIdentityBackbone'),
        decode_head=head(2, out_channels=1, threshold=threshold))


def multilabel_model(test_cfg=None):
    return dict(
        type='MultiLabelEncoderDecoder',
        backbone=dict(type='TTATestIdentityBackbone'),
        decode_head=dict(type='MultiLabelHead', head=head(2)),
        test_cfg=test_cfg)


def build_tta(module, **kwargs):
    return MODELS.build(dict(type='ProbSegTTAModel', module=module, **kwargs))


def sample(seg_logits, gt=None, **meta):
    s = SegDataSample(metainfo=dict(img_path='a.png', ori_shape=(2, 2),
                                    **meta))
    s.seg_logits = PixelData(data=torch.tensor(seg_logits))
    if gt is not None:
        s.gt_sem_seg = PixelData(data=torch.tensor(gt))
    return s


def test_detect_mode():
    assert build_tta(softmax_model()).mode == 'softmax'
    assert build_tta(binary_model()).mode == 'binary'
    assert build_tta(multilabel_model()).mode == 'multilabel'
    tta = build_tta(softmax_model())
    assert isinstance(tta, ProbSegTTAModel) and not tta.probabilities
    assert build_tta(multilabel_model()).probabilities


def test_merge_softmax_averages_probabilities():
    # Two augmentations, 3 classes, 1 x 2 pixels; logits = log(p), so the
    # softmax gives p back exactly.
    p1 = [[[0.7, 0.1]], [[0.2, 0.3]], [[0.1, 0.6]]]
    p2 = [[[0.1, 0.1]], [[0.5, 0.8]], [[0.4, 0.1]]]
    log = [[[math.log(v) for v in row] for row in ch] for ch in p1]
    log2 = [[[math.log(v) for v in row] for row in ch] for ch in p2]
    tta = build_tta(softmax_model())
    gt = [[[1, 2]]]
    merged = tta.merge_preds([[sample(log, gt), sample(log2, flip=True)]])
    assert len(merged) == 1
    probs = merged[0].seg_logits.data
    # mean: class 0 (0.4, 0.1), class 1 (0.35, 0.55), class 2 (0.25, 0.35)
    expected = torch.tensor([[[0.4, 0.1]], [[0.35, 0.55]], [[0.25, 0.35]]])
    torch.testing.assert_close(probs, expected)
    assert merged[0].pred_sem_seg.data.tolist() == [[[0, 1]]]
    assert merged[0].pred_sem_seg.data.shape == (1, 1, 2)
    assert merged[0].gt_sem_seg.data.tolist() == gt
    assert merged[0].img_path == 'a.png'
    assert not merged[0].metainfo.get('flip', False)  # the first aug's


def test_merge_binary_keeps_probabilities():
    # MMSeg's postprocess_result already applied the sigmoid.
    tta = build_tta(binary_model(threshold=0.35))
    a = [[[0.2, 0.6], [0.9, 0.1]]]
    b = [[[0.4, 0.2], [0.7, 0.3]]]
    merged = tta.merge_preds([[sample(a), sample(b)]])[0]
    torch.testing.assert_close(merged.seg_logits.data,
                               torch.tensor([[[0.3, 0.4], [0.8, 0.2]]]))
    assert merged.pred_sem_seg.data.tolist() == [[[0, 1], [1, 0]]]
    assert merged.pred_sem_seg.data.dtype == torch.uint8
    # threshold override
    tta = build_tta(binary_model(), threshold=0.25)
    merged = tta.merge_preds([[sample(a), sample(b)]])[0]
    assert merged.pred_sem_seg.data.tolist() == [[[1, 1], [1, 0]]]


def test_merge_multilabel_per_class_threshold_and_min_area():
    tta = build_tta(multilabel_model(dict(threshold=[0.5, 0.25])))
    a = [[[0.9, 0.2], [0.6, 0.0]], [[0.1, 0.4], [0.2, 0.3]]]
    b = [[[0.5, 0.4], [0.3, 0.2]], [[0.3, 0.2], [0.2, 0.1]]]
    c = [[[0.7, 0.0], [0.6, 0.1]], [[0.2, 0.0], [0.5, 0.2]]]
    merged = tta.merge_preds([[sample(a), sample(b), sample(c)]])[0]
    # class 0 mean (0.7, 0.2; 0.5, 0.1); class 1 (0.2, 0.2; 0.3, 0.2)
    expected = torch.tensor([[[0.7, 0.2], [0.5, 0.1]],
                             [[0.2, 0.2], [0.3, 0.2]]])
    torch.testing.assert_close(merged.seg_logits.data, expected)
    # 0.5 is not > 0.5; class 1 only 0.3 > 0.25
    assert merged.pred_sem_seg.data.tolist() == [[[1, 0], [0, 0]],
                                                 [[0, 0], [1, 0]]]
    # min_area=2 removes the single-pixel components
    tta = build_tta(
        multilabel_model(dict(threshold=[0.5, 0.25], min_area=2)))
    merged = tta.merge_preds([[sample(a), sample(b), sample(c)]])[0]
    assert merged.pred_sem_seg.data.sum() == 0


@pytest.mark.parametrize('kwargs, match', [
    (dict(mode='sigmoid'), 'mode'),
    (dict(probabilities=1), 'probabilities'),
    (dict(threshold=1.5), 'threshold'),
    (dict(threshold=[]), 'threshold'),
])
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_tta(softmax_model(), **kwargs)


def test_shape_mismatch():
    tta = build_tta(binary_model())
    with pytest.raises(ValueError, match='augmentation 1'):
        tta.merge_preds([[sample([[[0.1, 0.2]]]), sample([[[0.1]]])]])


def test_test_step_flip_matches_module():
    """Real test_step over two augmentations (plain, flipped): the merged
    probabilities are the mean of the module's own flip-undone outputs."""
    tta = build_tta(softmax_model()).eval()
    img = torch.arange(3 * 4 * 5, dtype=torch.float32).view(3, 4, 5) % 7

    def aug(flip):
        meta = dict(img_path='x.png', ori_shape=(4, 5), img_shape=(4, 5),
                    pad_shape=(4, 5), flip=flip,
                    flip_direction='horizontal' if flip else None)
        return (img.flip(-1) if flip else img), SegDataSample(metainfo=meta)

    (i0, s0), (i1, s1) = aug(False), aug(True)
    data = dict(inputs=[[i0], [i1]], data_samples=[[s0], [s1]])
    with torch.no_grad():
        merged = tta.test_step(data)
        outs = [
            tta.module.test_step(
                dict(inputs=[i], data_samples=[aug(f)[1]]))[0]
            for i, f in ((i0, False), (i1, True))
        ]
    probs = [o.seg_logits.data.softmax(0) for o in outs]
    assert not torch.allclose(probs[0], probs[1])  # the flip matters
    torch.testing.assert_close(merged[0].seg_logits.data,
                               (probs[0] + probs[1]) / 2)
    assert merged[0].pred_sem_seg.data.shape == (1, 4, 5)
    assert torch.equal(merged[0].pred_sem_seg.data,
                       ((probs[0] + probs[1]) / 2).argmax(0, keepdim=True))


def test_test_step_unified_sample_flips_back_once():
    """A sample flipped at load (``unify_flip``, a left hand) under TTA
    (plain + flipped pass): each augmentation is flipped back by the module,
    so the merged output is the unflagged one, mirrored."""
    tta = build_tta(dict(multilabel_model(),
                         data_preprocessor=dict(type='SegDataPreProcessor')))
    tta.eval()
    img = torch.arange(3 * 4 * 5, dtype=torch.float32).view(3, 4, 5) % 7

    def batch(unify):
        inputs, samples = [], []
        for flip in (False, True):
            meta = dict(img_path='x_L.png', ori_shape=(4, 5),
                        img_shape=(4, 5), pad_shape=(4, 5), flip=flip,
                        flip_direction='horizontal' if flip else None,
                        unify_flip=unify)
            inputs.append([img.flip(-1) if flip else img])
            samples.append([SegDataSample(metainfo=meta)])
        return dict(inputs=inputs, data_samples=samples)

    with torch.no_grad():
        plain = tta.test_step(batch(False))[0]
        unified = tta.test_step(batch(True))[0]
    assert not torch.allclose(plain.seg_logits.data,
                              plain.seg_logits.data.flip(-1))
    torch.testing.assert_close(unified.seg_logits.data,
                               plain.seg_logits.data.flip(-1))
    assert torch.equal(unified.pred_sem_seg.data,
                       plain.pred_sem_seg.data.flip(-1))


def test_runner_tta_multilabel(tmp_path):
    """``tools/test.py --tta`` path: a real Runner test of a tiny
    multi-label segmentor wrapped in ProbSegTTAModel, scales x flips."""
    import os.path as osp

    import cv2
    import numpy as np
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmseg_ext.utils.io import imwrite_atomic
    from mmseg_ext.utils.multilabel import pack_multilabel, write_packed_label

    rng = np.random.default_rng(0)
    root = str(tmp_path / 'data')
    for i, (h, w) in enumerate(((32, 32), (24, 40))):
        masks = np.zeros((2, h, w), np.uint8)
        cv2.circle(masks[0], (12, 12), 6, 1, -1)
        cv2.rectangle(masks[1], (4, 14), (20, 22), 1, -1)
        img = rng.integers(0, 50, (h, w, 3)).astype(np.uint8)
        img[masks[0] == 1] += 100
        imwrite_atomic(img, osp.join(root, 'img_dir', f'{i}.png'))
        write_packed_label(osp.join(root, 'ann_dir', f'{i}.png'),
                           pack_multilabel(masks))
    tta_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(
            type='TestTimeAug',
            transforms=[
                [dict(type='Resize', scale_factor=r, keep_ratio=True)
                 for r in (0.75, 1.0)],
                [dict(type='RandomFlip', prob=0., direction='horizontal'),
                 dict(type='RandomFlip', prob=1., direction='horizontal')],
                [dict(type='LoadMultiLabelAnnotations')],
                [dict(type='PackMultiLabelSegInputs')],
            ])
    ]
    model = dict(
        type='MultiLabelEncoderDecoder',
        data_preprocessor=dict(
            type='MultiLabelSegDataPreProcessor', num_classes=2,
            mean=[0, 0, 0], std=[255, 255, 255], size_divisor=8),
        backbone=dict(
            type='MixVisionTransformer', in_channels=3, embed_dims=8,
            num_stages=2, num_layers=[1, 1], num_heads=[1, 1],
            patch_sizes=[7, 3], strides=[4, 2], sr_ratios=[4, 2],
            out_indices=(0, 1), mlp_ratio=2),
        decode_head=dict(
            type='MultiLabelHead',
            head=dict(type='SegformerHead', in_channels=[8, 8],
                      in_index=[0, 1], channels=8, num_classes=2)),
        test_cfg=dict(mode='whole'))
    cfg = Config(
        dict(
            default_scope='mmseg',
            work_dir=str(tmp_path / 'work'),
            model=dict(type='ProbSegTTAModel', module=model),
            test_dataloader=dict(
                batch_size=1,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(
                    type='PackedMultiLabelDataset',
                    data_root=root,
                    metainfo=dict(classes=('disc', 'bar')),
                    data_prefix=dict(img_path='img_dir',
                                     seg_map_path='ann_dir'),
                    pipeline=tta_pipeline)),
            test_evaluator=dict(type='MultiLabelDiceMetric'),
            test_cfg=dict(type='TestLoop'),
            log_level='WARNING',
            env_cfg=dict(cudnn_benchmark=False)))
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert 0 <= metrics['mDice'] <= 1 and 'Dice.bar' in metrics
    # merged samples keep (C, H, W) probabilities at the original size
    batch = next(iter(runner.test_dataloader))
    with torch.no_grad():
        merged = runner.model.test_step(batch)[0]
    probs = merged.seg_logits.data
    assert probs.shape == (2, 32, 32) and probs.dtype == torch.float32
    assert 0 <= probs.min() and probs.max() <= 1
    assert torch.equal(merged.pred_sem_seg.data,
                       (probs > 0.5).to(torch.uint8))
