# Copyright (c) mmseg_ext contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

import mmseg_ext  # noqa: F401

MODES = ['multiclass', 'binary', 'multilabel']


def build(**kwargs):
    return MODELS.build(dict(type='SoftDiceLoss', **kwargs))


def random_case(mode, seed=0, n=2, c=3, h=4, w=5, ignore_frac=0.2):
    """Random logits and targets in the layout each mode expects."""
    gen = torch.Generator().manual_seed(seed)
    if mode == 'binary':
        c = 1
    logits = torch.randn(n, c, h, w, generator=gen) * 2
    if mode == 'multiclass':
        target = torch.randint(0, c, (n, h, w), generator=gen)
        ignored = torch.rand(n, h, w, generator=gen) < ignore_frac
    elif mode == 'binary':
        target = torch.randint(0, 2, (n, h, w), generator=gen)
        ignored = torch.rand(n, h, w, generator=gen) < ignore_frac
    else:
        target = torch.randint(0, 2, (n, c, h, w), generator=gen)
        ignored = torch.rand(n, c, h, w, generator=gen) < ignore_frac
    target[ignored] = 255
    return logits, target


def perfect_logits(mode, target, c=3):
    if mode == 'multiclass':
        return (F.one_hot(target, c).permute(0, 3, 1, 2).float() * 2 -
                1) * 30
    if mode == 'binary':
        return (target.unsqueeze(1).float() * 2 - 1) * 30
    return (target.float() * 2 - 1) * 30


def test_registry_and_loss_name():
    loss = build(mode='binary', loss_name='loss_dice_fg')
    assert type(loss).__name__ == 'SoftDiceLoss'
    assert loss.loss_name == 'loss_dice_fg'
    assert build().loss_name == 'loss_soft_dice'


@pytest.mark.parametrize('mode', MODES)
def test_perfect_prediction_is_zero(mode):
    _, target = random_case(mode, ignore_frac=0.0)
    logits = perfect_logits(mode, target)
    assert build(mode=mode)(logits, target).item() == pytest.approx(
        0.0, abs=1e-6)


@pytest.mark.parametrize('smooth,expected', [(1.0, 2 / 3), (0.0, 1.0)])
def test_fully_wrong_multiclass(smooth, expected):
    # (N, C, H, W) = (1, 2, 1, 2), labels [0, 1], probabilities swapped:
    # per class I = 0, sum(p) = sum(t) = 1 -> dice = smooth / (2 + smooth).
    probs = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])
    label = torch.tensor([[[0, 1]]])
    loss = build(smooth=smooth, from_logits=False)
    assert loss(probs, label).item() == pytest.approx(expected)


def test_fully_wrong_with_large_logits():
    label = torch.tensor([[[0, 1]]])
    logits = torch.tensor([[[[-30.0, 30.0]], [[30.0, -30.0]]]])
    assert build(smooth=0.0)(logits, label).item() == pytest.approx(1.0)


@pytest.mark.parametrize('squared,expected',
                         [(False, 1 - 2.6 / 3.1), (True, 1 - 2.6 / 2.73)])
def test_binary_hand_computed(squared, expected):
    # p = [0.8, 0.3], t = [1, 0]: I = 0.8, sum(p) = 1.1, sum(p^2) = 0.73.
    probs = torch.tensor([[[[0.8, 0.3]]]])
    target = torch.tensor([[[1, 0]]])
    loss = build(
        mode='binary', from_logits=False, squared_denominator=squared)
    assert loss(probs, target).item() == pytest.approx(expected, rel=1e-5)
    # (N, 1, H, W) targets are accepted too.
    assert loss(probs, target[:, None]).item() == pytest.approx(
        expected, rel=1e-5)


def test_class_weights_and_empty_class():
    # C = 3, class 2 absent from target and prediction: dice_2 = 1.
    probs = torch.tensor([[[[1.0, 0.5]], [[0.0, 0.5]], [[0.0, 0.0]]]])
    label = torch.tensor([[[0, 1]]])
    l0 = 1 - (2 * 1.0 + 1) / (1.5 + 1 + 1)
    l1 = 1 - (2 * 0.5 + 1) / (0.5 + 1 + 1)
    loss = build(from_logits=False)
    assert loss(probs, label).item() == pytest.approx((l0 + l1 + 0) / 3)
    loss.class_weight = [2.0, 1.0, 0.0]  # weight 0 removes class 2
    assert loss(probs, label).item() == pytest.approx((2 * l0 + l1) / 3)
    loss.class_weight = [0.0, 1.0, 0.0]
    assert loss(probs, label).item() == pytest.approx(l1)
    # smooth = 0: the empty class is 0/0, defined as dice 1 (loss 0).
    no_smooth = build(from_logits=False, smooth=0.0)
    value = no_smooth(probs, label).item()
    assert value == pytest.approx(
        ((1 - 2 / 2.5) + (1 - 1 / 1.5) + 0) / 3)


@pytest.mark.parametrize('mode', MODES)
def test_ignored_pixels_change_nothing(mode):
    logits, target = random_case(mode, seed=1, ignore_frac=0.0)
    extra_logits, extra_target = random_case(mode, seed=2, w=3)
    extra_target.fill_(255)
    loss = build(mode=mode, per_image=True)
    torch.testing.assert_close(
        loss(logits, target),
        loss(
            torch.cat([logits, extra_logits], dim=-1),
            torch.cat([target, extra_target], dim=-1)))


def test_multilabel_ignores_per_class_pixel():
    probs = torch.tensor([[[[0.9, 0.2]], [[0.4, 0.7]]]])
    target = torch.tensor([[[[1, 255]], [[0, 1]]]])
    loss = build(mode='multilabel', from_logits=False)
    l0 = 1 - (2 * 0.9 + 1) / (0.9 + 1 + 1)
    l1 = 1 - (2 * 0.7 + 1) / (1.1 + 1 + 1)
    assert loss(probs, target).item() == pytest.approx((l0 + l1) / 2)


def test_per_image_averages_images():
    logits, label = random_case('multiclass', seed=3)
    per_image = build(per_image=True)
    batch = build()
    singles = [batch(logits[i:i + 1], label[i:i + 1]) for i in range(2)]
    torch.testing.assert_close(
        per_image(logits, label), (singles[0] + singles[1]) / 2)
    none = build(per_image=True, reduction='none')(logits, label)
    assert none.shape == (2, )
    torch.testing.assert_close(none, torch.stack(singles))
    assert not torch.allclose(batch(logits, label), per_image(logits, label))


def test_pixel_weight_zero_equals_ignore():
    logits, label = random_case('multiclass', seed=4, ignore_frac=0.0)
    weight = torch.ones(label.shape)
    weight[:, :2] = 0
    ignored = label.clone()
    ignored[:, :2] = 255
    loss = build()
    torch.testing.assert_close(
        loss(logits, label, weight=weight), loss(logits, ignored))


def test_forward_ignore_index_takes_precedence():
    logits, label = random_case('multiclass', seed=5, ignore_frac=0.0)
    remapped = label.clone()
    remapped[label == 0] = 255
    loss = build(ignore_index=0)
    torch.testing.assert_close(
        loss(logits, label), loss(logits, remapped, ignore_index=255))


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('smooth', [1.0, 0.0])
def test_all_ignored_is_finite_zero(mode, smooth):
    logits, target = random_case(mode, seed=6)
    target.fill_(255)
    logits.requires_grad_()
    loss = build(mode=mode, smooth=smooth)(logits, target)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_logits(mode, dtype):
    logits, target = random_case(mode, seed=7)
    half = logits.to(dtype).requires_grad_()
    loss = build(mode=mode)(half, target)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(half.grad).all()


@pytest.mark.parametrize('mode', MODES)
def test_class_weight_wrong_length_raises(mode):
    logits, target = random_case(mode)
    with pytest.raises(ValueError, match='`class_weight` should have C='):
        build(mode=mode, class_weight=[1.0] * 5)(logits, target)


def test_bad_mode_raises():
    with pytest.raises(ValueError, match='`mode` should be one of'):
        build(mode='softmax')


def test_negative_smooth_raises():
    with pytest.raises(ValueError, match='`smooth` should be'):
        build(smooth=-1.0)


def test_bad_loss_name_raises():
    with pytest.raises(ValueError, match='`loss_name` should be'):
        build(loss_name='dice')


def test_bad_class_weight_raises():
    with pytest.raises(ValueError, match='`class_weight` should be'):
        build(class_weight=[[1.0, 2.0]])


def test_binary_with_many_channels_raises():
    logits, target = random_case('multilabel')
    with pytest.raises(ValueError, match=r'\(N, 1, H, W\)'):
        build(mode='binary')(logits, target[:, 0])


def test_multiclass_with_one_channel_raises():
    logits, target = random_case('binary')
    with pytest.raises(ValueError, match='C >= 2'):
        build()(logits, target)


def test_target_shape_mismatch_raises():
    logits, target = random_case('multiclass')
    with pytest.raises(ValueError, match='`seg_label` should have shape'):
        build()(logits, target[:, :2])


def test_multilabel_target_out_of_range_raises():
    logits, target = random_case('multilabel')
    target[0, 0, 0, 0] = 2
    with pytest.raises(ValueError, match='should be in \\[0, 1\\]'):
        build(mode='multilabel')(logits, target)
