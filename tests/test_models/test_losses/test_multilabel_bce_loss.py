# Copyright (c) mmseg_ext contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

import mmseg_ext  # noqa: F401


def build(**kwargs):
    return MODELS.build(dict(type='MultiLabelBCELoss', **kwargs))


def random_case(seed=0, n=2, c=3, h=4, w=5, ignore_frac=0.2):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=gen) * 3
    target = torch.randint(0, 2, (n, c, h, w), generator=gen)
    target[torch.rand(n, c, h, w, generator=gen) < ignore_frac] = 255
    return logits, target


def test_registry_and_loss_name():
    loss = build()
    assert type(loss).__name__ == 'MultiLabelBCELoss'
    assert loss.loss_name == 'loss_ml_bce'
    assert build(loss_name='loss_bce_aux').loss_name == 'loss_bce_aux'


def test_matches_torch_without_ignore():
    logits, target = random_case(ignore_frac=0.0)
    expected = F.binary_cross_entropy_with_logits(logits, target.float())
    torch.testing.assert_close(build()(logits, target), expected)
    torch.testing.assert_close(
        build(reduction='sum')(logits, target),
        F.binary_cross_entropy_with_logits(
            logits, target.float(), reduction='sum'))


def test_hand_computed_values():
    # (N, C, H, W) = (1, 2, 1, 2); logits 0 cost ln 2, a logit ln 3 on a
    # negative costs ln 4, on a positive ln(4 / 3).
    logits = torch.tensor([[[[0.0, math.log(3.0)]], [[math.log(3.0), 0.0]]]])
    target = torch.tensor([[[[1, 0]], [[1, 255]]]])
    l00, l01, l10 = math.log(2.0), math.log(4.0), math.log(4.0 / 3.0)
    assert build()(logits, target).item() == pytest.approx(
        (l00 + l01 + l10) / 3)
    weighted = build(class_weight=[1.0, 3.0])(logits, target)
    assert weighted.item() == pytest.approx((l00 + l01 + 3 * l10) / 5)
    none = build(reduction='none')(logits, target)
    assert none.shape == (1, 2, 1, 2) and none[0, 1, 0, 1].item() == 0.0
    # pos_weight scales the positive term: class 1 positive costs 2 * l10.
    pos = build(pos_weight=[1.0, 2.0])(logits, target)
    assert pos.item() == pytest.approx((l00 + l01 + 2 * l10) / 3)


def test_pos_weight_matches_torch():
    logits, target = random_case(seed=1, ignore_frac=0.0)
    pos_weight = torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    expected = F.binary_cross_entropy_with_logits(
        logits, target.float(), pos_weight=pos_weight)
    torch.testing.assert_close(
        build(pos_weight=[1.0, 2.0, 0.5])(logits, target), expected)


def test_zero_class_weight_removes_class():
    logits, target = random_case(seed=2)
    weighted = build(class_weight=[1.0, 0.0, 2.0])(logits, target)
    kept = [0, 2]
    expected = build(class_weight=[1.0, 2.0])(logits[:, kept], target[:,
                                                                      kept])
    torch.testing.assert_close(weighted, expected)


def test_ignored_entries_change_nothing():
    logits, target = random_case(seed=3, ignore_frac=0.0)
    extra = torch.randn(2, 3, 4, 2) * 10
    padded = build()(
        torch.cat([logits, extra], dim=3),
        torch.cat([target, torch.full((2, 3, 4, 2), 255)], dim=3))
    torch.testing.assert_close(build()(logits, target), padded)


def test_binary_targets_without_channel_dim():
    logits, target = random_case(seed=4, c=1)
    loss = build()
    torch.testing.assert_close(
        loss(logits, target[:, 0]), loss(logits, target))


def test_pixel_weight_and_avg_factor():
    logits, target = random_case(seed=5, ignore_frac=0.0)
    weight = torch.rand(2, 4, 5)
    elementwise = F.binary_cross_entropy_with_logits(
        logits, target.float(), reduction='none')
    expected = (elementwise * weight[:, None]).sum() / elementwise.numel()
    torch.testing.assert_close(build()(logits, target, weight=weight),
                               expected)
    torch.testing.assert_close(
        build()(logits, target, avg_factor=7.0),
        elementwise.sum() / 7.0)


def test_forward_ignore_index_takes_precedence():
    logits, target = random_case(seed=6, ignore_frac=0.0)
    target[:, 0] = 9
    loss = build(ignore_index=9)
    torch.testing.assert_close(
        loss(logits, target),
        F.binary_cross_entropy_with_logits(logits[:, 1:],
                                           target[:, 1:].float()))
    with pytest.raises(ValueError, match='should be in \\[0, 1\\]'):
        loss(logits, target, ignore_index=255)


def test_all_ignored_is_finite_zero():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 3, 4, 4), 255)
    loss = build(class_weight=[1.0, 2.0, 3.0])(logits, target)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_logits(dtype):
    logits, target = random_case(seed=7)
    logits[0, 0, 0, 0] = 80.0
    half = logits.to(dtype).requires_grad_()
    loss = build(pos_weight=[1.0, 2.0, 3.0])(half, target)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(half.grad).all()


def test_bad_loss_name_raises():
    with pytest.raises(ValueError, match='`loss_name` should be'):
        build(loss_name='bce')


def test_bad_reduction_raises():
    with pytest.raises(ValueError, match='`reduction` should be'):
        build(reduction='elementwise')


def test_negative_pos_weight_raises():
    with pytest.raises(ValueError, match='`pos_weight` should hold'):
        build(pos_weight=[1.0, -2.0])


def test_class_weight_wrong_length_raises():
    logits, target = random_case()
    with pytest.raises(
            ValueError,
            match='`class_weight` should have C=3 entries, but got 2'):
        build(class_weight=[1.0, 1.0])(logits, target)


def test_pos_weight_wrong_length_raises():
    logits, target = random_case()
    with pytest.raises(ValueError, match='`pos_weight` should have C=3'):
        build(pos_weight=[1.0])(logits, target)


def test_target_shape_mismatch_raises():
    logits, target = random_case()
    with pytest.raises(ValueError, match='`seg_label` should have shape'):
        build()(logits, target[:, 0])


def test_target_out_of_range_raises():
    logits, target = random_case()
    target[0, 0, 0, 0] = 3
    with pytest.raises(ValueError, match='should be in \\[0, 1\\]'):
        build()(logits, target)
