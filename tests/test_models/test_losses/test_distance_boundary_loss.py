# Copyright (c) mmseg_ext contributors. All rights reserved.
"""DistanceBoundaryLoss: hand-computed boundary terms (multi-label and
softmax), ignored pixels, given vs computed maps, the schedules, the
rebalanced region loss, class weights reaching the region loss, and
LossScheduleHook."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import HOOKS, MODELS

from mmseg_ext.models.losses.distance_boundary_loss import \
    boundary_weight_at

ONE = dict(type='constant', start=1.0)


def _build(**kwargs):
    return MODELS.build(dict(type='DistanceBoundaryLoss', **kwargs))


def _row(values, dtype=torch.uint8):
    """(1, 1, 1, W) multi-label target of one class."""
    return torch.tensor(values, dtype=dtype).view(1, 1, 1, -1)


def test_multilabel_hand_computed():
    loss = _build(schedule=ONE)
    target = _row([0, 1, 1, 1, 0])  # phi = [1, 0, -1, 0, 1]
    half = torch.zeros(1, 1, 1, 5)  # p = 0.5
    assert loss(half, target).item() == pytest.approx(0.5 * 1 / 5)
    sure = torch.tensor([-30., 30, 30, 30, -30]).view(1, 1, 1, 5)
    assert loss(sure, target).item() == pytest.approx(-1 / 5, abs=1e-6)
    wrong = -sure
    assert loss(wrong, target).item() == pytest.approx(2 / 5, abs=1e-6)
    # the ignored pixel counts nowhere (and is 0 in the map)
    target = _row([0, 1, 1, 1, 255])  # phi = [1, 0, -1, 0, (0)]
    assert loss(half, target).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(wrong, target).item() == pytest.approx(1 / 4, abs=1e-6)


def test_given_maps_equal_computed_ones():
    torch.manual_seed(0)
    target = (torch.rand(2, 3, 9, 7) > 0.6).to(torch.uint8)
    target[0, :, 0, 0] = 255
    logits = torch.randn(2, 3, 9, 7)
    loss = _build(schedule=ONE)
    computed = loss(logits, target)
    maps = loss.distance_maps(target.masked_fill(target == 255, 0),
                              target != 255, 3)
    given = loss(logits, target, dist_map=maps)
    assert given.item() == pytest.approx(computed.item(), rel=1e-6)
    with pytest.raises(ValueError, match='dist_map'):
        loss(logits, target, dist_map=maps[:, :2])


def test_multiclass_hand_computed_and_background_weight():
    label = torch.tensor([[[0, 1, 1, 1, 0]]])
    # class 1 phi = [1, 0, -1, 0, 1]; class 0 phi = [0, 1, 2, 1, 0]
    logits = torch.zeros(1, 2, 1, 5)  # p = 0.5 for both
    loss = _build(mode='multiclass', schedule=ONE)
    assert loss(logits, label).item() == pytest.approx(0.5 * (1 + 4) / 10)
    loss.class_weight = [0.0, 1.0]  # Kervadec et al.: no background term
    assert loss(logits, label).item() == pytest.approx(0.5 * 1 / 5)
    label[0, 0, 4] = 255
    assert loss(logits, label).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize('schedule,expected', [
    (dict(type='constant', start=0.3), {0: 0.3, 500: 0.3}),
    (dict(type='linear', begin=100, end=300, start=0.1, stop=0.5),
     {0: 0.1, 100: 0.1, 200: 0.3, 300: 0.5, 10**6: 0.5}),
    (dict(type='step', begin=0, interval=10, step=0.25, start=0.0,
          stop=0.6), {0: 0.0, 9: 0.0, 10: 0.25, 25: 0.5, 30: 0.6}),
])
def test_schedules(schedule, expected):
    loss = _build(schedule=schedule)
    for iteration, value in expected.items():
        loss.set_iteration(iteration)
        assert loss.boundary_weight == pytest.approx(value)
        assert boundary_weight_at(loss.schedule, iteration) == \
            pytest.approx(value)


@pytest.mark.parametrize('rebalance', [True, False])
def test_region_loss_is_rebalanced(rebalance):
    loss = _build(
        region_loss=dict(type='MultiLabelBCELoss'), rebalance=rebalance,
        schedule=dict(type='linear', begin=0, end=10, start=0.0, stop=1.0))
    target = _row([0, 1, 1, 1, 0])
    logits = torch.tensor([-1., 2, 0.5, 1, 0]).view(1, 1, 1, 5)
    bce = F.binary_cross_entropy_with_logits(logits, target.float()).item()
    phi = torch.tensor([1., 0, -1, 0, 1])
    boundary = (logits.sigmoid().flatten() * phi).mean().item()
    loss.set_iteration(4)  # b = 0.4
    region_weight = 0.6 if rebalance else 1.0
    assert loss(logits, target).item() == pytest.approx(
        region_weight * bce + 0.4 * boundary, rel=1e-5)


def test_class_weight_reaches_the_region_loss():
    loss = _build(region_loss=dict(type='SoftDiceLoss', mode='multilabel'),
                  class_weight=[1.0, 2.0])
    assert loss.region_loss.class_weight == [1.0, 2.0]
    loss.class_weight = [3.0, 1.0]  # as ClassWeightHook does
    assert loss.region_loss.class_weight == [3.0, 1.0]


@pytest.mark.parametrize('kwargs,match', [
    (dict(mode='binary'), 'mode'),
    (dict(schedule=dict(type='cosine')), 'schedule'),
    (dict(schedule=dict(type='linear', begin=5, end=5)), 'end > begin'),
    (dict(schedule=dict(type='step', interval=0)), 'interval'),
    (dict(schedule=dict(type='constant', start=-1)), 'start'),
    (dict(max_distance=0), 'max_distance'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _build(**kwargs)


def test_loss_schedule_hook_sets_the_iteration():
    loss = _build(schedule=dict(type='linear', begin=0, end=10, start=0.0,
                                stop=1.0))
    model = nn.Sequential(nn.Linear(1, 1), nn.ModuleList([loss]))
    hook = HOOKS.build(dict(type='LossScheduleHook'))
    runner = SimpleNamespace(model=model, iter=7)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert loss.iteration == 7 and loss.boundary_weight == pytest.approx(0.7)
    with pytest.raises(RuntimeError, match='set_iteration'):
        hook.before_train(SimpleNamespace(model=nn.Linear(1, 1), iter=0))
