# Copyright (c) mmseg_ext contributors. All rights reserved.
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmseg.models.losses import CrossEntropyLoss
from mmseg.registry import MODELS

import mmseg_ext  # noqa: F401


def build(**kwargs):
    return MODELS.build(dict(type='SoftmaxFocalLoss', **kwargs))


def random_case(seed=0, n=2, c=4, h=5, w=6, ignore_frac=0.2):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=gen) * 3
    label = torch.randint(0, c, (n, h, w), generator=gen)
    ignored = torch.rand(n, h, w, generator=gen) < ignore_frac
    label[ignored] = 255
    return logits, label


def test_registry_and_loss_name():
    loss = build()
    assert type(loss).__name__ == 'SoftmaxFocalLoss'
    assert loss.loss_name == 'loss_focal_softmax'
    assert build(loss_name='loss_focal_aux').loss_name == 'loss_focal_aux'
    assert loss.class_weight is None and loss.gamma == 2.0


@pytest.mark.parametrize('class_weight', [None, [0.5, 2.0, 1.0, 3.0]])
def test_gamma_zero_equals_cross_entropy(class_weight):
    logits, label = random_case()
    loss = build(gamma=0.0, class_weight=class_weight)
    weight = None if class_weight is None else torch.tensor(class_weight)
    expected = F.cross_entropy(
        logits, label, weight=weight, ignore_index=255)
    torch.testing.assert_close(
        loss(logits, label), expected, rtol=1e-6, atol=1e-7)


def test_gamma_zero_with_pixel_weight():
    logits, label = random_case(seed=1)
    pixel_weight = torch.rand(
        label.shape, generator=torch.Generator().manual_seed(3))
    # mmseg's own CE (its class-weighted path cannot take ignored labels).
    ref = CrossEntropyLoss(avg_non_ignore=True)
    torch.testing.assert_close(
        build(gamma=0.0)(logits, label, weight=pixel_weight),
        ref(logits, label, weight=pixel_weight, ignore_index=255),
        rtol=1e-6,
        atol=1e-7)
    # Class-weighted: the pixel weight scales the numerator only.
    class_weight = torch.tensor([1.0, 2.0, 0.5, 1.5])
    ce = F.cross_entropy(logits, label, ignore_index=255, reduction='none')
    valid = label != 255
    a_t = class_weight[label.clamp(max=3)] * valid
    expected = (a_t * pixel_weight * ce).sum() / a_t.sum()
    torch.testing.assert_close(
        build(gamma=0.0, class_weight=class_weight.tolist())(
            logits, label, weight=pixel_weight),
        expected,
        rtol=1e-6,
        atol=1e-7)


def test_hand_computed_values():
    # (N, C, H, W) = (1, 2, 1, 2); pixel 0: p_t = 1 / (1 + 3) = 0.25,
    # pixel 1: p_t = 0.5.
    logits = torch.tensor([[[[0.0, 0.0]], [[math.log(3.0), 0.0]]]])
    label = torch.tensor([[[0, 1]]])
    l0 = 0.75**2 * math.log(4.0)
    l1 = 0.5**2 * math.log(2.0)
    assert build()(logits, label).item() == pytest.approx((l0 + l1) / 2)
    assert build(reduction='sum')(logits, label).item() == pytest.approx(
        l0 + l1)
    none = build(reduction='none')(logits, label)
    assert none.shape == (1, 1, 2)
    torch.testing.assert_close(none, torch.tensor([[[l0, l1]]]))
    weighted = build(class_weight=[1.0, 3.0])(logits, label)
    assert weighted.item() == pytest.approx((l0 + 3 * l1) / 4)
    assert build(loss_weight=2.0)(logits, label).item() == pytest.approx(
        l0 + l1)
    # gamma = 1 on the fully wrong pixel 0 alone.
    alone = build(gamma=1.0)(logits, torch.tensor([[[0, 255]]]))
    assert alone.item() == pytest.approx(0.75 * math.log(4.0))


def test_perfect_prediction_is_zero():
    label = torch.tensor([[[0, 1], [2, 1]]])
    logits = F.one_hot(label, 3).permute(0, 3, 1, 2).float() * 50
    assert build()(logits, label).item() == pytest.approx(0.0, abs=1e-12)


def test_ignored_pixels_change_nothing():
    logits, label = random_case(ignore_frac=0.0)
    extra_logits = torch.randn(2, 4, 5, 3) * 10
    extra_label = torch.full((2, 5, 3), 255)
    loss = build(class_weight=[1.0, 2.0, 3.0, 4.0])
    base = loss(logits, label)
    padded = loss(
        torch.cat([logits, extra_logits], dim=3),
        torch.cat([label, extra_label], dim=2))
    torch.testing.assert_close(base, padded)


def test_zero_class_weight_removes_class():
    logits, label = random_case(seed=2, ignore_frac=0.0)
    masked = label.clone()
    masked[label == 1] = 255
    weighted = build(class_weight=[1.0, 0.0, 1.0, 1.0])(logits, label)
    torch.testing.assert_close(weighted, build()(logits, masked))


def test_all_ignored_is_finite_zero():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    label = torch.full((2, 4, 4), 255)
    loss = build()(logits, label)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad == 0).all()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_logits(dtype):
    logits, label = random_case(seed=4)
    logits[0, 0, 0, 0] = 60.0  # would overflow exp() in fp16
    half = logits.to(dtype).requires_grad_()
    loss = build()(half, label)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert half.grad.dtype == dtype and torch.isfinite(half.grad).all()
    torch.testing.assert_close(
        loss, build()(half.detach().float(), label), rtol=1e-6, atol=1e-6)


def test_large_logits_have_finite_grad_for_small_gamma():
    label = torch.tensor([[[0, 1]]])
    logits = (F.one_hot(label, 2).permute(0, 3, 1, 2).float() *
              100).requires_grad_()
    build(gamma=0.5)(logits, label).backward()
    assert torch.isfinite(logits.grad).all()


def test_forward_ignore_index_takes_precedence():
    logits, label = random_case(seed=5, ignore_frac=0.0)
    loss = build(ignore_index=0)
    expected0 = F.cross_entropy(logits, label, ignore_index=0)
    expected1 = F.cross_entropy(logits, label, ignore_index=1)
    loss.gamma = 0.0
    torch.testing.assert_close(loss(logits, label), expected0)
    torch.testing.assert_close(
        loss(logits, label, ignore_index=1), expected1)


def test_class_weight_set_after_construction(tmp_path):
    logits, label = random_case(seed=6)
    loss = build(gamma=0.0)
    loss.class_weight = [1.0, 2.0, 3.0, 4.0]
    assert loss.class_weight == [1.0, 2.0, 3.0, 4.0]
    expected = F.cross_entropy(
        logits, label, weight=torch.tensor([1.0, 2.0, 3.0, 4.0]),
        ignore_index=255)
    torch.testing.assert_close(loss(logits, label), expected)
    path = tmp_path / 'weights.npy'
    np.save(path, np.array([1.0, 2.0, 3.0, 4.0]))
    from_file = build(gamma=0.0, class_weight=str(path))
    assert from_file.class_weight == [1.0, 2.0, 3.0, 4.0]
    torch.testing.assert_close(from_file(logits, label), expected)


def test_avg_factor():
    logits, label = random_case(seed=7)
    loss = build()
    total = build(reduction='sum')(logits, label)
    torch.testing.assert_close(
        loss(logits, label, avg_factor=10.0), total / 10.0)


def test_negative_gamma_raises():
    with pytest.raises(ValueError, match='`gamma` should be'):
        build(gamma=-1.0)


def test_bad_loss_name_raises():
    with pytest.raises(ValueError, match='`loss_name` should be'):
        build(loss_name='focal')


def test_bad_reduction_raises():
    with pytest.raises(ValueError, match='`reduction` should be'):
        build(reduction='avg')


def test_negative_class_weight_raises():
    with pytest.raises(ValueError, match='`class_weight` should hold'):
        build(class_weight=[1.0, -1.0])


def test_class_weight_wrong_length_raises():
    logits, label = random_case()
    with pytest.raises(
            ValueError,
            match='`class_weight` should have C=4 entries, but got 3'):
        build(class_weight=[1.0, 1.0, 1.0])(logits, label)


def test_label_out_of_range_raises():
    logits, label = random_case()
    label[0, 0, 0] = 7
    with pytest.raises(ValueError, match='`seg_label` values should be'):
        build()(logits, label)


def test_label_shape_mismatch_raises():
    logits, label = random_case()
    with pytest.raises(ValueError, match='`seg_label` should have shape'):
        build()(logits, label[:, :2])
