# Copyright (c) mmseg_ext contributors. All rights reserved.
"""HandBoneSubmissionMetric: one row per (image, class), in order, and RLEs
that decode back to the predicted masks."""
import csv
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmseg.registry import METRICS

from mmseg_ext.datasets.generators.hand_bone import HAND_BONE_CLASSES
from mmseg_ext.evaluation.metrics.hand_bone_submission import (
    HandBoneSubmissionMetric, encode_multilabel_masks, read_submission_csv,
    write_submission_csv)
from mmseg_ext.utils.multilabel import read_packed_label, unpack_multilabel
from mmseg_ext.utils.rle import rle_decode

C = len(HAND_BONE_CLASSES)
NAMES = ['image1661130914565_L.png', 'image1661130828152_R.png',
         'image1661131000000_R.png']


def _masks(seed, h=12, w=10):
    rng = np.random.default_rng(seed)
    masks = (rng.random((C, h, w)) < 0.3).astype(np.uint8)
    masks[5] = 0  # an empty class
    masks[7] = 1  # a full one
    return masks


def _sample(name, masks, pid='ID001'):
    h, w = masks.shape[1:]
    return dict(
        img_path=f'/data/test/DCM/{pid}/{name}',
        ori_shape=(h, w),
        pred_sem_seg=dict(data=torch.from_numpy(masks)),
        seg_logits=dict(data=torch.from_numpy(masks.astype(np.float32))))


def test_rows_order_and_rle_roundtrip(tmp_path):
    out = str(tmp_path / 'sub' / 'submission.csv')
    metric = METRICS.build(
        dict(type='HandBoneSubmissionMetric', output_file=out))
    assert isinstance(metric, HandBoneSubmissionMetric)
    masks = {name: _masks(i) for i, name in enumerate(NAMES)}
    metric.dataset_meta = dict(classes=HAND_BONE_CLASSES)
    # batches in dataloader order, not sorted
    metric.process({}, [_sample(NAMES[0], masks[NAMES[0]])])
    metric.process({}, [_sample(n, masks[n]) for n in NAMES[1:]])
    result = metric.compute_metrics(metric.results)
    assert result == dict(num_images=3, num_rows=3 * C)

    with open(out, newline='') as f:
        lines = list(csv.reader(f))
    assert lines[0] == ['image_name', 'class', 'rle']
    rows = lines[1:]
    assert len(rows) == 3 * C
    assert [r[0] for r in rows] == [n for n in sorted(NAMES)
                                    for _ in range(C)]
    assert [r[1] for r in rows] == list(HAND_BONE_CLASSES) * 3
    for name, cls, rle in rows:
        k = HAND_BONE_CLASSES.index(cls)
        np.testing.assert_array_equal(rle_decode(rle, (12, 10)),
                                      masks[name][k])
    empty = [r for r in rows if r[1] == HAND_BONE_CLASSES[5]]
    assert all(r[2] == '' for r in empty)
    full = [r for r in rows if r[1] == HAND_BONE_CLASSES[7]]
    assert all(r[2] == '1 120' for r in full)
    assert read_submission_csv(out) == [tuple(r) for r in rows]


def test_evaluator_prefix_and_dataset_classes(tmp_path):
    out = str(tmp_path / 'submission.csv')
    classes = ('a', 'b', 'c')
    evaluator = Evaluator(
        dict(type='HandBoneSubmissionMetric', output_file=out))
    evaluator.dataset_meta = dict(classes=classes)
    masks = np.zeros((3, 4, 4), np.uint8)
    masks[1, 1:3, 1:3] = 1
    evaluator.process([_sample('x.png', masks)])
    assert evaluator.evaluate(1) == {
        'submission/num_images': 1,
        'submission/num_rows': 3
    }
    assert read_submission_csv(out) == [('x.png', 'a', ''),
                                        ('x.png', 'b', '6 2 10 2'),
                                        ('x.png', 'c', '')]


def test_pred_dir_keeps_packed_predictions(tmp_path):
    metric = HandBoneSubmissionMetric(
        output_file=str(tmp_path / 's.csv'), pred_dir=str(tmp_path / 'p'))
    masks = _masks(3)
    metric.process({}, [_sample(NAMES[0], masks)])
    packed = read_packed_label(osp.join(str(tmp_path / 'p'), NAMES[0]), C)
    np.testing.assert_array_equal(unpack_multilabel(packed, C), masks)


@pytest.mark.parametrize('shape, match', [
    ((C, 6, 10), r'\(C, H, W\) = \(29, 12, 10\) binary masks at the '
     r'original image size, but got \(29, 6, 10\)'),
    ((C - 1, 12, 10), r'but got \(28, 12, 10\)'),
])
def test_process_rejects_wrong_shapes(tmp_path, shape, match):
    metric = HandBoneSubmissionMetric(output_file=str(tmp_path / 's.csv'))
    sample = _sample(NAMES[0], np.zeros(shape, np.uint8))
    sample['ori_shape'] = (12, 10)
    with pytest.raises(ValueError, match=match) as err:
        metric.process({}, [sample])
    assert NAMES[0] in str(err.value)


def test_duplicate_image_names_are_rejected(tmp_path):
    metric = HandBoneSubmissionMetric(output_file=str(tmp_path / 's.csv'))
    metric.process({}, [_sample(NAMES[0], _masks(0), 'ID001'),
                        _sample(NAMES[0], _masks(1), 'ID002')])
    with pytest.raises(ValueError, match='has two predictions'):
        metric.compute_metrics(metric.results)
    assert not osp.exists(str(tmp_path / 's.csv'))


@pytest.mark.parametrize('kwargs, match', [
    (dict(output_file=''), '`output_file` should be a CSV path'),
    (dict(output_file='s.csv', classes='abc'), '`classes` should be a'),
    (dict(output_file='s.csv', classes=[]), '`classes` should be a'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HandBoneSubmissionMetric(**kwargs)


def test_write_submission_checks_rle_count(tmp_path):
    with pytest.raises(ValueError, match='should have 29 RLEs'):
        write_submission_csv(str(tmp_path / 's.csv'), [('x.png', ['1 2'])])
    assert encode_multilabel_masks(np.eye(3, dtype=bool)[None]) == \
        ['1 1 5 1 9 1']


def test_read_submission_names_bad_rows(tmp_path):
    path = tmp_path / 's.csv'
    path.write_text('image_name,class,rle\nx.png,a\n')
    with pytest.raises(ValueError, match=r's.csv:2: a row should have 3'):
        read_submission_csv(str(path))
    path.write_text('image,class,rle\n')
    with pytest.raises(ValueError, match='the header should be'):
        read_submission_csv(str(path))
