# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Every config under ``configs/`` on the demo dataset parses, builds its
model, optimizer wrapper and schedulers, and runs a step.

Configs for other datasets (hand bones, buildings) have sibling tests that
run them on data generated in their own formats.

Pretrained weights cannot be downloaded in tests: the real URLs stay in the
configs and are overridden here with ``pretrained=None`` / ``init_cfg=None``.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, HOOKS, MODELS, PARAM_SCHEDULERS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ALL_CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True)
    if f'{osp.sep}_base_{osp.sep}' not in p)
# Demo-dataset configs are named `..._synthimb-HxW...` (parsing every config
# to read its dataset type would cost seconds at collection).
CONFIGS = [p for p in ALL_CONFIGS if '_synthimb-' in osp.basename(p)]


def _no_pretrained(model_cfg):
    model_cfg.pretrained = None
    backbone = model_cfg.get('backbone', {})
    if 'init_cfg' in backbone:
        backbone.init_cfg = None
    return model_cfg


def test_configs_found():
    assert len(CONFIGS) >= 5
    for path in CONFIGS:
        assert Config.fromfile(path).train_dataloader.dataset.type == \
            'SyntheticImbalanceDataset', path


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds_and_steps(path, toy_data_root):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    assert cfg.custom_imports['imports'] == ['mmseg_ext']
    # softmax demos keep MMSeg's runtime and visualizer
    assert cfg.visualizer.type == 'SegLocalVisualizer'
    model = MODELS.build(_no_pretrained(cfg.model))
    for hook in cfg.get('custom_hooks', []):
        HOOKS.build(hook)
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = toy_data_root
    dataset = DATASETS.build(ds_cfg)
    sample = dataset[0]
    assert sample['inputs'].shape[-2:] == (64, 64)
    optim_cfg = cfg.optim_wrapper.copy()
    if optim_cfg.get('type') == 'AmpOptimWrapper':
        # mmengine's AmpOptimWrapper refuses CPU; the config is checked by
        # building everything else, AMP itself runs on a GPU.
        assert optim_cfg.pop('loss_scale') == 'dynamic'
        optim_cfg.type = 'OptimWrapper'
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    for scheduler in cfg.get('param_scheduler', []):
        PARAM_SCHEDULERS.build(
            dict(scheduler, optimizer=optim_wrapper.optimizer))
    # One forward/backward with every configured loss.
    model.train()
    data = model.data_preprocessor(
        dict(inputs=[sample['inputs']] * 2,
             data_samples=[sample['data_samples']] * 2), training=True)
    losses = model.loss(**data)
    loss_keys = [k for k in losses if 'loss' in k.split('.')[-1]]
    assert loss_keys, losses.keys()
    total = sum(losses[k] for k in loss_keys)
    assert torch.isfinite(total)
    optim_wrapper.update_params(total)
