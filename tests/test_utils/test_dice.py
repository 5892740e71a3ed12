# Copyright (c) mmseg_ext contributors. All rights reserved.
import numpy as np
import pytest
import torch

from mmseg_ext.evaluation.metrics.building_dice_metric import building_counts
from mmseg_ext.evaluation.metrics.multilabel_dice_metric import (
    dice_iou_scores, multilabel_counts)
from mmseg_ext.utils.dice import (DICE_EPS, dice_from_counts, image_counts,
                                  iou_from_counts)
from mmseg_ext.utils.postprocess import dice_per_class
from mmseg_ext.utils.threshold_search import competition_dice, mean_dice


def test_dice_exact_values():
    # perfect, fully wrong, empty/empty, empty truth with a prediction
    inter = np.array([4, 0, 0, 0])
    x = np.array([4, 3, 0, 2])
    y = np.array([4, 3, 0, 0])
    assert dice_from_counts(inter, x, y, eps=0).tolist() == [1, 0, 1, 0]
    out = dice_from_counts(inter, x, y, eps=0, empty='skip')
    assert out[:2].tolist() == [1, 0] and np.isnan(out[2]) and out[3] == 0
    smooth = dice_from_counts(inter, x, y)
    assert smooth[2] == 1.0
    assert smooth[1] == pytest.approx(DICE_EPS / (6 + DICE_EPS))
    assert float(dice_from_counts(3, 4, 4, eps=0)) == 0.75
    assert float(iou_from_counts(3, 4, 4, eps=0)) == 0.6
    assert float(iou_from_counts(0, 0, 0)) == 1.0
    assert np.isnan(iou_from_counts(0, 0, 0, eps=0, empty='skip'))


@pytest.mark.parametrize('kwargs', [dict(empty='zero'), dict(eps=-1),
                                    dict(eps=True)])
def test_dice_bad_rule(kwargs):
    with pytest.raises(ValueError):
        dice_from_counts(1, 1, 1, **kwargs)


def test_dice_bit_identical_to_the_old_formulas():
    """Every copy this helper replaced gives the same float64 values."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, (200, 7))
    y = rng.integers(0, 50, (200, 7))
    x[:20], y[:20] = 0, 0
    inter = np.minimum(x, y) // 2
    eps = 1e-4
    old = (2 * inter + eps) / (x + y + eps)
    np.testing.assert_array_equal(dice_from_counts(inter, x, y, eps), old)
    old_iou = (inter + eps) / (x + y - inter + eps)
    np.testing.assert_array_equal(iou_from_counts(inter, x, y, eps), old_iou)
    # building: plain mean (empty/empty = 1) and the competition mean
    # (empty/empty skipped), as threshold_search computed them before
    c = np.stack([inter[:, 0], x[:, 0], y[:, 0]], 1).astype(np.float64)
    total = c[:, 1] + c[:, 2]
    plain = np.where(total > 0, 2 * c[:, 0] / np.maximum(total, 1), 1.0)
    assert mean_dice(c) == float(plain.mean())
    scored = total > 0
    assert competition_dice(c) == (float(
        (2 * c[scored, 0] / total[scored]).mean()), int(scored.sum()))


def test_image_counts_numpy_and_torch_agree():
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 2, (3, 6, 5)).astype(np.uint8)
    gt = rng.choice(np.array([0, 1, 255], np.uint8), (3, 6, 5))
    counts = image_counts(pred, gt)
    assert counts.shape == (3, 3) and counts.dtype == np.int64
    valid = gt != 255
    expected = [[((pred == 1) & (gt == 1)).reshape(3, -1).sum(1)],
                [((pred == 1) & valid).reshape(3, -1).sum(1)],
                [(gt == 1).reshape(3, -1).sum(1)]]
    np.testing.assert_array_equal(counts, np.concatenate(expected))
    np.testing.assert_array_equal(
        image_counts(torch.from_numpy(pred), torch.from_numpy(gt)), counts)
    np.testing.assert_array_equal(
        multilabel_counts(torch.from_numpy(pred), torch.from_numpy(gt)),
        counts)
    # ignore_index=None: 255 counts as "not 1" in Y, nothing excluded
    none = image_counts(pred, gt, ignore_index=None)
    assert none[1].tolist() == pred.reshape(3, -1).sum(1).tolist()
    # the copies that route through it
    np.testing.assert_array_equal(
        dice_per_class(pred, gt), dice_iou_scores(counts[None])[0][0])
    assert building_counts(torch.from_numpy(pred), torch.from_numpy(gt),
                           class_index=2) == tuple(counts[:, 2])


def test_image_counts_shape_mismatch():
    with pytest.raises(ValueError, match='same|both have shape'):
        image_counts(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError):
        image_counts(np.zeros(3), np.zeros(3))


def test_dice_on_tensors_stays_on_device_and_matches_numpy():
    inter = torch.tensor([4., 0., 0.])
    x = torch.tensor([4., 3., 0.])
    y = torch.tensor([4., 3., 0.])
    out = dice_from_counts(inter, x, y)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert torch.equal(out, (2 * inter + 1e-4) / (x + y + 1e-4))
    skip = dice_from_counts(inter.long(), x.long(), y.long(), eps=0,
                            empty='skip')
    assert skip.dtype == torch.float32 and torch.isnan(skip[2])
    np.testing.assert_allclose(
        skip[:2].numpy(), dice_from_counts([4, 0], [4, 3], [4, 3], eps=0))
    iou = iou_from_counts(inter, x, y, eps=0)
    assert iou.tolist() == [1.0, 0.0, 1.0]
