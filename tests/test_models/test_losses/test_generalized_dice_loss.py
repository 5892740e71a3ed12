# Copyright (c) mmseg_ext contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

import mmseg_ext  # noqa: F401

MODES = ['multiclass', 'binary', 'multilabel']


def build(**kwargs):
    return MODELS.build(dict(type='GeneralizedDiceLoss', **kwargs))


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


def gdl(weights, intersections, cardinalities):
    """Sudre et al.: 1 - 2 sum(w I) / sum(w (P + T)), no smoothing."""
    numer = sum(w * i for w, i in zip(weights, intersections))
    denom = sum(w * c for w, c in zip(weights, cardinalities))
    return 1 - 2 * numer / denom


def test_registry_and_loss_name():
    loss = build(loss_name='loss_gdl')
    assert type(loss).__name__ == 'GeneralizedDiceLoss'
    assert loss.loss_name == 'loss_gdl'
    assert build().loss_name == 'loss_generalized_dice'


def test_hand_computed_multiclass():
    # labels [0, 0, 1]: volumes 2 and 1 -> w = [1/4, 1].
    probs = torch.tensor([[[[1.0, 0.5, 0.0]], [[0.0, 0.5, 1.0]]]])
    label = torch.tensor([[[0, 0, 1]]])
    expected = gdl([1 / 4, 1.0], [1.5, 1.0], [1.5 + 2, 1.5 + 1])
    loss = build(smooth=0.0, from_logits=False)
    assert loss(probs, label).item() == pytest.approx(expected, rel=1e-6)
    # The default smooth=1e-5 barely moves it.
    assert build(from_logits=False)(probs, label).item() == pytest.approx(
        expected, abs=1e-5)


def test_absent_class_gets_max_weight():
    # Class 2 is absent from the target but predicted at pixel 2:
    # its weight 1/0^2 becomes max(1/4, 1) = 1.
    probs = torch.tensor([[[[1.0, 0.5, 0.0]], [[0.0, 0.5, 0.5]],
                           [[0.0, 0.0, 0.5]]]])
    label = torch.tensor([[[0, 0, 1]]])
    expected = gdl([1 / 4, 1.0, 1.0], [1.5, 0.5, 0.0],
                   [1.5 + 2, 1.0 + 1, 0.5 + 0])
    loss = build(smooth=0.0, from_logits=False)
    assert loss(probs, label).item() == pytest.approx(expected, rel=1e-6)


def test_binary_scores_background_and_foreground():
    # p = [0.8, 0.3, 0.1], t = [1, 0, 0]: foreground volume 1, background 2.
    probs = torch.tensor([[[[0.8, 0.3, 0.1]]]])
    target = torch.tensor([[[1, 0, 0]]])
    expected = gdl([1 / 4, 1.0], [0.7 + 0.9, 0.8],
                   [(0.2 + 0.7 + 0.9) + 2, 1.2 + 1])
    loss = build(mode='binary', smooth=0.0, from_logits=False)
    assert loss(probs, target).item() == pytest.approx(expected, rel=1e-6)
    loss.class_weight = [0.0, 1.0]  # foreground only: plain Dice
    assert loss(probs, target).item() == pytest.approx(
        1 - 2 * 0.8 / 2.2, rel=1e-6)


@pytest.mark.parametrize('mode', MODES)
def test_perfect_prediction_is_zero(mode):
    _, target = random_case(mode, ignore_frac=0.0)
    if mode == 'multiclass':
        logits = (F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 2 -
                  1) * 30
    else:
        logits = (target.float() * 2 - 1) * 30
        logits = logits.unsqueeze(1) if mode == 'binary' else logits
    assert build(mode=mode)(logits, target).item() == pytest.approx(
        0.0, abs=1e-6)


def test_fully_wrong_is_one():
    probs = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])
    label = torch.tensor([[[0, 1]]])
    assert build(
        smooth=0.0, from_logits=False)(probs, label).item() == pytest.approx(
            1.0)


def test_zero_class_weight_removes_class():
    probs = torch.softmax(torch.randn(1, 3, 2, 3), dim=1)
    label = torch.tensor([[[0, 1, 2], [2, 1, 1]]])
    loss = build(smooth=0.0, from_logits=False, class_weight=[1.0, 1.0, 0.0])
    p, t = probs[0].flatten(1), F.one_hot(label[0].flatten(), 3).T.float()
    vol = t.sum(1)
    expected = gdl([1 / vol[0]**2, 1 / vol[1]**2],
                   [(p[c] * t[c]).sum() for c in range(2)],
                   [p[c].sum() + vol[c] for c in range(2)])
    assert loss(probs, label).item() == pytest.approx(
        expected.item(), rel=1e-5)


def test_no_positive_target_is_zero():
    logits = torch.randn(1, 2, 3, 3, requires_grad=True)
    target = torch.zeros(1, 2, 3, 3, dtype=torch.long)
    loss = build(mode='multilabel')(logits, target)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(logits.grad).all()


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


def test_per_image_averages_images():
    logits, label = random_case('multiclass', seed=3)
    batch = build()
    singles = [batch(logits[i:i + 1], label[i:i + 1]) for i in range(2)]
    torch.testing.assert_close(
        build(per_image=True)(logits, label), (singles[0] + singles[1]) / 2)
    none = build(per_image=True, reduction='none')(logits, label)
    torch.testing.assert_close(none, torch.stack(singles))


def test_large_volume_is_not_dominated_by_smooth():
    # 1/volume^2 weights are ~1e-12 here; normalising them keeps smooth
    # negligible, so the loss stays that of the smoothing-free formula.
    label = torch.zeros(1, 1000, 1000, dtype=torch.long)
    label[:, :500] = 1
    probs = torch.full((1, 2, 1000, 1000), 0.5)
    loss = build(from_logits=False)(probs, label)
    assert loss.item() == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('smooth', [1e-5, 0.0])
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


def test_bad_mode_raises():
    with pytest.raises(ValueError, match='`mode` should be one of'):
        build(mode='sigmoid')


def test_negative_smooth_raises():
    with pytest.raises(ValueError, match='`smooth` should be'):
        build(smooth=-1e-5)


def test_bad_loss_name_raises():
    with pytest.raises(ValueError, match='`loss_name` should be'):
        build(loss_name='gdl')


def test_class_weight_wrong_length_raises():
    logits, target = random_case('multiclass')
    with pytest.raises(
            ValueError,
            match='`class_weight` should have C=3 entries, but got 2'):
        build(class_weight=[1.0, 1.0])(logits, target)


def test_binary_class_weight_needs_two_entries():
    logits, target = random_case('binary')
    with pytest.raises(ValueError, match='should have C=2 entries'):
        build(mode='binary', class_weight=[1.0])(logits, target)
