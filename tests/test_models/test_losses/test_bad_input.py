# Copyright (c) mmseg_ext contributors. All rights reserved.
"""What every loss does with bad input (issue 14, item 3).

- A NaN / inf logit (or per-pixel weight) at an ignored entry changes
  nothing: the loss is finite and equals the loss without that entry; the
  gradient is finite everywhere and exactly 0 there.
- A non-ignored label outside ``[0, C)`` (``{0, 1}`` for sigmoid losses),
  a floating label and a negative or non-finite weight raise the package's
  error classes.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

import mmseg_ext  # noqa: F401
from mmseg_ext.models.losses import LabelDtypeError, LossInputError
from mmseg_ext.models.losses.utils import CHECKS_ENV

C = 3
# (id, loss config, target kind, forward kwargs)
CASES = [
    ('softmax_focal', dict(type='SoftmaxFocalLoss'), 'multiclass', {}),
    ('softmax_focal-cw-avg_factor',
     dict(type='SoftmaxFocalLoss', class_weight=[1.0, 2.0, 0.5]),
     'multiclass', dict(avg_factor=5.0)),
    ('softmax_ce', dict(type='SoftmaxFocalLoss', gamma=0.0), 'multiclass',
     {}),
    ('soft_dice-multiclass', dict(type='SoftDiceLoss'), 'multiclass', {}),
    ('soft_dice-binary', dict(type='SoftDiceLoss', mode='binary'), 'binary',
     {}),
    ('soft_dice-multilabel-per_image',
     dict(type='SoftDiceLoss', mode='multilabel', per_image=True,
          squared_denominator=True), 'multilabel', {}),
    ('soft_dice-multiclass-probs',
     dict(type='SoftDiceLoss', from_logits=False), 'multiclass', {}),
    ('gdl-multiclass', dict(type='GeneralizedDiceLoss'), 'multiclass', {}),
    ('gdl-binary', dict(type='GeneralizedDiceLoss', mode='binary'), 'binary',
     {}),
    ('gdl-multilabel-per_image',
     dict(type='GeneralizedDiceLoss', mode='multilabel', per_image=True),
     'multilabel', {}),
    ('ml_bce', dict(type='MultiLabelBCELoss', pos_weight=[1.0, 2.0, 3.0]),
     'multilabel', {}),
    ('ml_bce-avg_factor', dict(type='MultiLabelBCELoss'), 'multilabel',
     dict(avg_factor=7.0)),
    ('ml_focal', dict(type='MultiLabelFocalLoss', alpha=[0.25, 0.5, 0.75]),
     'multilabel', {}),
    ('ml_focal-binary-avg_factor', dict(type='MultiLabelFocalLoss'),
     'binary', dict(avg_factor=3.0)),
]
IDS = [case[0] for case in CASES]
PARAMS = [case[1:] for case in CASES]


def make_case(kind, seed=0, n=2, h=3, w=4):
    """Valid logits and targets in the layout of ``kind``, nothing ignored.

    Binary targets are ``(N, H, W)``, multilabel ``(N, C, H, W)`` uint8.
    """
    gen = torch.Generator().manual_seed(seed)
    channels = 1 if kind == 'binary' else C
    logits = torch.randn(n, channels, h, w, generator=gen) * 2
    if kind == 'multiclass':
        target = torch.randint(0, C, (n, h, w), generator=gen)
    elif kind == 'binary':
        target = torch.randint(0, 2, (n, h, w), generator=gen,
                               dtype=torch.uint8)
    else:
        target = torch.randint(0, 2, (n, C, h, w), generator=gen,
                               dtype=torch.uint8)
    return logits, target


def pad_ignored(kind, logits, target, bad_value, extra=2):
    """Append ``extra`` columns: ignored, with ``bad_value`` logits there.

    Multilabel: only channel 0 of the extra columns is ignored (per
    class-pixel ignoring) and holds ``bad_value``; the other channels stay
    valid, with finite logits, and are in the loss.

    Returns:
        tuple: padded logits and targets, and the bool mask of the entries
        of the padded logits whose gradient must be exactly 0.
    """
    n, channels, h, _ = logits.shape
    pad_logits = torch.full((n, channels, h, extra), bad_value)
    if kind == 'multiclass':
        pad_target = torch.full((n, h, extra), 255, dtype=target.dtype)
    elif kind == 'binary':
        pad_target = torch.full((n, h, extra), 255, dtype=target.dtype)
    else:
        pad_target = torch.randint(0, 2, (n, channels, h, extra),
                                   dtype=target.dtype)
        pad_target[:, 0] = 255
        pad_logits[:, 1:] = 1.5
    logits = torch.cat([logits, pad_logits], dim=-1)
    target = torch.cat([target, pad_target], dim=-1)
    zero_grad = torch.zeros(logits.shape, dtype=torch.bool)
    if kind == 'multilabel':
        zero_grad[:, 0, :, -extra:] = True
    else:
        zero_grad[..., -extra:] = True
    return logits, target, zero_grad


def to_input(cfg, logits):
    """Probabilities for ``from_logits=False`` losses (NaN kept)."""
    if cfg.get('from_logits', True):
        return logits
    return logits.softmax(dim=1)


@pytest.mark.parametrize('bad_value', [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize('cfg,kind,kwargs', PARAMS, ids=IDS)
def test_bad_logit_at_ignored_entry_changes_nothing(cfg, kind, kwargs,
                                                    bad_value):
    loss_fn = MODELS.build(cfg)
    logits, target = make_case(kind)
    if kind == 'multilabel':
        # The reference keeps the valid channels 1.. of the extra columns:
        # only channel 0 is ignored there; compare with it set to any finite
        # value instead.
        padded, padded_target, zero_grad = pad_ignored(
            kind, logits, target, bad_value)
        ref_logits = torch.where(zero_grad, 0.0, padded)
        expected = loss_fn(to_input(cfg, ref_logits), padded_target,
                           **kwargs)
    else:
        expected = loss_fn(to_input(cfg, logits), target, **kwargs)
        padded, padded_target, zero_grad = pad_ignored(
            kind, logits, target, bad_value)
    # The gradient with respect to what the loss takes (probabilities for
    # from_logits=False: softmax's own backward would turn 0 * NaN into NaN).
    x = to_input(cfg, padded).detach().requires_grad_()
    loss = loss_fn(x, padded_target, **kwargs)
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
    loss.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[zero_grad] == 0).all()
    assert x.grad[~zero_grad].abs().sum() > 0


@pytest.mark.parametrize('cfg,kind,kwargs', PARAMS, ids=IDS)
def test_nan_weight_at_ignored_entry_changes_nothing(cfg, kind, kwargs):
    loss_fn = MODELS.build(cfg)
    logits, target = make_case(kind, seed=1)
    weight = torch.rand(logits.shape[0], *logits.shape[2:])
    padded, padded_target, _ = pad_ignored(kind, logits, target, math.nan)
    n, _, h, w = padded.shape
    padded_weight = torch.cat(
        [weight, torch.full((n, h, w - weight.shape[-1]), math.nan)], -1)
    if kind == 'multilabel':
        # Channels 1.. of the extra columns are valid: a NaN weight there
        # is a real error, so use per-pixel weights of 1 on them ...
        padded_weight[..., weight.shape[-1]:] = 1.0
        # ... and an (N, C, H, W) weight with NaN on the ignored channel 0,
        # for the losses that take one.
        if cfg['type'] != 'SoftDiceLoss' and \
                cfg['type'] != 'GeneralizedDiceLoss':
            full = padded_weight.unsqueeze(1).repeat(1, C, 1, 1)
            full[:, 0, :, weight.shape[-1]:] = math.nan
            padded_weight = full
    ref = torch.where(torch.isnan(padded), 0.0, padded)
    ref_weight = torch.nan_to_num(padded_weight, nan=0.0)
    expected = loss_fn(to_input(cfg, ref), padded_target, weight=ref_weight,
                       **kwargs)
    got = loss_fn(to_input(cfg, padded), padded_target,
                  weight=padded_weight, **kwargs)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)


def test_softmax_focal_gamma_zero_matches_cross_entropy_with_nan():
    """The documented equality with F.cross_entropy holds with NaN logits
    at ignored pixels too (F.cross_entropy stays finite there)."""
    logits, label = make_case('multiclass', seed=2)
    logits, label, _ = pad_ignored('multiclass', logits, label, math.nan)
    expected = F.cross_entropy(logits, label, ignore_index=255)
    assert torch.isfinite(expected)
    got = MODELS.build(dict(type='SoftmaxFocalLoss', gamma=0.0))(logits,
                                                                 label)
    torch.testing.assert_close(got, expected)


def test_hand_computed_with_nan_at_ignored_pixels():
    # Softmax: the hand-computed case of test_softmax_focal_loss (pixel 0:
    # p_t = 1/4, pixel 1: p_t = 1/2) plus a NaN pixel that is ignored.
    logits = torch.tensor([[[[0.0, 0.0, math.nan]],
                            [[math.log(3.0), 0.0, math.nan]]]])
    label = torch.tensor([[[0, 1, 255]]])
    l0, l1 = 0.75**2 * math.log(4.0), 0.5**2 * math.log(2.0)
    focal = MODELS.build(dict(type='SoftmaxFocalLoss'))
    assert focal(logits, label).item() == pytest.approx((l0 + l1) / 2)
    none = MODELS.build(dict(type='SoftmaxFocalLoss', reduction='none'))
    torch.testing.assert_close(none(logits, label),
                               torch.tensor([[[l0, l1, 0.0]]]))
    # Sigmoid BCE: logits 0 and ln 3 on positives, an inf logit ignored:
    # (ln 2 + ln(4/3)) / 2.
    logits = torch.tensor([[[[0.0, math.log(3.0), math.inf]]]])
    target = torch.tensor([[[[1, 1, 255]]]], dtype=torch.uint8)
    bce = MODELS.build(dict(type='MultiLabelBCELoss'))
    assert bce(logits, target).item() == pytest.approx(
        (math.log(2.0) + math.log(4.0 / 3.0)) / 2)
    # Binary Dice on probabilities [0.8, 0.3, NaN], targets [1, 0, 255]:
    # 1 - (2 * 0.8 + 1) / (1.1 + 1 + 1).
    probs = torch.tensor([[[[0.8, 0.3, math.nan]]]])
    dice = MODELS.build(
        dict(type='SoftDiceLoss', mode='binary', from_logits=False))
    assert dice(probs, torch.tensor([[[1, 0, 255]]])).item() == \
        pytest.approx(1 - 2.6 / 3.1, rel=1e-6)


# --------------------------------------------------------------------------
# Label and weight checks
# --------------------------------------------------------------------------
@pytest.mark.parametrize('cfg,kind,kwargs', PARAMS, ids=IDS)
def test_label_out_of_range_raises(cfg, kind, kwargs):
    loss_fn = MODELS.build(cfg)
    logits, target = make_case(kind)
    bad_value = C if kind == 'multiclass' else 2
    target = target.clone()
    target.view(-1)[3] = bad_value
    expected = (rf'in \[0, {C - 1}\]' if kind == 'multiclass' else
                r'in \[0, 1\]')
    with pytest.raises(LossInputError,
                       match=f'{expected}.*but got {bad_value}'):
        loss_fn(to_input(cfg, logits), target, **kwargs)


@pytest.mark.parametrize('kind', ['multiclass', 'multilabel'])
def test_negative_label_raises(kind):
    cfg = dict(type='SoftmaxFocalLoss') if kind == 'multiclass' else dict(
        type='MultiLabelBCELoss')
    logits, target = make_case(kind)
    target = target.long()
    target.view(-1)[0] = -1
    with pytest.raises(LossInputError, match='but got -1'):
        MODELS.build(cfg)(logits, target)


def test_label_equal_to_a_custom_ignore_index_is_fine():
    logits, label = make_case('multiclass')
    label[0, 0, 0] = -1
    loss = MODELS.build(dict(type='SoftmaxFocalLoss', ignore_index=-1))
    assert torch.isfinite(loss(logits, label))


@pytest.mark.parametrize('cfg,kind,kwargs', PARAMS, ids=IDS)
def test_float_label_raises(cfg, kind, kwargs):
    loss_fn = MODELS.build(cfg)
    logits, target = make_case(kind)
    with pytest.raises(LabelDtypeError, match='nearest') as info:
        loss_fn(to_input(cfg, logits), target.float(), **kwargs)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)
    fix = '.long()' if kind == 'multiclass' else '.to(torch.uint8)'
    assert fix in str(info.value)


@pytest.mark.parametrize('bad', [-0.5, math.nan, math.inf])
@pytest.mark.parametrize('cfg,kind,kwargs', PARAMS, ids=IDS)
def test_bad_pixel_weight_raises(cfg, kind, kwargs, bad):
    loss_fn = MODELS.build(cfg)
    logits, target = make_case(kind)
    weight = torch.ones(logits.shape[0], *logits.shape[2:])
    weight[0, 1, 2] = bad
    with pytest.raises(LossInputError, match='`weight`.*>= 0'):
        loss_fn(to_input(cfg, logits), target, weight=weight, **kwargs)


def test_bool_targets_are_accepted():
    logits, target = make_case('multilabel')
    loss = MODELS.build(dict(type='MultiLabelBCELoss'))
    torch.testing.assert_close(
        loss(logits, target.bool()), loss(logits, target))


# --------------------------------------------------------------------------
# Check modes ($MMSEG_EXT_LOSS_CHECKS)
# --------------------------------------------------------------------------
def test_async_mode_asserts_on_the_device(monkeypatch):
    # On CPU torch._assert_async raises at once; on CUDA it would not sync.
    monkeypatch.setenv(CHECKS_ENV, 'async')
    logits, label = make_case('multiclass')
    label[0, 0, 0] = C
    loss = MODELS.build(dict(type='SoftmaxFocalLoss'))
    with pytest.raises(RuntimeError, match=f'{CHECKS_ENV}=sync'):
        loss(logits, label)
    weight = torch.ones(label.shape)
    weight[0, 0, 0] = -1.0
    label[0, 0, 0] = 0
    with pytest.raises(RuntimeError, match=f'{CHECKS_ENV}=sync'):
        loss(logits, label, weight=weight)
    label[0, 0, 0] = 1
    assert torch.isfinite(loss(logits, label))


def test_off_mode_skips_value_checks_only(monkeypatch):
    monkeypatch.setenv(CHECKS_ENV, 'off')
    logits, target = make_case('multilabel')
    weight = torch.ones(target.shape[0], *target.shape[2:])
    weight[0, 0, 0] = -1.0
    loss = MODELS.build(dict(type='MultiLabelBCELoss'))
    assert torch.isfinite(loss(logits, target, weight=weight))
    with pytest.raises(LabelDtypeError):  # dtype checks read no data
        loss(logits, target.float())


def test_bad_mode_value_raises(monkeypatch):
    monkeypatch.setenv(CHECKS_ENV, 'sometimes')
    logits, label = make_case('multiclass')
    with pytest.raises(ValueError, match=CHECKS_ENV):
        MODELS.build(dict(type='SoftmaxFocalLoss'))(logits, label)
