# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BaseSegLoss: the plumbing every loss of the package shares."""
import importlib

import pytest
import torch
from mmseg.models.losses.utils import weight_reduce_loss
from mmseg.registry import MODELS

import mmseg_ext  # noqa: F401
from mmseg_ext.models.losses import BaseSegLoss
from mmseg_ext.models.losses.utils import (CHECKS_ENV, reduce_weighted,
                                           resolve_check)

# Registered names, default loss_name: contracts of configs and hooks.
LOSSES = {
    'SoftmaxFocalLoss': 'loss_focal_softmax',
    'SoftDiceLoss': 'loss_soft_dice',
    'GeneralizedDiceLoss': 'loss_generalized_dice',
    'MultiLabelBCELoss': 'loss_ml_bce',
    'MultiLabelFocalLoss': 'loss_ml_focal',
}


@pytest.mark.parametrize('name,loss_name', LOSSES.items())
def test_registry_builds_every_loss_on_the_base(name, loss_name):
    loss = MODELS.build(dict(type=name))
    assert isinstance(loss, BaseSegLoss)
    assert loss.loss_name == loss_name
    assert (loss.reduction, loss.loss_weight, loss.ignore_index,
            loss.class_weight) == ('mean', 1.0, 255, None)
    assert f"loss_name='{loss_name}'" in repr(loss)
    custom = MODELS.build(dict(type=name, loss_name='loss_aux'))
    assert custom.loss_name == 'loss_aux'


@pytest.mark.parametrize('name', LOSSES)
@pytest.mark.parametrize('kwargs,match', [
    (dict(reduction='avg'), '`reduction` should be'),
    (dict(loss_weight=float('nan')), '`loss_weight` should be'),
    (dict(ignore_index=2.5), '`ignore_index` should be'),
    (dict(class_weight=[1.0, -1.0]), '`class_weight` should hold'),
    (dict(loss_name='dice'), '`loss_name` should be'),
])
def test_shared_argument_checks(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type=name, **kwargs))


def test_base_is_not_registered_and_is_abstract():
    assert MODELS.get('BaseSegLoss') is None
    with pytest.raises(NotImplementedError):
        BaseSegLoss(loss_name='loss_x')(torch.zeros(1, 2, 1, 1),
                                        torch.zeros(1, 1, 1).long())


def test_toy_subclass_gets_the_plumbing():
    """A loss written on the base: registry, loss_weight, class_weight as
    a tensor, ignore_index precedence and reduction_override."""

    class ToyLoss(BaseSegLoss):
        _repr_keys = ('scale', )

        def __init__(self, scale=1.0, loss_name='loss_toy', **kwargs):
            super().__init__(loss_name=loss_name, **kwargs)
            self.scale = scale

        def compute(self, seg_logits, seg_label, args):
            self.seen = args._asdict()
            return self.scale * seg_logits.sum()

    MODELS.register_module(module=ToyLoss)
    try:
        loss = MODELS.build(
            dict(type='ToyLoss', scale=2.0, loss_weight=3.0, ignore_index=7,
                 class_weight=[1.0, 2.0]))
        out = loss(torch.ones(1, 2, 1, 1), torch.zeros(1, 1, 1).long())
        assert out.item() == 2.0 * 3.0 * 2
        torch.testing.assert_close(loss.seen['class_weight'],
                                   torch.tensor([1.0, 2.0]))
        assert loss.seen['ignore_index'] == 7
        assert loss.seen['reduction'] == 'mean'
        assert loss.seen['check'] == 'sync'  # CPU
        loss(torch.ones(1, 2, 1, 1), torch.zeros(1, 1, 1).long(),
             ignore_index=255, reduction_override='sum')
        assert loss.seen['ignore_index'] == 255
        assert loss.seen['reduction'] == 'sum'
        with pytest.raises(ValueError, match='`reduction` should be'):
            loss(torch.ones(1, 2, 1, 1), torch.zeros(1, 1, 1).long(),
                 reduction_override='avg')
        assert repr(loss).startswith("ToyLoss(scale=2.0, loss_name='loss_toy'")
    finally:
        MODELS._module_dict.pop('ToyLoss', None)


def test_class_weight_set_later_is_used_and_cached():
    """ClassWeightHook sets ``loss.class_weight = [...]`` after building."""
    loss = MODELS.build(dict(type='SoftmaxFocalLoss', gamma=0.0))
    logits = torch.tensor([[[[0.0, 0.0]], [[0.0, 0.0]]]])
    label = torch.tensor([[[0, 1]]])
    first = loss.channel_tensor([1.0, 3.0], 2, logits.device)
    assert loss.channel_tensor([1.0, 3.0], 2, logits.device) is first
    loss.class_weight = [1.0, 3.0]
    assert loss.class_weight == [1.0, 3.0]
    # Both pixels cost ln 2 whatever the weights: (1 + 3) ln 2 / 4.
    assert loss(logits, label).item() == pytest.approx(0.6931471805599453)
    loss.class_weight = None
    assert loss(logits, label).item() == pytest.approx(0.6931471805599453)
    loss.class_weight = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match='should have C=2 entries'):
        loss(logits, label)


def test_old_module_name_still_imports():
    old = importlib.import_module('mmseg_ext.models.losses.sigmoid_focal_loss')
    new = importlib.import_module(
        'mmseg_ext.models.losses.multilabel_focal_loss')
    assert old.MultiLabelFocalLoss is new.MultiLabelFocalLoss
    assert old.multilabel_focal_loss is new.multilabel_focal_loss


def test_reduce_weighted_is_mmsegs_weight_reduce_loss_but_for_two_cases():
    loss = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    weight = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    for reduction, avg_factor in [('none', None), ('sum', None),
                                  ('mean', 4.0), ('none', 4.0)]:
        torch.testing.assert_close(
            reduce_weighted(loss, weight, weight, reduction, avg_factor),
            weight_reduce_loss(loss, weight, reduction, avg_factor))
    # 'mean': the weighted mean (1 + 1.5 + 4) / 2.5, not mmseg's / 4.
    assert reduce_weighted(loss, weight, weight, 'mean').item() == \
        pytest.approx(6.5 / 2.5)
    assert weight_reduce_loss(loss, weight, 'mean').item() == \
        pytest.approx(6.5 / 4)
    # Everything weighted 0: 0, not NaN.
    zero = torch.zeros_like(weight)
    assert reduce_weighted(loss, zero, zero, 'mean').item() == 0.0
    # 'sum' with avg_factor: the sum (mmseg raises).
    assert reduce_weighted(loss, weight, weight, 'sum', 4.0).item() == 6.5
    with pytest.raises(ValueError):
        weight_reduce_loss(loss, weight, 'sum', 4.0)


def test_resolve_check(monkeypatch):
    monkeypatch.delenv(CHECKS_ENV, raising=False)
    cpu, cuda = torch.device('cpu'), torch.device('cuda', 0)
    assert resolve_check(cpu, True) == 'sync'
    # Accelerators: a clear synchronous check on the first forward of a
    # loss module, the device-side assertion (no host sync) afterwards.
    assert resolve_check(cuda, False) == 'sync'
    assert resolve_check(cuda, True) == 'async'
    for mode in ('sync', 'async', 'off'):
        monkeypatch.setenv(CHECKS_ENV, mode.upper())
        assert resolve_check(cuda, True) == mode
        assert resolve_check(cpu, False) == mode
    monkeypatch.setenv(CHECKS_ENV, 'always')
    with pytest.raises(ValueError, match="one of \\('auto'"):
        resolve_check(cpu, False)


def test_first_sync_check_is_remembered(monkeypatch):
    monkeypatch.delenv(CHECKS_ENV, raising=False)
    loss = MODELS.build(dict(type='MultiLabelBCELoss'))
    assert not loss._checked_once
    loss(torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1, dtype=torch.uint8))
    assert loss._checked_once
