# Copyright (c) mmseg_ext contributors. All rights reserved.
"""MergedGroupsOptimWrapperConstructor: fewer groups, the same updates.

The reference is mmengine's DefaultOptimWrapperConstructor on the same model
from the same initial weights (float64, CPU): the hand-bone SegFormer-B0 with
its ``paramwise_cfg``, the AMP configs, state dicts across constructors and
a tiny Runner that trains, saves and resumes.
"""
import copy
import functools
import glob
import json
import os.path as osp
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine import Config
from mmengine.hooks import Hook
from mmengine.optim import (AmpOptimWrapper, DefaultOptimWrapperConstructor,
                            OptimWrapper, build_optim_wrapper)
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import (MODELS, OPTIM_WRAPPER_CONSTRUCTORS,
                            PARAM_SCHEDULERS)
from mmseg.structures import SegDataSample

from mmseg_ext.engine.optimizers import (MergedGroupsOptimWrapperConstructor,
                                         merge_param_groups)
from mmseg_ext.engine.optimizers import merged_groups_constructor as mgc

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HAND_BONE_B0 = osp.join(
    ROOT, 'configs', 'segformer',
    'segformer_mit-b0_1xb8-20k_handbone-512x512.py')
MERGED = 'MergedGroupsOptimWrapperConstructor'
DEFAULT = 'DefaultOptimWrapperConstructor'


def _no_pretrained(model_cfg):
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.pretrained = None
    backbone = model_cfg.backbone
    if 'init_cfg' in backbone:
        backbone.init_cfg = None
    if backbone.type == 'TIMMBackbone':
        backbone.pretrained = False
    return model_cfg


@functools.lru_cache(maxsize=None)
def _config(path):
    """Parsed config (cached: copy before changing it)."""
    return Config.fromfile(path)


def _hand_bone_b0():
    """The real SegFormer MiT-B0 of the hand-bone config (random init)."""
    cfg = _config(HAND_BONE_B0)
    torch.manual_seed(0)
    return MODELS.build(_no_pretrained(cfg.model)), cfg


def _build(model, optim_wrapper_cfg, constructor):
    cfg = copy.deepcopy(optim_wrapper_cfg)
    cfg['constructor'] = constructor
    return build_optim_wrapper(model, cfg)


def _options(group):
    return {k: v for k, v in group.items() if k != 'params'}


# ----------------------------------------------------------------------------
# merge_param_groups on hand-built groups
# ----------------------------------------------------------------------------


def _params(n):
    return [torch.nn.Parameter(torch.zeros(1)) for _ in range(n)]


def test_merge_keeps_first_occurrence_and_param_order():
    a, b, c, d, e = _params(5)
    groups = [
        dict(params=[a], lr=0.1, weight_decay=0.0),
        dict(params=[b], lr=1.0, weight_decay=0.0),
        dict(params=[c, d], lr=0.1, weight_decay=0.0),
        dict(params=[e], lr=1.0, weight_decay=0.0),
    ]
    before = copy.copy(groups)
    merged, index = merge_param_groups(groups)
    assert index == [0, 1, 0, 1]
    assert [g['params'] for g in merged] == [[a, c, d], [b, e]]
    assert [_options(g) for g in merged] == [
        dict(lr=0.1, weight_decay=0.0), dict(lr=1.0, weight_decay=0.0)]
    # the input is left alone
    assert groups == before and groups[0]['params'] == [a]


@pytest.mark.parametrize('x, y', [
    (dict(lr=0.1), dict(lr=0.2)),
    (dict(lr=0.1), dict(lr=0.1, lr_mult=1.0)),  # an extra key
    (dict(weight_decay=0), dict(weight_decay=0.0)),  # int vs float
    (dict(foreach=True), dict(foreach=1)),  # bool vs int
    (dict(betas=(0.9, 0.999)), dict(betas=(0.9, 0.99))),
    (dict(lr=torch.tensor(0.1)), dict(lr=torch.tensor(0.2))),
    (dict(lr=torch.tensor(0.1)), dict(lr=torch.tensor(0.1).double())),
])
def test_different_options_stay_apart(x, y):
    a, b = _params(2)
    merged, index = merge_param_groups(
        [dict(params=[a], **x), dict(params=[b], **y)])
    assert len(merged) == 2 and index == [0, 1]


@pytest.mark.parametrize('value', [
    (0.9, 0.999), [0.9, 0.999], torch.tensor(1e-3), None, 'name',
    dict(k=[1, 2])
])
def test_equal_options_merge(value):
    a, b = _params(2)
    merged, _ = merge_param_groups(
        [dict(params=[a], opt=value),
         dict(params=[b], opt=copy.deepcopy(value))])
    assert len(merged) == 1 and merged[0]['params'] == [a, b]


def test_param_names_are_concatenated():
    a, b, c = _params(3)
    merged, _ = merge_param_groups([
        dict(params=[a], param_names=['a'], lr=0.1),
        dict(params=[b], param_names=['b'], lr=0.2),
        dict(params=[c], param_names=['c'], lr=0.1),
        dict(params=[b], lr=0.1),  # no names: not merged with named groups
    ])
    assert [g.get('param_names') for g in merged] == [['a', 'c'], ['b'],
                                                      None]


# ----------------------------------------------------------------------------
# the real hand-bone SegFormer-B0 and its paramwise_cfg
# ----------------------------------------------------------------------------


def test_hand_bone_config_uses_the_constructor():
    cfg = _config(HAND_BONE_B0)
    assert cfg.optim_wrapper.constructor == MERGED
    assert set(cfg.optim_wrapper.paramwise_cfg.custom_keys) == {
        'pos_block', 'norm', 'head'}


def test_segformer_b0_groups_merged_same_params_same_options():
    model, cfg = _hand_bone_b0()
    default = _build(model, cfg.optim_wrapper, DEFAULT).optimizer
    merged = _build(model, cfg.optim_wrapper, MERGED).optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    # one group per parameter before, one per setting after: plain, no
    # decay (norms and pos_block), head (10x lr)
    assert len(default.param_groups) == len(params) > 100
    assert len(merged.param_groups) == 3
    assert type(merged) is type(default)

    def where(optimizer):
        found = {}
        for group in optimizer.param_groups:
            for p in group['params']:
                assert id(p) not in found  # each parameter once
                found[id(p)] = _options(group)
        return found

    old, new = where(default), where(merged)
    assert set(old) == set(new) == {id(p) for p in params}
    for key in old:  # every parameter keeps its own options
        assert old[key] == new[key]
    # first occurrence and parameter order are kept
    position = {id(p): i for i, p in enumerate(
        p for g in default.param_groups for p in g['params'])}
    for group in merged.param_groups:
        positions = [position[id(p)] for p in group['params']]
        assert positions == sorted(positions)
    firsts = [position[id(g['params'][0])] for g in merged.param_groups]
    assert firsts == sorted(firsts)
    lrs = sorted(g['lr'] for g in merged.param_groups)
    assert lrs == pytest.approx([1e-4, 1e-4, 1e-3])


def _batch(model, seed, size=32):
    """A real multi-label batch of 2 (random packed labels)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(2):
        packed = rng.integers(0, 1 << 16, (2, size, size), dtype=np.uint16)
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(packed.view(np.int16)))
        sample.set_metainfo(
            dict(img_shape=(size, size), ori_shape=(size, size)))
        samples.append(sample)
    images = torch.from_numpy(
        rng.integers(0, 255, (2, 3, size, size), dtype=np.uint8))
    data = model.data_preprocessor(
        dict(inputs=list(images), data_samples=samples), training=True)
    data['inputs'] = data['inputs'].double()
    return data


ADAMW = dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01)


def _train(constructor, optimizer, clip_grad=None, steps=4):
    """``steps`` iterations of loss, backward, step and the schedulers
    (linear warm-up, then cosine) in float64 from the same initial weights;
    returns the parameters, the optimizer state and the lr of each step by
    parameter name, and the number of groups."""
    model, cfg = _hand_bone_b0()
    model.data_preprocessor.size = (32, 32)
    model = model.double().train()
    optim_wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_wrapper_cfg.optimizer = optimizer
    optim_wrapper_cfg.clip_grad = clip_grad
    optim_wrapper = _build(model, optim_wrapper_cfg, constructor)
    schedulers = [
        PARAM_SCHEDULERS.build(
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                 end=2, optimizer=optim_wrapper)),
        PARAM_SCHEDULERS.build(
            dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False,
                 begin=2, end=6, optimizer=optim_wrapper)),
    ]
    names = {id(p): n for n, p in model.named_parameters()}
    lrs = []
    for step in range(steps):
        lrs.append({names[id(p)]: g['lr']  # the lr of this step
                    for g in optim_wrapper.optimizer.param_groups
                    for p in g['params']})
        torch.manual_seed(step)  # dropout and drop path
        losses = model.loss(**_batch(model, step))
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim_wrapper.update_params(loss)
        for scheduler in schedulers:
            scheduler.step()
    state = {
        names[id(p)]: s for p, s in optim_wrapper.optimizer.state.items()
    }
    return (dict(model.named_parameters()), state, lrs,
            len(optim_wrapper.optimizer.param_groups))


@pytest.mark.parametrize('optimizer', [
    ADAMW,  # the config's; torch's CPU default: one tensor at a time
    dict(ADAMW, foreach=True),  # the multi-tensor kernels of CUDA
    dict(type='SGD', lr=0.01, momentum=0.9, nesterov=True,
         weight_decay=1e-4, foreach=True),
], ids=['adamw', 'adamw-foreach', 'sgd-foreach'])
def test_steps_match_default_constructor_exactly(optimizer):
    """torch updates each tensor element-wise with its group's options, so
    the grouping changes no bit of the parameters, states or lrs."""
    ref, ref_state, ref_lrs, ref_groups = _train(DEFAULT, optimizer)
    new, new_state, new_lrs, new_groups = _train(MERGED, optimizer)
    assert new_groups == 3 < ref_groups
    assert ref_lrs == new_lrs
    head = 'decode_head.head.conv_seg.weight'
    # warm-up (0.1x, then 1x) and cosine (then below 1x) moved the lr
    assert len({step[head] for step in ref_lrs}) == 3
    for name, param in ref.items():
        assert torch.equal(param, new[name]), name
    assert ref_state.keys() == new_state.keys()
    for name, state in ref_state.items():
        assert state.keys() == new_state[name].keys()
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value),
                               torch.as_tensor(new_state[name][key])), \
                (name, key)
    initial, _ = _hand_bone_b0()
    moved = [n for n, p in initial.named_parameters()
             if not torch.equal(p.double(), ref[n])]
    assert len(moved) > 100


def test_steps_with_grad_clipping_match_up_to_rounding():
    """``OptimWrapper`` clips by the total norm of the gradients, stacked
    in the order of the groups: merged, the same per-tensor norms are
    summed in another order, so the clip factor may differ in the last bit
    (~1e-16 relative in float64). Four Adam steps keep that at rounding
    level; the tolerance is 1e-10 relative, a million times above it and
    far below any real difference (an update is ~1e-4 * lr_mult)."""
    clip = dict(max_norm=0.1, norm_type=2)
    ref, *_ = _train(DEFAULT, ADAMW, clip)
    new, *_ = _train(MERGED, ADAMW, clip)
    for name, param in ref.items():
        torch.testing.assert_close(new[name], param, rtol=1e-10, atol=1e-14,
                                   msg=name)


# ----------------------------------------------------------------------------
# registry, log line, wrappers
# ----------------------------------------------------------------------------


def _tiny_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
        torch.nn.Conv2d(4, 4, 1), torch.nn.BatchNorm2d(4))


TINY_WRAPPER = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))
TINY_PARAMWISE = dict(norm_decay_mult=0.0)


def test_registry_builds_it_from_a_config_dict(monkeypatch):
    logged = []
    monkeypatch.setattr(mgc, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=MERGED, optim_wrapper_cfg=TINY_WRAPPER,
             paramwise_cfg=TINY_PARAMWISE))
    assert isinstance(constructor, MergedGroupsOptimWrapperConstructor)
    assert isinstance(constructor, DefaultOptimWrapperConstructor)
    optim_wrapper = constructor(_tiny_cnn())
    assert type(optim_wrapper) is OptimWrapper
    # conv weight, conv bias | bn weight, bn bias (no decay) | ...
    groups = optim_wrapper.optimizer.param_groups
    assert [len(g['params']) for g in groups] == [4, 4]
    assert [g['weight_decay'] for g in groups] == [0.01, 0.0]
    assert logged == ['merged 8 param groups into 2']


def test_config_key_constructor_through_build_optim_wrapper():
    optim_wrapper = build_optim_wrapper(
        _tiny_cnn(),
        dict(TINY_WRAPPER, constructor=MERGED, paramwise_cfg=TINY_PARAMWISE))
    assert len(optim_wrapper.optimizer.param_groups) == 2
    # mmengine's extra `base_param_settings` group (base lr logging) stays
    assert optim_wrapper.base_param_settings is not None


def test_without_paramwise_cfg_nothing_changes(monkeypatch):
    logged = []
    monkeypatch.setattr(mgc, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    model = _tiny_cnn()
    optim_wrapper = build_optim_wrapper(model,
                                        dict(TINY_WRAPPER, constructor=MERGED))
    groups = optim_wrapper.optimizer.param_groups
    assert len(groups) == 1
    assert groups[0]['params'] == list(model.parameters())
    assert logged == ['merged 1 param groups into 1']


def test_paramwise_options_the_parent_validates_are_still_validated():
    with pytest.raises(ValueError, match='base_wd should not be None'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(type=MERGED,
                 optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=0.1)),
                 paramwise_cfg=TINY_PARAMWISE))


@pytest.fixture
def fake_cuda_for_amp():
    """mmengine's AmpOptimWrapper refuses to be built without CUDA; its
    GradScaler then disables itself (a plain step), which is enough to
    check the wrapper is built around the merged optimizer."""
    if torch.cuda.is_available():
        yield
        return
    with mock.patch(
            'mmengine.optim.optimizer.amp_optimizer_wrapper.'
            'is_cuda_available', return_value=True), \
            warnings.catch_warnings():
        # "GradScaler is enabled, but CUDA is not available. Disabling."
        warnings.simplefilter('ignore', UserWarning)
        yield


def test_amp_optim_wrapper_steps_and_round_trips(fake_cuda_for_amp):
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    cfg = dict(TINY_WRAPPER, type='AmpOptimWrapper', loss_scale='dynamic',
               constructor=MERGED, paramwise_cfg=TINY_PARAMWISE)
    model = _tiny_cnn().to(device)
    optim_wrapper = build_optim_wrapper(model, cfg)
    assert isinstance(optim_wrapper, AmpOptimWrapper)
    assert len(optim_wrapper.optimizer.param_groups) == 2
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(torch.randn(2, 3, 8, 8, device=device)).square().mean()
    optim_wrapper.update_params(loss)
    assert all(not torch.equal(a, p) for a, p in zip(before,
                                                     model.parameters()))
    state = optim_wrapper.state_dict()
    assert 'loss_scaler' in state and len(state['param_groups']) == 2
    other = build_optim_wrapper(model, cfg)
    other.load_state_dict(copy.deepcopy(state))
    assert other.optimizer.state_dict()['state'].keys() == \
        optim_wrapper.optimizer.state_dict()['state'].keys()


def _amp_hand_bone_configs():
    return sorted(glob.glob(osp.join(ROOT, 'configs', '*',
                                     '*-amp-*_handbone*.py')))


@functools.lru_cache(maxsize=1)
def _network(model_json):
    """A config's network (random init). The sorted configs of one network
    are neighbours, so one cached network builds each once."""
    return MODELS.build(_no_pretrained(Config(json.loads(model_json))))


@pytest.mark.parametrize(
    'path', _amp_hand_bone_configs(),
    ids=[osp.basename(p) for p in _amp_hand_bone_configs()])
def test_amp_hand_bone_configs_build_merged(path, fake_cuda_for_amp):
    cfg = _config(path)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.constructor == MERGED  # from the schedule base
    model_cfg = cfg.model.to_dict()
    model_cfg['data_preprocessor'].pop('size', None)
    model_cfg.pop('test_cfg', None)
    model = _network(json.dumps(model_cfg, sort_keys=True))
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(optim_wrapper, AmpOptimWrapper)
    groups = optim_wrapper.optimizer.param_groups
    params = [p for g in groups for p in g['params']]
    assert {id(p) for p in params} == {
        id(p) for p in model.parameters() if p.requires_grad}
    assert len(params) == len({id(p) for p in params})
    if cfg.optim_wrapper.get('paramwise_cfg'):
        assert 2 <= len(groups) <= 4 < len(params)
    else:  # UNet: no paramwise_cfg, one group
        assert len(groups) == 1


# ----------------------------------------------------------------------------
# optimizer state dicts across constructors
# ----------------------------------------------------------------------------


def _stepped(constructor):
    model = _tiny_cnn()
    optim_wrapper = build_optim_wrapper(
        model, dict(TINY_WRAPPER, constructor=constructor,
                    paramwise_cfg=TINY_PARAMWISE))
    optim_wrapper.update_params(
        model(torch.randn(2, 3, 8, 8)).square().mean())
    return optim_wrapper


def test_state_dict_round_trip_with_the_same_constructor():
    saved = _stepped(MERGED).state_dict()
    fresh = build_optim_wrapper(
        _tiny_cnn(), dict(TINY_WRAPPER, constructor=MERGED,
                          paramwise_cfg=TINY_PARAMWISE))
    fresh.load_state_dict(copy.deepcopy(saved))
    loaded = fresh.optimizer.state_dict()
    assert loaded['param_groups'] == saved['param_groups']
    for key, state in saved['state'].items():
        for name, value in state.items():
            assert torch.equal(loaded['state'][key][name], value)


def test_default_constructor_state_is_refused_with_the_fix():
    saved = _stepped(DEFAULT).state_dict()
    merged = _stepped(MERGED)
    with pytest.raises(ValueError) as info:
        merged.load_state_dict(saved)
    message = str(info.value)
    assert 'has 8 param groups' in message
    assert 'built 2' in message
    assert 'layout of DefaultOptimWrapperConstructor' in message
    assert 'optim_wrapper.constructor=DefaultOptimWrapperConstructor' in \
        message
    assert '`load_from`' in message


def test_other_layouts_are_refused_too():
    merged = _stepped(MERGED)
    saved = merged.state_dict()
    saved['param_groups'] = saved['param_groups'][:1]
    with pytest.raises(ValueError, match='has 1 param groups, but '
                       'MergedGroupsOptimWrapperConstructor built 2'):
        merged.load_state_dict(saved)


def test_merged_state_into_default_constructor_fails_in_torch():
    """The documented reverse case: torch's own error."""
    saved = _stepped(MERGED).state_dict()
    with pytest.raises(ValueError, match='different number of parameter'):
        _stepped(DEFAULT).load_state_dict(saved)


# ----------------------------------------------------------------------------
# a tiny Runner: train, save, resume
# ----------------------------------------------------------------------------


class _Capture(Hook):
    """Records the optimizer state as the training loop starts (after
    ``Runner.train`` has resumed)."""

    priority = 'LOWEST'

    def before_train(self, runner):
        self.iter = runner.iter
        self.state = copy.deepcopy(runner.optim_wrapper.state_dict())


def _runner(data_root, work_dir, constructor, max_iters, **kwargs):
    """A tiny SegFormer with MMSeg's SegFormer ``paramwise_cfg``."""
    return Runner(
        model=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1],
                bgr_to_rgb=False, size=(64, 64)),
            backbone=dict(
                type='MixVisionTransformer', in_channels=3, embed_dims=8,
                num_stages=4, num_layers=[1, 1, 1, 1],
                num_heads=[1, 1, 1, 1], patch_sizes=[7, 3, 3, 3],
                sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
                mlp_ratio=2),
            decode_head=dict(
                type='SegformerHead', in_channels=[8, 8, 8, 8],
                in_index=[0, 1, 2, 3], channels=8, dropout_ratio=0.0,
                num_classes=4, norm_cfg=dict(type='BN', requires_grad=True),
                loss_decode=dict(type='CrossEntropyLoss'))),
        work_dir=work_dir,
        experiment_name=osp.basename(work_dir),
        train_dataloader=dict(
            batch_size=2,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            dataset=dict(
                type='SyntheticImbalanceDataset',
                data_root=data_root,
                data_prefix=dict(
                    img_path='img_dir/train', seg_map_path='ann_dir/train'),
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='LoadAnnotations'),
                    dict(type='PackSegInputs')
                ])),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(
            type='OptimWrapper',
            constructor=constructor,
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01),
            paramwise_cfg=dict(custom_keys={
                'pos_block': dict(decay_mult=0.),
                'norm': dict(decay_mult=0.),
                'head': dict(lr_mult=10.)
            })),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                 begin=0, end=5)
        ],
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=2),
            sampler_seed=None),
        default_scope='mmseg',
        randomness=dict(seed=0),
        log_level='WARNING',
        **kwargs)


@pytest.fixture(scope='module')
def checkpoints(toy_data_root, tmp_path_factory):
    """Two iterations with each constructor, saved at iteration 2; and an
    uninterrupted run of 4 with the merged one."""
    out = {}
    for name in (MERGED, DEFAULT):
        work_dir = str(tmp_path_factory.mktemp(f'saved_{name}'))
        _runner(toy_data_root, work_dir, name, max_iters=2).train()
        out[name] = osp.join(work_dir, 'iter_2.pth')
        assert osp.isfile(out[name])
    straight = _runner(toy_data_root,
                       str(tmp_path_factory.mktemp('straight')), MERGED,
                       max_iters=4)
    straight.train()
    out['straight'] = straight
    return out


def test_runner_resumes_a_merged_checkpoint(checkpoints, toy_data_root,
                                            tmp_path):
    saved = torch.load(checkpoints[MERGED], map_location='cpu',
                       weights_only=False)['optimizer']
    capture = _Capture()
    runner = _runner(toy_data_root, str(tmp_path / 'resumed'), MERGED,
                     max_iters=4, resume=True,
                     load_from=checkpoints[MERGED], custom_hooks=[capture])
    runner.train()
    assert capture.iter == 2 and runner.iter == 4
    groups = runner.optim_wrapper.optimizer.param_groups
    assert len(saved['param_groups']) == len(groups) == 3
    # the resumed optimizer started from the saved state, exactly
    assert capture.state['param_groups'] == saved['param_groups']
    assert capture.state['state'].keys() == saved['state'].keys()
    for key, state in saved['state'].items():
        for name, value in state.items():
            assert torch.equal(capture.state['state'][key][name], value)
    # and the schedule went on as without the interruption
    straight = checkpoints['straight'].optim_wrapper.optimizer.param_groups
    assert [g['lr'] for g in groups] == [g['lr'] for g in straight]
    assert np.isfinite(runner.message_hub.get_scalar('train/loss').current())


def test_runner_refuses_a_default_checkpoint_and_names_the_fix(
        checkpoints, toy_data_root, tmp_path):
    runner = _runner(toy_data_root, str(tmp_path / 'cross'), MERGED,
                     max_iters=3, resume=True,
                     load_from=checkpoints[DEFAULT])
    with pytest.raises(ValueError,
                       match='DefaultOptimWrapperConstructor'):
        runner.train()
    # the fix the message gives: resume with the constructor it was made by
    fixed = _runner(toy_data_root, str(tmp_path / 'fixed'), DEFAULT,
                    max_iters=3, resume=True,
                    load_from=checkpoints[DEFAULT])
    fixed.train()
    assert fixed.iter == 3
