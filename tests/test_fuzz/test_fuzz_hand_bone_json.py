# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Fuzzing the hand-bone polygon JSON reader and the rasterisation of one
file: random and mutated annotation files either give the polygons (and
the self-intersection warnings) of a pure-Python reference, or raise
HandBoneAnnotationError (an InputError) naming the file; never another
exception."""
import json
import math
import os.path as osp
import tempfile
from fractions import Fraction

import cv2
import numpy as np
import pytest

from mmseg_ext.datasets.converters.hand_bone import (MAX_COORD,
                                                     HandBoneAnnotationError,
                                                     rasterize_polygons,
                                                     read_hand_bone_json)
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.multilabel import pack_multilabel

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=80, deadline=None, derandomize=True)
CLASSES = ('a', 'b', 'c')


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def ref_crosses(pts):
    """Whether two non-adjacent edges of the closed polygon meet."""
    p = [pt for i, pt in enumerate(pts) if pt != pts[(i + 1) % len(pts)]]
    n = len(p)
    if n < 4:
        return False

    def orient(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return (v > 0) - (v < 0)

    def on_box(a, b, c, d):
        return all(min(a[k], b[k]) <= max(c[k], d[k]) and
                   min(c[k], d[k]) <= max(a[k], b[k]) for k in (0, 1))

    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            a, b, c, d = p[i], p[(i + 1) % n], p[j], p[(j + 1) % n]
            if orient(a, b, c) * orient(a, b, d) <= 0 and \
                    orient(c, d, a) * orient(c, d, b) <= 0 and \
                    on_box(a, b, c, d):
                return True
    return False


def ref_read(data, shape):
    """``{label: [(x, y), ...]}`` and the labels whose polygon crosses
    itself, or None if the file is bad."""
    h, w = shape
    if not isinstance(data, dict) or not isinstance(
            data.get('annotations'), list):
        return None
    polys, crossing = {}, set()
    for ann in data['annotations']:
        if not isinstance(ann, dict) or 'label' not in ann or \
                'points' not in ann:
            return None
        label, points = ann['label'], ann['points']
        if not isinstance(label, str) or label not in CLASSES or \
                label in polys:
            return None
        if not isinstance(points, list) or not all(
                isinstance(p, list) and len(p) == 2 and
                all(_is_number(v) for v in p) for p in points):
            return None
        if not all(math.isfinite(float(v)) for p in points for v in p):
            return None
        if len(points) < 3 or any(abs(v) > MAX_COORD
                                  for p in points for v in p):
            return None
        q = [(Fraction(x), Fraction(y)) for x, y in points]
        area = sum(q[i][0] * q[(i + 1) % len(q)][1] -
                   q[i][1] * q[(i + 1) % len(q)][0] for i in range(len(q)))
        if area == 0:
            return None
        xs, ys = [x for x, _ in points], [y for _, y in points]
        if max(xs) < 0 or max(ys) < 0 or min(xs) > w - 1 or min(ys) > h - 1:
            return None
        rounded = [(round(x), round(y)) for x, y in points]
        polys[label] = rounded
        if ref_crosses(rounded):
            crossing.add(label)
    return polys, crossing


# Exact in float64 (multiples of 1/4), so the area test cannot differ by
# rounding between the reader and the reference.
coord = st.one_of(
    st.integers(-6, 30),
    st.integers(-24, 120).map(lambda v: v / 4),
    st.sampled_from([float('nan'), float('inf'), -float('inf'), 3e9,
                     MAX_COORD + 1, -MAX_COORD, True, '5', None]))
point = st.one_of(
    st.lists(coord, min_size=2, max_size=2),
    st.lists(coord, min_size=2, max_size=2),
    st.lists(coord, min_size=2, max_size=2),
    st.lists(coord, min_size=1, max_size=3),
    st.sampled_from([5, 'x', {'x': 1}]))
points = st.one_of(st.lists(point, max_size=7),
                   st.sampled_from(['M 1 1', None, {'0': [1, 1]}]))
label = st.one_of(
    st.sampled_from(CLASSES), st.sampled_from(CLASSES),
    st.sampled_from(['A', 'Radius', '', 7, None, ['a'], {'a': 1}]))
annotation = st.one_of(
    st.fixed_dictionaries({'label': label, 'points': points}),
    st.fixed_dictionaries({'label': label}),
    st.sampled_from([None, 'a', [1, 2]]))
document = st.one_of(
    st.fixed_dictionaries({'annotations': st.lists(annotation,
                                                   max_size=4)}),
    st.sampled_from([[], {}, {'annotations': {}}, 'x', 3]))


good_coord = st.one_of(st.integers(-4, 28),
                      st.integers(-16, 112).map(lambda v: v / 4))


@st.composite
def mutated_valid_document(draw):
    """A valid file (distinct labels, 3-7 numeric points each), then up
    to two mutations."""
    labels = draw(st.permutations(CLASSES))[:draw(st.integers(1, 3))]
    anns = [{'label': name,
             'points': draw(st.lists(st.lists(good_coord, min_size=2,
                                              max_size=2),
                                     min_size=3, max_size=7))}
            for name in labels]
    for _ in range(draw(st.integers(0, 2))):
        ann = anns[draw(st.integers(0, len(anns) - 1))]
        kind = draw(st.sampled_from(['coord', 'label', 'drop', 'truncate',
                                     'repeat']))
        if kind == 'coord' and isinstance(ann.get('points'), list) and \
                ann['points']:
            pt = ann['points'][draw(st.integers(0, len(ann['points']) - 1))]
            pt[draw(st.integers(0, 1))] = draw(coord)
        elif kind == 'label':
            ann['label'] = draw(label)
        elif kind == 'drop':
            ann.pop(draw(st.sampled_from(['label', 'points'])), None)
        elif kind == 'truncate' and isinstance(ann.get('points'), list):
            ann['points'] = ann['points'][:draw(st.integers(0, 3))]
        elif kind == 'repeat':
            anns.append(json.loads(json.dumps(ann)))
    return {'annotations': anns}


@FUZZ
@given(st.one_of(mutated_valid_document(), document),
       st.tuples(st.integers(4, 24), st.integers(4, 24)))
def test_json_reader_matches_the_reference_or_raises(data, shape):
    expected = ref_read(data, shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'a.json')
        with open(path, 'w') as f:
            json.dump(data, f)
        try:
            polys, warnings = read_hand_bone_json(path, shape, CLASSES)
            error = None
        except HandBoneAnnotationError as e:
            error = e
    if expected is None:
        assert error is not None, data
        assert isinstance(error, InputError) and error.path == path
        assert str(error).startswith(path)
        return
    assert error is None, (data, str(error))
    ref_polys, ref_crossing = expected
    assert {k: v.tolist() for k, v in polys.items()} == {
        k: [list(p) for p in v] for k, v in ref_polys.items()}
    assert all(v.dtype == np.int32 for v in polys.values())
    crossing = {k for k in CLASSES
                if any(f"({k!r}): the polygon crosses itself" in m
                       for m in warnings)}
    assert crossing == ref_crossing
    # one file's label: each class filled over the whole image, packed
    h, w = shape
    masks = np.zeros((len(CLASSES), h, w), np.uint8)
    for k, name in enumerate(CLASSES):
        if name in polys:
            cv2.fillPoly(masks[k], [polys[name]], 1)
    np.testing.assert_array_equal(
        rasterize_polygons(polys, shape, CLASSES), pack_multilabel(masks))


@FUZZ
@given(st.binary(max_size=40), st.sampled_from([b'', b'{"annotations": [']))
def test_random_bytes_raise_input_error(data, prefix):
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'a.json')
        with open(path, 'wb') as f:
            f.write(prefix + data)
        try:
            read_hand_bone_json(path, (8, 8), CLASSES)
        except HandBoneAnnotationError as e:
            assert e.path == path
