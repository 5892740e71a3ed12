# Copyright (c) mmseg_ext contributors. All rights reserved.
import csv
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

from mmseg_ext.evaluation.metrics import (BuildingDiceMetric,
                                          BuildingSubmissionMetric)
from mmseg_ext.evaluation.metrics.building_dice_metric import building_counts
from mmseg_ext.utils.multilabel import pack_label_map
from mmseg_ext.utils.rle import rle_decode
from mmseg_ext.utils.threshold_search import competition_dice, mean_dice


def _mask(h, w, box=None):
    m = np.zeros((h, w), np.uint8)
    if box is not None:
        y0, y1, x0, x1 = box
        m[y0:y1, x0:x1] = 1
    return m


def _sample(pred, gt=None, gt_format='multilabel', **meta):
    """A data sample dict as mmengine's Evaluator hands it to a metric."""
    sample = SegDataSample(metainfo=meta)
    sample.pred_sem_seg = PixelData(
        data=torch.from_numpy(pred[None].astype(np.uint8)))
    if gt is not None:
        if gt_format == 'multilabel':  # (1, H, W) uint8 {0, 1, 255}
            data = torch.from_numpy(gt[None].astype(np.uint8))
        elif gt_format == 'plain':  # (1, H, W) int64 0/1 (PackSegInputs)
            data = torch.from_numpy(gt[None].astype(np.int64))
        elif gt_format == 'plain2d':
            data = torch.from_numpy(gt.astype(np.uint8))
        else:  # still packed (K, H, W) int16
            packed = pack_label_map(gt, [[1]])
            data = torch.from_numpy(
                np.ascontiguousarray(
                    packed.view(np.int16).transpose(2, 0, 1)))
        sample.gt_sem_seg = PixelData(data=data)
    return sample.to_dict()


def _evaluate(metric, samples):
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


# Four hand-built images (10 x 10):
#  a: truth 20 px, prediction 10 px inside it -> Dice 2*10/30 = 2/3
#  b: truth empty, prediction empty             -> skipped (plain: 1)
#  c: truth empty, prediction 4 px              -> 0
#  d: truth 10 px, prediction empty             -> 0
CASES = [
    (_mask(10, 10, (0, 2, 0, 5)), _mask(10, 10, (0, 2, 0, 10))),
    (_mask(10, 10), _mask(10, 10)),
    (_mask(10, 10, (5, 7, 5, 7)), _mask(10, 10)),
    (_mask(10, 10), _mask(10, 10, (9, 10, 0, 10))),
]


@pytest.mark.parametrize('gt_format',
                         ['multilabel', 'plain', 'plain2d', 'packed'])
def test_competition_rule_exact_values(gt_format):
    metric = METRICS.build(dict(type='BuildingDiceMetric'))
    assert isinstance(metric, BuildingDiceMetric)
    res = _evaluate(metric, [_sample(p, g, gt_format) for p, g in CASES])
    assert res['score'] == pytest.approx((2 / 3 + 0 + 0) / 3)
    assert res['dice'] == pytest.approx((2 / 3 + 1 + 0 + 0) / 4)
    assert res['num_images'] == 4
    assert res['num_scored'] == 3
    assert res['num_empty_gt'] == 2
    assert res['num_empty_gt_fp'] == 1
    assert res['num_missed'] == 1


def test_empty_empty_is_skipped_not_one():
    metric = BuildingDiceMetric()
    perfect = _mask(8, 8, (0, 4, 0, 4))
    res = _evaluate(metric, [
        _sample(perfect, perfect),
        _sample(_mask(8, 8), _mask(8, 8)),
        _sample(_mask(8, 8), _mask(8, 8)),
    ])
    assert res['score'] == pytest.approx(1.0)
    assert res['num_scored'] == 1
    # Adding an empty tile with one false-positive pixel halves the score.
    metric = BuildingDiceMetric()
    res = _evaluate(metric, [
        _sample(perfect, perfect),
        _sample(_mask(8, 8, (0, 1, 0, 1)), _mask(8, 8)),
    ])
    assert res['score'] == pytest.approx(0.5)
    assert res['dice'] == pytest.approx(0.5)


def test_all_empty_scores_one():
    res = _evaluate(BuildingDiceMetric(),
                    [_sample(_mask(4, 4), _mask(4, 4))] * 2)
    assert res['score'] == 1.0 and res['dice'] == 1.0
    assert res['num_scored'] == 0


def test_ignored_pixels_are_excluded():
    gt = _mask(4, 4, (0, 2, 0, 4))  # 8 building px
    gt[2:, :] = 255  # ignored
    pred = np.ones((4, 4), np.uint8)  # 8 px on ignored pixels
    assert building_counts(
        torch.from_numpy(pred[None]), torch.from_numpy(gt[None])) == (8, 8, 8)
    res = _evaluate(BuildingDiceMetric(), [_sample(pred, gt)])
    assert res['score'] == pytest.approx(1.0)


def test_prefix_gives_the_monitored_key():
    metric = BuildingDiceMetric()
    metric.process({}, [_sample(*CASES[0])])
    # BaseMetric.evaluate adds the prefix (single process here).
    out = metric.evaluate(1)
    assert set(out) >= {'building/score', 'building/dice'}


def test_score_functions_directly():
    counts = np.array([[10, 10, 20], [0, 0, 0], [0, 4, 0], [0, 0, 10]])
    assert competition_dice(counts) == (pytest.approx(2 / 9), 3)
    assert mean_dice(counts) == pytest.approx((2 / 3 + 1) / 4)
    assert competition_dice(np.zeros((0, 3))) == (1.0, 0)


def test_shape_mismatch_and_bad_args():
    with pytest.raises(ValueError, match='same \\(H, W\\)'):
        building_counts(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match='`class_index` should be'):
        BuildingDiceMetric(class_index=-1)
    with pytest.raises(ValueError, match='needs `gt_sem_seg`'):
        BuildingDiceMetric().process({}, [_sample(_mask(4, 4))])


# Submission writer.
def _write_test_csv(folder, ids):
    path = osp.join(folder, 'test.csv')
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['img_id', 'img_path'])
        for img_id in ids:
            writer.writerow([img_id, f'./test_img/{img_id}.png'])
    return path


def _read(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def test_submission_every_row_in_order_with_minus_one(tmp_path):
    ids = ['TEST_00000', 'TEST_00001', 'TEST_00002', 'TEST_00003']
    ann = _write_test_csv(str(tmp_path), ids)
    out = str(tmp_path / 'sub' / 'submission.csv')
    metric = METRICS.build(
        dict(type='BuildingSubmissionMetric', ann_file=ann, out_file=out))
    assert isinstance(metric, BuildingSubmissionMetric)
    full = _mask(4, 4, (1, 2, 0, 4))
    # Out of order; one by img_id, others by img_path; TEST_00003 missing.
    samples = [
        _sample(full, img_id='TEST_00002'),
        _sample(_mask(4, 4),
                img_path=str(tmp_path / 'test_img' / 'TEST_00000.png')),
        _sample(full, img_path=str(tmp_path / 'test_img' / '..' /
                                   'test_img' / 'TEST_00001.png')),
    ]
    res = _evaluate(metric, samples)
    rows = _read(out)
    assert rows[0] == ['img_id', 'mask_rle']
    assert [r[0] for r in rows[1:]] == ids
    assert rows[1][1] == '-1'  # empty prediction
    assert rows[2][1] == rows[3][1] == '5 4'
    assert rows[4][1] == '-1'  # no prediction
    np.testing.assert_array_equal(rle_decode(rows[3][1], (4, 4)), full)
    assert res == dict(num_rows=4, num_empty=2, num_missing=1)
    assert sorted(p.name for p in (tmp_path / 'sub').iterdir()) == [
        'submission.csv'
    ]  # no temporary file left


def test_submission_unknown_image_is_an_error(tmp_path):
    ann = _write_test_csv(str(tmp_path), ['TEST_00000'])
    metric = BuildingSubmissionMetric(
        ann_file=ann, out_file=str(tmp_path / 's.csv'))
    metric.process({}, [_sample(_mask(2, 2), img_id='OTHER')])
    with pytest.raises(ValueError, match="img_id 'OTHER' has no row"):
        metric.compute_metrics(metric.results)
    assert not (tmp_path / 's.csv').exists()


def test_counts_of_plain_2d_maps():
    pred = torch.from_numpy(_mask(4, 4, (0, 2, 0, 2)))
    gt = torch.from_numpy(_mask(4, 4, (0, 1, 0, 4)))
    assert building_counts(pred, gt) == (2, 4, 4)
    assert building_counts(pred[None], gt) == (2, 4, 4)


def test_submission_output_dir_of_tools_test(tmp_path):
    ann = _write_test_csv(str(tmp_path), ['TEST_00000'])
    metric = BuildingSubmissionMetric(
        ann_file=ann, out_file='sub.csv', output_dir=str(tmp_path / 'out'),
        keep_results=True)
    metric.process({}, [_sample(_mask(2, 2), img_id='TEST_00000')])
    metric.compute_metrics(metric.results)
    assert _read(str(tmp_path / 'out' / 'sub.csv'))[1] == ['TEST_00000',
                                                            '-1']
