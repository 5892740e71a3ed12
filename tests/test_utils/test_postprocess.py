# Copyright (c) mmseg_ext contributors. All rights reserved.
import numpy as np
import pytest

from mmseg_ext.utils.postprocess import apply_postprocess, plan_by_index


def test_plan_by_index():
    plan = {'b': ['lcc'], 'c': ['min_area', 3]}
    assert plan_by_index(plan, ['a', 'b', 'c']) == {1: ['lcc'],
                                                    2: ['min_area', 3]}
    assert plan_by_index({}, ['a']) == {}
    with pytest.raises(ValueError, match=r"names classes \['x'\]"):
        plan_by_index({'x': ['lcc']}, ['a', 'b'])


def test_apply_postprocess_by_name():
    masks = np.zeros((2, 5, 5), np.uint8)
    masks[:, 0, 0] = 1
    masks[:, 2:, 2:] = 1
    out = apply_postprocess(masks, {'b': ['lcc']}, ['a', 'b'])
    np.testing.assert_array_equal(out[0], masks[0])
    assert out[1].sum() == 9 and out[1, 0, 0] == 0
