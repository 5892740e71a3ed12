# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Signed distance maps: hand-computed maps, Kervadec et al.'s scipy
reference on random masks (exact and clipped), empty / full / ignored."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import distance_transform_edt

from mmseg_ext.utils.distance_maps import (signed_distance_map,
                                           signed_distance_maps)

R2 = math.sqrt(2)


def _kervadec(mask):
    """``one_hot2dist`` of Kervadec et al.'s code (scipy), one class."""
    if not mask.any() or mask.all():
        return np.zeros(mask.shape)
    neg = ~mask
    return distance_transform_edt(neg) * neg - (
        distance_transform_edt(mask) - 1) * mask


def test_hand_computed_block():
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    expected = [[R2, 1, 1, 1, R2], [1, 0, 0, 0, 1], [1, 0, -1, 0, 1],
                [1, 0, 0, 0, 1], [R2, 1, 1, 1, R2]]
    assert signed_distance_map(mask) == pytest.approx(np.array(expected))
    # clipped at 1: only the corners change
    clipped = np.clip(np.array(expected), -1, 1)
    assert signed_distance_map(mask, max_distance=1) == \
        pytest.approx(clipped)


def test_mask_at_the_border_is_not_a_boundary():
    # the map edge is no boundary (as scipy's EDT): [T, T, T, F]
    mask = np.array([[True, True, True, False]])
    assert signed_distance_map(mask).tolist() == [[-2.0, -1.0, 0.0, 1.0]]


@pytest.mark.parametrize('fill', [False, True])
def test_empty_and_full_masks_are_zero(fill):
    mask = np.full((4, 6), fill)
    assert not signed_distance_map(mask).any()


@st.composite
def _masks(draw):
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    bits = draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    return np.array(bits, bool).reshape(h, w)


@settings(max_examples=60, deadline=None)
@given(mask=_masks(), max_distance=st.one_of(st.none(), st.integers(1, 6)))
def test_matches_kervadec_reference(mask, max_distance):
    ref = _kervadec(mask)
    if max_distance is not None:
        ref = np.clip(ref, -max_distance, max_distance)
    assert np.allclose(signed_distance_map(mask, max_distance), ref,
                       atol=1e-5)


def test_several_classes_with_ignored_pixels():
    masks = np.zeros((3, 1, 5), bool)
    masks[0, 0, 1:4] = True  # [F, T, T, T, F]
    masks[1, 0, :] = True  # everywhere: no boundary
    valid = np.array([[True, True, True, True, False]])
    out = signed_distance_maps(masks, valid)
    assert out.dtype == np.float16 and out.shape == (3, 1, 5)
    # class 0: the ignored pixel is 0 (and outside for the distances)
    assert out[0].tolist() == [[1.0, 0.0, -1.0, 0.0, 0.0]]
    # class 1 covers the 4 valid pixels only: ignored counts as outside
    assert out[1].tolist() == [[-3.0, -2.0, -1.0, 0.0, 0.0]]
    assert not out[2].any()  # empty class
