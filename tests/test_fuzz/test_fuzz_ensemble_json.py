# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Fuzzing the ensemble's JSON readers (``thresholds.json``, member weights,
per-class scores): random JSON values and mutated valid files either give
exactly what a pure-Python reference reads, or the project's InputError
naming the file; never another exception and never a silent change."""
import json
import math
import os.path as osp
import tempfile

import numpy as np
import pytest

from mmseg_ext.apis.ensemble import load_scores, load_thresholds, load_weights
from mmseg_ext.utils.errors import InputError

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=80, deadline=None, derandomize=True)
C, E = 3, 2

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(['thresholds', 'weights', 'classes', 'dice',
                             'iou', 'x']), inner, max_size=3)),
    max_leaves=12)
unit = st.floats(0, 1)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(-2, 2), st.booleans(), st.text(max_size=2),
                    st.none())


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _write(folder: str, name: str, data) -> str:
    path = osp.join(folder, name)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f)  # NaN / Infinity are written as JS literals
    return path


# --------------------------------------------------------------- thresholds
def ref_thresholds(data):
    """The thresholds a valid file holds, or None (must be rejected)."""
    if not isinstance(data, dict):
        return None
    values = data.get('thresholds')
    if not isinstance(values, list) or len(values) != C:
        return None
    if not all(_is_number(v) and math.isfinite(v) and 0 <= v <= 1
               for v in values):
        return None
    return [float(v) for v in values]


def check_thresholds(data):
    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, 'thresholds.json', data)
        expected = ref_thresholds(data)
        if expected is None:
            with pytest.raises(InputError) as info:
                load_thresholds(path, C)
            assert path in str(info.value)
            return
        out = load_thresholds(path, C)
        np.testing.assert_array_equal(out['thresholds'],
                                      np.float32(expected))


@FUZZ
@given(json_values)
def test_thresholds_random_json(data):
    check_thresholds(data)


@FUZZ
@given(st.lists(unit, min_size=C, max_size=C),
       st.integers(0, C - 1), numbers)
def test_thresholds_mutated(values, index, bad):
    check_thresholds(dict(thresholds=values))
    values = list(values)
    values[index] = bad
    check_thresholds(dict(thresholds=values, classes=['a', 'b', 'c']))


# ------------------------------------------------------------------ weights
def ref_weights(data):
    """``(E,)`` / ``(E, C')`` weights of a valid file, or None."""
    if isinstance(data, dict):
        if 'weights' not in data:
            return None
        data = data['weights']
    if not isinstance(data, list) or len(data) != E:
        return None
    if all(_is_number(v) for v in data):
        rows = [data]
    elif all(isinstance(r, list) for r in data) and \
            len({len(r) for r in data}) == 1 and len(data[0]) > 0 and \
            all(_is_number(v) for r in data for v in r):
        rows = data
    else:
        return None
    if not all(math.isfinite(v) and v >= 0 for r in rows for v in r):
        return None
    return np.asarray(data, np.float64)


def check_weights(data):
    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, 'weights.json', data)
        expected = ref_weights(data)
        if expected is None:
            with pytest.raises(InputError) as info:
                load_weights(path, E)
            assert path in str(info.value)
            return
        np.testing.assert_array_equal(load_weights(path, E), expected)


@FUZZ
@given(json_values)
def test_weights_random_json(data):
    check_weights(data)


@FUZZ
@given(st.lists(st.lists(st.floats(0, 10), min_size=C, max_size=C),
                min_size=E, max_size=E),
       st.integers(0, E - 1), st.integers(0, C - 1), numbers,
       st.booleans())
def test_weights_mutated(table, row, col, bad, wrapped):
    check_weights(dict(weights=table) if wrapped else table)
    table = [list(r) for r in table]
    table[row][col] = bad
    check_weights(dict(weights=table) if wrapped else table)


# ------------------------------------------------------------------- scores
def ref_scores(data):
    """``(C,)`` scores of one valid per-class JSON (``null`` -> -inf), or
    None."""
    if not isinstance(data, dict):
        return None
    classes = data.get('classes')
    if classes is not None and (not isinstance(classes, list) or not all(
            isinstance(c, str) for c in classes)):
        return None
    values = data.get('dice')
    if not isinstance(values, list) or (classes is not None
                                        and len(values) != len(classes)):
        return None
    out = []
    for v in values:
        if v is None:
            out.append(-np.inf)
        elif _is_number(v) and math.isfinite(v):
            out.append(float(v))
        else:
            return None
    return np.asarray(out, np.float64)


def check_scores(data):
    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, 'scores.json', data)
        expected = ref_scores(data)
        if expected is None:
            with pytest.raises(InputError) as info:
                load_scores([path])
            assert path in str(info.value)
            return
        scores, _ = load_scores([path])
        np.testing.assert_array_equal(scores[0], expected)


@FUZZ
@given(json_values)
def test_scores_random_json(data):
    check_scores(data)


@FUZZ
@given(st.lists(st.one_of(unit, st.none()), min_size=C, max_size=C),
       st.integers(0, C - 1), numbers)
def test_scores_mutated(values, index, bad):
    classes = ['a', 'b', 'c']
    check_scores(dict(classes=classes, dice=values))
    values = list(values)
    values[index] = bad
    check_scores(dict(classes=classes, dice=values))
