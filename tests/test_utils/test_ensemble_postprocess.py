# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Ensemble strategies, threshold search and post-processing selection."""
import numpy as np
import pytest

from mmseg_ext.utils.ensemble import (ThresholdSearch, classwise_select,
                                      dequantize_probs, hard_vote,
                                      quantize_probs, soft_vote)
from mmseg_ext.utils.postprocess import (apply_postprocess, dice_per_class,
                                         keep_largest_component,
                                         remove_small_components,
                                         select_postprocess)


def _members():
    # 3 members, 2 classes, 1 x 2 pixels.
    a = np.array([[[0.9, 0.2]], [[0.1, 0.6]]], np.float32)
    b = np.array([[[0.7, 0.4]], [[0.3, 0.2]]], np.float32)
    c = np.array([[[0.2, 0.9]], [[0.5, 0.1]]], np.float32)
    return [a, b, c]


def test_soft_vote_mean_and_weights():
    a, b, c = _members()
    np.testing.assert_allclose(soft_vote([a, b, c]), (a + b + c) / 3,
                               rtol=1e-6)
    # per-member weights 2:1:1
    np.testing.assert_allclose(
        soft_vote([a, b, c], np.array([2, 1, 1])), (2 * a + b + c) / 4,
        rtol=1e-6)
    # per-class table: class 0 only from a, class 1 only from c
    w = np.array([[1, 0], [0, 0], [0, 1]])
    out = soft_vote([a, b, c], w)
    np.testing.assert_allclose(out[0], a[0])
    np.testing.assert_allclose(out[1], c[1])


def test_soft_vote_uint8_members_and_errors():
    a, b, _ = _members()
    out = soft_vote([quantize_probs(a), quantize_probs(b)])
    np.testing.assert_allclose(out, (a + b) / 2, atol=1 / 255)
    with pytest.raises(ValueError, match='same shape'):
        soft_vote([a, a[:1]])
    with pytest.raises(ValueError, match=r'\(E,\)'):
        soft_vote([a, b], np.ones(3))
    with pytest.raises(ValueError, match='positive'):
        soft_vote([a, b], np.array([[1, 0], [1, 0]]))


def test_hard_vote_k_of_n():
    a, b, c = _members()
    # > 0.5: a: [[1,0]],[[0,1]]; b: [[1,0]],[[0,0]]; c: [[0,1]],[[0,0]]
    np.testing.assert_array_equal(
        hard_vote([a, b, c]), [[[1, 0]], [[0, 0]]])  # majority (2 of 3)
    np.testing.assert_array_equal(
        hard_vote([a, b, c], k=1), [[[1, 1]], [[0, 1]]])
    np.testing.assert_array_equal(
        hard_vote([a, b, c], k=3), [[[0, 0]], [[0, 0]]])
    with pytest.raises(ValueError, match='`k`'):
        hard_vote([a, b, c], k=4)


def test_classwise_select_takes_best_member_per_class():
    a, b, c = _members()
    scores = np.array([[0.9, 0.1], [0.5, 0.8], [0.2, 0.3]])
    out = classwise_select([a, b, c], scores)
    np.testing.assert_array_equal(out[0], a[0])
    np.testing.assert_array_equal(out[1], b[1])


def test_quantize_round_trip():
    p = np.linspace(0, 1, 256, dtype=np.float32)
    assert np.abs(dequantize_probs(quantize_probs(p)) - p).max() <= 0.5 / 255


def test_threshold_search_finds_separating_threshold():
    search = ThresholdSearch(thresholds=[0.2, 0.5, 0.8])
    probs = np.array([[[0.3, 0.6, 0.9]], [[0.1, 0.1, 0.9]]], np.float32)
    gt = np.array([[[0, 1, 1]], [[0, 0, 1]]], np.uint8)
    search.update(probs, gt)
    thr, dice = search.best()
    # class 0: 0.5 separates (0.3 | 0.6, 0.9) -> Dice 1; 0.2 -> 4/5
    assert thr[0] == pytest.approx(0.5)
    assert dice[0] == pytest.approx(1.0)
    mean = search.mean_dice()
    assert mean[0, 0] == pytest.approx((2 * 2 + 1e-4) / (3 + 2 + 1e-4))
    # class 1: 0.2, 0.5 and 0.8 all give Dice 1; the first is kept
    assert dice[1] == pytest.approx(1.0)


def test_threshold_search_ignores_ignored_pixels():
    search = ThresholdSearch(thresholds=[0.5])
    probs = np.array([[[0.9, 0.9]]], np.float32)
    gt = np.array([[[1, 255]]], np.uint8)
    search.update(probs, gt)
    assert search.mean_dice()[0, 0] == pytest.approx(1.0)


def _blobs():
    m = np.zeros((20, 20), np.uint8)
    m[2:10, 2:10] = 1  # 64 px
    m[15:17, 15:17] = 1  # 4 px
    return m


def test_components():
    m = _blobs()
    assert keep_largest_component(m).sum() == 64
    assert remove_small_components(m, 5).sum() == 64
    assert remove_small_components(m, 4).sum() == 68
    assert keep_largest_component(np.zeros((3, 3))).sum() == 0


def test_dice_per_class_convention():
    pred = np.array([[[1, 1, 0, 0]], [[0, 0, 0, 0]]])
    gt = np.array([[[1, 0, 0, 255]], [[0, 0, 0, 0]]])
    d = dice_per_class(pred, gt)
    assert d[0] == pytest.approx((2 + 1e-4) / (3 + 1e-4))
    assert d[1] == 1.0  # both empty


def test_select_postprocess_keeps_only_helpful_ops():
    classes = ['speckled', 'split']
    truth_a = _blobs().copy()
    truth_a[15:17, 15:17] = 0  # truth: only the big blob
    pred_a = _blobs()  # prediction has a false small blob
    truth_b = _blobs()  # truth: both blobs are real
    pred = np.stack([pred_a, _blobs()])
    gt = np.stack([truth_a, truth_b])
    plan, report = select_postprocess([(pred, gt)], classes,
                                      candidates=[('lcc', ),
                                                  ('min_area', 10)])
    # removing the small blob helps class 0, hurts class 1
    assert plan['speckled'] in (['lcc'], ['min_area', 10])
    assert 'split' not in plan
    assert report['speckled']['none'] < report['speckled']['lcc'] == 1.0
    out = apply_postprocess(pred, plan, classes)
    assert out[0].sum() == 64 and out[1].sum() == 68
    with pytest.raises(ValueError, match='not in'):
        apply_postprocess(pred, {'ghost': ['lcc']}, classes)


def test_threshold_search_uint8_decides_like_float():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    gt = (rng.random((3, 16, 16)) > 0.5).astype(np.uint8)
    gt[0, :2] = 255
    thresholds = [0.2, 0.5, 128 / 255, 0.8]
    a, b = ThresholdSearch(thresholds), ThresholdSearch(thresholds)
    a.update(q, gt)
    b.update(dequantize_probs(q), gt)
    np.testing.assert_array_equal(a.mean_dice(), b.mean_dice())
