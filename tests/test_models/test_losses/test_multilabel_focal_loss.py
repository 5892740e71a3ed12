# Copyright (c) mmseg_ext contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.models.losses import FocalLoss
from mmseg.registry import MODELS

import mmseg_ext  # noqa: F401


def build(**kwargs):
    return MODELS.build(dict(type='MultiLabelFocalLoss', **kwargs))


def random_case(seed=0, n=2, c=1, h=4, w=5, ignore_frac=0.2):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=gen) * 3
    target = torch.randint(0, 2, (n, c, h, w), generator=gen,
                           dtype=torch.uint8)
    target[torch.rand(n, c, h, w, generator=gen) < ignore_frac] = 255
    return logits, target


def test_registry_and_loss_name():
    loss = build()
    assert type(loss).__name__ == 'MultiLabelFocalLoss'
    assert loss.loss_name == 'loss_ml_focal'
    assert 'gamma=2.0' in repr(loss)


def test_hand_computed_values():
    # Logit 0 costs ln 2 and p_t = 0.5: focal = 0.25 ln 2; alpha scales
    # positives by alpha and negatives by 1 - alpha. A logit ln 3 on a
    # positive: p_t = 3/4, BCE ln(4/3), focal (1/4)^2 ln(4/3).
    logits = torch.tensor([[[[0.0, 0.0, math.log(3.0)]]]])
    target = torch.tensor([[[[1, 0, 1]]]], dtype=torch.uint8)
    f0 = 0.25 * math.log(2.0)
    f2 = (1 / 16) * math.log(4.0 / 3.0)
    assert build(alpha=None)(logits, target).item() == pytest.approx(
        (f0 + f0 + f2) / 3)
    assert build(alpha=0.25)(logits, target).item() == pytest.approx(
        (0.25 * f0 + 0.75 * f0 + 0.25 * f2) / 3)
    assert build(alpha=None, gamma=0.0)(logits, target).item() == \
        pytest.approx((2 * math.log(2.0) + math.log(4.0 / 3.0)) / 3)


def test_perfect_prediction_is_near_zero_and_wrong_is_large():
    target = torch.tensor([[[[1, 0], [0, 1]]]], dtype=torch.uint8)
    logits = (target.float() * 2 - 1) * 20
    assert build(alpha=None)(logits, target).item() < 1e-12
    assert build(alpha=None)(-logits, target).item() == pytest.approx(
        20.0, rel=1e-6)  # (1 - p_t) -> 1, BCE -> 20


def test_gamma_zero_is_bce_and_ignore_is_honoured():
    logits, target = random_case()
    valid = target != 255
    expected = F.binary_cross_entropy_with_logits(
        logits[valid], target[valid].float())
    got = build(gamma=0.0, alpha=None)(logits, target)
    torch.testing.assert_close(got, expected)
    # Same as the BCE loss of the package.
    bce = MODELS.build(dict(type='MultiLabelBCELoss'))(logits, target)
    torch.testing.assert_close(got, bce)


def test_binary_target_shapes_and_weights():
    logits, target = random_case(ignore_frac=0.0)
    loss = build()
    torch.testing.assert_close(loss(logits, target[:, 0]),
                               loss(logits, target))
    none = build(reduction='none')(logits, target)
    assert none.shape == logits.shape
    torch.testing.assert_close(none.sum(), build(reduction='sum')(logits,
                                                                  target))
    two = torch.cat([logits, logits], 1)
    two_t = torch.cat([target, target], 1)
    weighted = build(class_weight=[1.0, 3.0], alpha=[0.25, 0.5])(two, two_t)
    assert torch.isfinite(weighted)
    all_ignored = torch.full_like(target, 255)
    assert build()(logits, all_ignored).item() == 0.0


@pytest.mark.parametrize('kwargs, match', [
    (dict(gamma=-1.0), '`gamma` should be a number >= 0'),
    (dict(alpha=1.5), '`alpha` should be None, a number in'),
    (dict(loss_name='focal'), "starting with 'loss_'"),
])
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


def test_forward_validation():
    logits, target = random_case(c=2)
    with pytest.raises(ValueError, match='should have shape'):
        build()(logits, target[:, 0])
    bad = target.clone()
    bad[0, 0, 0, 0] = 2
    with pytest.raises(ValueError, match='should be in \\[0, 1\\]'):
        build()(logits, bad)


def test_mmseg_sigmoid_focal_loss_does_not_ignore_255():
    """Why this loss exists: mmseg's FocalLoss(use_sigmoid=True) trains on
    the 255 entries of (N, 1, H, W) targets (its valid mask is
    ``target.argmax(1) != 255``, always True for one channel)."""
    logits = torch.full((1, 1, 2, 2), 2.0)
    target = torch.ones((1, 1, 2, 2), dtype=torch.uint8)
    half = target.clone()
    half[..., 0] = 255
    mmseg_loss = FocalLoss(use_sigmoid=True)
    assert mmseg_loss(logits, half).item() != pytest.approx(
        mmseg_loss(logits, target).item())
    ours = build(alpha=0.5)
    assert ours(logits, half).item() == pytest.approx(
        ours(logits, target).item())
    with pytest.raises(ValueError):  # (N, H, W) with C = 1: shape error
        mmseg_loss(logits, target[:, 0].long())
