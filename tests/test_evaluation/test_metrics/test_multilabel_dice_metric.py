# Copyright (c) mmseg_ext contributors. All rights reserved.
import json
import pickle

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

from mmseg_ext.utils.multilabel import pack_multilabel

EPS = 1e-4


def as_tensor(rows):
    """``(C, 1, W)`` uint8 from per-class rows."""
    return torch.tensor(rows, dtype=torch.uint8).unsqueeze(1)


# Two images, two classes, 4 pixels in a row each.
PRED = [as_tensor([[1, 0, 0, 0], [0, 0, 0, 0]]),
        as_tensor([[1, 0, 0, 0], [1, 0, 0, 1]])]
GT = [as_tensor([[1, 1, 0, 0], [0, 0, 0, 0]]),
      as_tensor([[0, 0, 0, 0], [1, 0, 0, 255]])]
# image 0: class 0 I=1, |X|=1, |Y|=2; class 1 both empty.
# image 1: class 0 I=0, |X|=1, |Y|=0; class 1 pixel 3 ignored: I=1, 1, 1.
DICE = np.array([[(2 + EPS) / (3 + EPS), 1.0], [EPS / (1 + EPS), 1.0]])
IOU = np.array([[(1 + EPS) / (2 + EPS), 1.0], [EPS / (1 + EPS), 1.0]])


def build(**kwargs):
    metric = METRICS.build(dict(type='MultiLabelDiceMetric', **kwargs))
    metric.dataset_meta = dict(classes=('a', 'b'))
    return metric


def as_dicts(preds, gts):
    return [
        dict(pred_sem_seg=dict(data=p), gt_sem_seg=dict(data=g))
        for p, g in zip(preds, gts)
    ]


def test_hand_values(tmp_path):
    path = str(tmp_path / 'sub' / 'dice.json')
    metric = build(per_class_json=path)
    metric.process({}, as_dicts(PRED, GT))
    assert all(r.shape == (3, 2) and r.dtype == np.int64
               for r in metric.results)
    np.testing.assert_array_equal(metric.results[1], [[0, 1], [1, 1], [0, 1]])
    out = metric.evaluate(2)
    class_dice = DICE.mean(0)
    assert out['Dice.a'] == pytest.approx(class_dice[0], rel=1e-12)
    assert out['Dice.b'] == pytest.approx(1.0, rel=1e-12)
    assert out['mDice'] == pytest.approx(class_dice.mean(), rel=1e-12)
    assert out['mIoU'] == pytest.approx(IOU.mean(0).mean(), rel=1e-12)
    # Images first, then classes: not the Dice of the pooled pixels.
    pooled = (2 * 1 + EPS) / (2 + 2 + EPS)
    assert out['Dice.a'] != pytest.approx(pooled)
    with open(path) as f:
        dumped = json.load(f)
    assert dumped['classes'] == ['a', 'b'] and dumped['num_images'] == 2
    np.testing.assert_allclose(dumped['dice'], class_dice)
    np.testing.assert_allclose(dumped['iou'], IOU.mean(0))


def test_both_empty_is_one_and_perfect_is_one():
    metric = build()
    empty = torch.zeros(2, 3, 3, dtype=torch.uint8)
    full = torch.ones(2, 3, 3, dtype=torch.uint8)
    metric.process({}, as_dicts([empty, full], [empty, full]))
    out = metric.evaluate(2)
    assert out['mDice'] == 1.0 and out['mIoU'] == 1.0


def test_all_ignored_counts_as_empty():
    metric = build()
    pred = torch.ones(2, 2, 2, dtype=torch.uint8)
    gt = torch.full((2, 2, 2), 255, dtype=torch.uint8)
    metric.process({}, as_dicts([pred], [gt]))
    assert metric.evaluate(1)['mDice'] == 1.0


def test_packed_ground_truth_is_unpacked():
    metric = build()
    masks = (GT[1] == 1).numpy()
    ignore = (GT[1] == 255).numpy().any(0)
    packed = pack_multilabel(masks, ignore)  # (1, 4, 1)
    gt = torch.from_numpy(
        np.ascontiguousarray(packed.view(np.int16).transpose(2, 0, 1)))
    metric.process({}, as_dicts([PRED[1]], [gt]))
    np.testing.assert_array_equal(metric.results[0], [[0, 1], [1, 1], [0, 1]])


def test_through_evaluator_with_data_samples():
    evaluator = Evaluator(
        METRICS.build(dict(type='MultiLabelDiceMetric', prefix='val')))
    evaluator.dataset_meta = dict(classes=('a', 'b'))
    samples = []
    for p, g in zip(PRED, GT):
        s = SegDataSample()
        s.pred_sem_seg = PixelData(data=p)
        s.gt_sem_seg = PixelData(data=g)
        samples.append(s)
    evaluator.process(samples, {})
    # What DDP collection sends: small picklable arrays.
    assert len(pickle.dumps(evaluator.metrics[0].results)) < 2000
    out = evaluator.evaluate(2)
    assert out['val/mDice'] == pytest.approx(DICE.mean(0).mean(), rel=1e-12)
    assert set(out) == {'val/mDice', 'val/mIoU', 'val/Dice.a', 'val/Dice.b'}


def test_class_names_fallback():
    metric = METRICS.build(dict(type='MultiLabelDiceMetric'))
    metric.dataset_meta = dict(classes=('only_one', ))
    metric.process({}, as_dicts(PRED, GT))
    assert {'Dice.0', 'Dice.1'} <= set(metric.evaluate(2))


def test_errors():
    with pytest.raises(ValueError, match='eps'):
        METRICS.build(dict(type='MultiLabelDiceMetric', eps=0))
    metric = build()
    with pytest.raises(ValueError, match=r'\(C, H, W\)'):
        metric.process({}, as_dicts([PRED[0]], [GT[0][:1]]))
