# Copyright (c) mmseg_ext contributors. All rights reserved.
"""PerClassIoUMetric: IoUMetric plus the per-class JSON, hand-built cases."""
import json
import math

import pytest
import torch
from mmseg.registry import METRICS

from mmseg_ext.evaluation.metrics.per_class_json import (PerClassIoUMetric,
                                                         per_class_scores)


def data_sample(pred, gt):
    return dict(
        pred_sem_seg=dict(data=torch.tensor([pred])),
        gt_sem_seg=dict(data=torch.tensor([gt])))


def evaluate(metric, classes, pairs):
    metric.dataset_meta = dict(classes=classes)
    for pred, gt in pairs:
        metric.process({}, [data_sample(pred, gt)])
    return metric.evaluate(len(pairs))


PAIRS = [
    # image 1: one ignored pixel (its prediction 2 does not count)
    ([[0, 1], [2, 2]], [[0, 1], [1, 255]]),
    # image 2: all background, predicted right
    ([[0, 0], [0, 0]], [[0, 0], [0, 0]]),
]
# Summed areas: I = (5, 1, 0), P = (5, 1, 1), L = (5, 2, 0).
DICE = [1.0, 2 / 3, 0.0]
IOU = [1.0, 0.5, 0.0]


def test_json_layout_and_values(tmp_path):
    path = tmp_path / 'sub' / 'val_scores.json'
    metric = METRICS.build(
        dict(type='PerClassIoUMetric', per_class_json=str(path),
             iou_metrics=['mIoU', 'mDice']))
    assert isinstance(metric, PerClassIoUMetric)
    metrics = evaluate(metric, ('bg', 'a', 'b'), PAIRS)
    # IoUMetric's own outputs (percent) are unchanged
    assert metrics['mIoU'] == pytest.approx(50.0)
    assert metrics['mDice'] == pytest.approx(round(100 * 5 / 9, 2))
    with open(path) as f:
        dumped = json.load(f)
    assert dumped['classes'] == ['bg', 'a', 'b']
    assert dumped['dice'] == pytest.approx(DICE)
    assert dumped['iou'] == pytest.approx(IOU)
    assert dumped['mDice'] == pytest.approx(5 / 9)
    assert dumped['mIoU'] == pytest.approx(0.5)
    assert dumped['num_images'] == 2
    assert dumped['averaging'] == 'dataset'
    assert not list(path.parent.glob('.*'))  # no temporary file left


def test_absent_class_is_null_and_left_out(tmp_path):
    path = tmp_path / 'scores.json'
    metric = METRICS.build(
        dict(type='PerClassIoUMetric', per_class_json=str(path)))
    evaluate(metric, ('bg', 'a', 'b', 'never'), PAIRS)
    with open(path) as f:
        dumped = json.load(f)
    assert dumped['dice'][3] is None and dumped['iou'][3] is None
    assert dumped['mDice'] == pytest.approx(5 / 9)
    # nan_to_num replaces it (and then it counts), as in IoUMetric
    metric = METRICS.build(
        dict(type='PerClassIoUMetric', per_class_json=str(path),
             nan_to_num=0))
    evaluate(metric, ('bg', 'a', 'b', 'never'), PAIRS)
    with open(path) as f:
        dumped = json.load(f)
    assert dumped['dice'][3] == 0.0
    assert dumped['mDice'] == pytest.approx(5 / 12)


def test_without_json_is_iou_metric(tmp_path):
    metric = METRICS.build(dict(type='PerClassIoUMetric'))
    metrics = evaluate(metric, ('bg', 'a', 'b'), PAIRS)
    assert metrics['mIoU'] == pytest.approx(50.0)
    assert not list(tmp_path.iterdir())


def test_per_class_scores():
    dice, iou = per_class_scores([5, 1, 0, 0], [5, 1, 1, 0], [5, 2, 0, 0])
    assert dice[:3].tolist() == pytest.approx(DICE)
    assert iou[:3].tolist() == pytest.approx(IOU)
    assert math.isnan(dice[3]) and math.isnan(iou[3])


@pytest.mark.parametrize('value', ['', 3])
def test_bad_path(value):
    with pytest.raises(ValueError, match='per_class_json'):
        PerClassIoUMetric(per_class_json=value)
