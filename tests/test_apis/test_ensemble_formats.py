# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Validation of the ensemble's files (``mmseg_ext/apis/ensemble/formats``)
and of the one per-class JSON reader."""
import json

import numpy as np
import pytest

from mmseg_ext.apis.ensemble import (ScoresError, ThresholdsError,
                                     WeightsError, check_member_weights,
                                     load_scores, load_thresholds,
                                     load_weights)
from mmseg_ext.evaluation.metrics.per_class_json import (
    PerClassJSONError, read_per_class_json)
from mmseg_ext.utils.errors import InputError


def write(path, content):
    path.write_text(content if isinstance(content, str) else
                    json.dumps(content))
    return str(path)


@pytest.mark.parametrize('bad', ['1.5', '-0.3', 'NaN'])
def test_thresholds_json_values_finite_in_unit_interval(tmp_path, bad):
    path = write(tmp_path / 'thr.json',
                 f'{{"classes": ["a", "b"], "thresholds": [0.5, {bad}]}}')
    with pytest.raises(ThresholdsError) as err:
        load_thresholds(path, 2)
    msg = str(err.value)
    assert path in msg and "class 'b'" in msg and bad.lower() in msg.lower()
    assert err.value.path == path and isinstance(err.value, ValueError)


def test_thresholds_json_bounds_are_allowed(tmp_path):
    path = write(tmp_path / 'thr.json', dict(thresholds=[0, 1]))
    spec = load_thresholds(path, 2)
    assert spec['thresholds'].tolist() == [0.0, 1.0]
    assert spec['classes'] is None
    with pytest.raises(ThresholdsError, match=r'\[0, 1\)'):
        load_thresholds(1.0, 2)  # a number applies to every class


def test_scores_nan_names_file_and_class(tmp_path):
    good = write(tmp_path / 'a.json', dict(classes=['x', 'y'], dice=[1, 0]))
    bad = write(tmp_path / 'b.json',
                '{"classes": ["x", "y"], "dice": [0.2, NaN]}')
    with pytest.raises(ScoresError) as err:
        load_scores([good, bad])
    assert 'b.json' in str(err.value) and "class 'y'" in str(err.value)
    scores, classes = load_scores(
        [good, write(tmp_path / 'c.json', dict(dice=[None, 0.5]))])
    assert classes == ['x', 'y']
    assert scores.tolist() == [[1.0, 0.0], [-np.inf, 0.5]]  # null: last
    with pytest.raises(ScoresError, match='"iou" list'):
        load_scores([good], key='iou')


def test_weights_checked_once(tmp_path):
    assert check_member_weights([1, 2], 2).tolist() == [1.0, 2.0]
    with pytest.raises(WeightsError, match='one weight per member'):
        check_member_weights(np.ones((3, 2)), 2)
    with pytest.raises(WeightsError, match='finite non-negative'):
        check_member_weights([1, np.nan], 2)
    with pytest.raises(WeightsError, match=r'C=3 classes'):
        check_member_weights(np.ones((2, 2)), 2, num_classes=3)
    path = write(tmp_path / 'w.json', dict(weights=[[1, 'x']]))
    with pytest.raises(WeightsError) as err:
        load_weights(path, 1)
    assert err.value.path == path


def test_read_per_class_json(tmp_path):
    path = write(tmp_path / 's.json',
                 dict(classes=['a', 'b'], dice=[0.5, None], iou=[0.25, 0]))
    data = read_per_class_json(path)
    assert data['classes'] == ['a', 'b']
    assert data['dice'][0] == 0.5 and np.isnan(data['dice'][1])
    assert data['iou'].tolist() == [0.25, 0.0]
    short = write(tmp_path / 'short.json', dict(classes=['a', 'b'],
                                                dice=[0.5], iou=[1, 1]))
    with pytest.raises(PerClassJSONError, match='list of 2 numbers'):
        read_per_class_json(short)
    inf = write(tmp_path / 'inf.json', '{"dice": [Infinity], "iou": [1]}')
    with pytest.raises(InputError, match=r"field 'dice', class 0"):
        read_per_class_json(inf)
    no_classes = write(tmp_path / 'n.json', dict(dice=[1], iou=[1]))
    with pytest.raises(PerClassJSONError, match="field 'classes'"):
        read_per_class_json(no_classes, require_classes=True)
    with pytest.raises(PerClassJSONError, match='not valid JSON'):
        read_per_class_json(write(tmp_path / 'x.json', '{'))
    with pytest.raises(FileNotFoundError):
        read_per_class_json(str(tmp_path / 'missing.json'))
