# Copyright (c) mmseg_ext contributors. All rights reserved.
"""ROI helpers: boxes of hand-built masks, margins, minimum size, clipping,
crops and exact paste-back."""
import numpy as np
import pytest

from mmseg_ext.datasets.generators.hand_bone import HAND_BONE_CLASSES
from mmseg_ext.utils.roi import (CARPAL_CLASS_IDS, crop_roi, jitter_box,
                                 paste_roi, roi_from_masks)


def _masks(c=3, h=20, w=30):
    return np.zeros((c, h, w), dtype=np.uint8)


def test_carpal_class_ids():
    assert [HAND_BONE_CLASSES[k] for k in CARPAL_CLASS_IDS] == [
        'Trapezium', 'Trapezoid', 'Capitate', 'Hamate', 'Scaphoid', 'Lunate',
        'Triquetrum', 'Pisiform'
    ]


def test_tight_box_of_union():
    masks = _masks()
    masks[0, 5:8, 10:12] = 1  # rows 5-7, cols 10-11
    masks[1, 9, 4] = 1
    masks[2, 0:20, 0:30] = 1  # not selected
    assert roi_from_masks(masks, [0], margin=0) == (10, 5, 12, 8)
    assert roi_from_masks(masks, [0, 1], margin=0) == (4, 5, 12, 10)
    assert roi_from_masks(masks.astype(bool), (1, 0), margin=0) == \
        (4, 5, 12, 10)


def test_absent_classes_and_ignore_value():
    masks = _masks()
    masks[2] = 1
    assert roi_from_masks(masks, [0, 1]) is None
    masks[0] = 255  # ignored pixels are not part of the region
    assert roi_from_masks(masks, [0, 1]) is None


@pytest.mark.parametrize('margin, expected', [
    (2, (8, 8, 16, 14)),  # pixels
    (0.25, (9, 9, 15, 13)),  # w=4 -> 1 px, h=2 -> 0.5 rounds up to 1 px
    (0.5, (8, 9, 16, 13)),  # w -> 2 px, h -> 1 px
])
def test_margin(margin, expected):
    masks = _masks()
    masks[1, 10:12, 10:14] = 1  # x 10..13, y 10..11
    assert roi_from_masks(masks, [1], margin=margin) == expected


def test_clipped_to_image():
    masks = _masks()
    masks[0, 0:3, 27:30] = 1
    assert roi_from_masks(masks, [0], margin=5) == (22, 0, 30, 8)


def test_min_size_grows_around_centre_and_shifts_at_border():
    masks = _masks()
    masks[0, 10:12, 14:16] = 1
    assert roi_from_masks(masks, [0], margin=0, min_size=6) == \
        (12, 8, 18, 14)
    masks = _masks()
    masks[0, 0:2, 0:2] = 1
    assert roi_from_masks(masks, [0], margin=0, min_size=6) == (0, 0, 6, 6)
    # larger than the image: the whole side
    assert roi_from_masks(masks, [0], margin=0, min_size=50) == \
        (0, 0, 30, 20)


@pytest.mark.parametrize('kwargs, match', [
    (dict(class_ids=[3]), r'`class_ids` should hold ints in \[0, 3\)'),
    (dict(class_ids=[]), '`class_ids` should be a non-empty'),
    (dict(class_ids=1), '`class_ids` should be a non-empty'),
    (dict(class_ids=[0, 0]), 'should not repeat'),
    (dict(class_ids=[0], margin=1.5), r'should be in \[0, 1\)'),
    (dict(class_ids=[0], margin=-1), '`margin` should be'),
    (dict(class_ids=[0], min_size=-1), '`min_size` should be'),
])
def test_roi_from_masks_errors(kwargs, match):
    masks = _masks()
    masks[0, 1, 1] = 1
    with pytest.raises(ValueError, match=match):
        roi_from_masks(masks, **kwargs)


def test_roi_from_masks_shape_error():
    with pytest.raises(ValueError, match=r'should have shape \(C, H, W\)'):
        roi_from_masks(np.zeros((4, 4)), [0])


def test_crop_roi():
    img = np.arange(20 * 30 * 3).reshape(20, 30, 3)
    crop = crop_roi(img, (4, 2, 10, 5))
    assert crop.shape == (3, 6, 3)
    np.testing.assert_array_equal(crop, img[2:5, 4:10])
    masks = np.arange(2 * 20 * 30).reshape(2, 20, 30)
    np.testing.assert_array_equal(
        crop_roi(masks, (4, 2, 10, 5), channels_first=True),
        masks[:, 2:5, 4:10])
    with pytest.raises(ValueError, match='`box` should satisfy'):
        crop_roi(img, (4, 2, 31, 5))
    with pytest.raises(ValueError, match='`box` should satisfy'):
        crop_roi(img, (4, 5, 10, 5))
    with pytest.raises(ValueError, match=r'\(x1, y1, x2, y2\) ints'):
        crop_roi(img, (1, 2, 3))


@pytest.mark.parametrize('outside', ['keep', 'clear'])
def test_paste_back_exact(outside):
    rng = np.random.default_rng(0)
    full = rng.integers(0, 2, (5, 12, 16), dtype=np.uint8)
    box = (3, 2, 11, 9)
    roi = rng.integers(0, 2, (2, 7, 8), dtype=np.uint8)
    out = paste_roi(full, roi, box, [4, 1], outside=outside)
    assert out.dtype == np.uint8 and out is not full
    # untouched classes
    np.testing.assert_array_equal(out[[0, 2, 3]], full[[0, 2, 3]])
    # inside the box: the crop's masks, in class_ids order
    np.testing.assert_array_equal(out[4, 2:9, 3:11], roi[0])
    np.testing.assert_array_equal(out[1, 2:9, 3:11], roi[1])
    # outside the box: kept or cleared
    inside = np.zeros((12, 16), bool)
    inside[2:9, 3:11] = True
    for k in (1, 4):
        expected = full[k][~inside] if outside == 'keep' else 0
        np.testing.assert_array_equal(out[k][~inside], expected)
    # crop -> paste of the same masks gives the input back
    same = paste_roi(full, crop_roi(full, box, channels_first=True), box,
                     [1, 4], outside='keep')
    np.testing.assert_array_equal(same, full)


def test_paste_with_all_classes_and_bool():
    full = np.zeros((4, 6, 6), bool)
    roi = np.zeros((4, 2, 3), bool)
    roi[2] = True
    roi[0] = True  # not in class_ids: not pasted
    out = paste_roi(full, roi, (1, 1, 4, 3), [2, 3])
    assert out.dtype == np.bool_
    assert out[2].sum() == 6 and out[2, 1:3, 1:4].all()
    assert out[0].sum() == 0 and out[3].sum() == 0


def test_paste_errors():
    full = _masks(3, 6, 6)
    with pytest.raises(ValueError, match=r"`roi_masks` should have shape"):
        paste_roi(full, np.zeros((2, 3, 3)), (0, 0, 2, 2), [0])
    with pytest.raises(ValueError, match=r"`roi_masks` should have shape"):
        paste_roi(full, np.zeros((2, 2, 2)), (0, 0, 2, 2), [0])
    with pytest.raises(ValueError, match="`outside` should be"):
        paste_roi(full, np.zeros((1, 2, 2)), (0, 0, 2, 2), [0], 'drop')
    with pytest.raises(ValueError, match='`full_masks` should have shape'):
        paste_roi(full[0], np.zeros((1, 2, 2)), (0, 0, 2, 2), [0])


def test_jitter_box_keeps_region_and_stays_inside():
    rng = np.random.default_rng(0)
    tight = (10, 8, 14, 12)
    assert jitter_box((8, 6, 16, 14), (20, 30), 0.0, rng) == (8, 6, 16, 14)
    seen = set()
    for _ in range(50):
        x1, y1, x2, y2 = jitter_box((8, 6, 16, 14), (20, 30), 0.5, rng,
                                    keep=tight)
        assert 0 <= x1 <= 10 and 0 <= y1 <= 8
        assert 14 <= x2 <= 30 and 12 <= y2 <= 20
        seen.add((x1, y1, x2, y2))
    assert len(seen) > 10
    with pytest.raises(ValueError, match='`jitter` should be'):
        jitter_box((8, 6, 16, 14), (20, 30), 1.0, rng)
