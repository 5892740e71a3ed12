# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Each building config builds, trains, validates (``building/score``,
early stopping) and writes a submission through a real ``Runner`` (shrunk:
32x32 crops, 2 iterations, no pretrained weights) on generated tiles in the
competition layout. The 2-process submission run is in
tests/test_tools/test_building_tools.py.

Pretrained weights cannot be downloaded in tests: the configs keep timm's
``pretrained=True`` / the Swin checkpoint URL, overridden here.
"""
import csv
import glob
import os.path as osp

import pytest
import torch
from mmengine import Config
from mmengine.runner import Runner

import mmseg_ext  # noqa: F401
# Registered here until mmseg_ext's package __init__ files import them.
from mmseg_ext.datasets.generators.building import generate_buildings

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ALL_CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(ROOT, 'configs', '**', '*_building-*.py'), recursive=True)
    if f'{osp.sep}_base_{osp.sep}' not in p)
# Schedule variants share their model with a config run below.
VARIANTS = [p for p in ALL_CONFIGS if p.endswith('_adamw-cosine.py')]
CONFIGS = [p for p in ALL_CONFIGS if p not in VARIANTS]
CROP = (32, 32)


@pytest.fixture(scope='module', autouse=True)
def one_torch_thread():
    """One intra-op thread: these tiny batches gain nothing from two, and
    on a shared 2-core CI machine two threads run 3-4x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def building_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('building_cfg')
    generate_buildings(str(root), num_train=10, num_test=3, train_size=128,
                       test_size=32, seed=0)
    return str(root)


def test_configs_found():
    names = {osp.basename(p) for p in ALL_CONFIGS}
    assert {
        'pspnet_densenet161_1xb8-20k_building-224x224.py',
        'deeplabv3plus_mobilenetv3-l_1xb8-20k_building-224x224.py',
        'unet_r50_1xb8-20k_building-224x224.py',
        'upernet_swin-t_1xb8-20k_building-224x224.py',
    } <= names


@pytest.mark.parametrize(
    'path', VARIANTS, ids=[osp.basename(p) for p in VARIANTS])
def test_schedule_variants(path):
    cfg = Config.fromfile(path)
    base = Config.fromfile(path.replace('_adamw-cosine.py', '.py'))
    assert cfg.optim_wrapper.optimizer == dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01)
    assert base.optim_wrapper.optimizer == dict(
        type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-3)
    assert [s.type for s in cfg.param_scheduler] == ['LinearLR',
                                                     'CosineAnnealingLR']
    assert base.param_scheduler[0].type == 'StepLR'
    assert cfg.model == base.model


def shrink(cfg: Config, data_root: str, work_dir: str) -> Config:
    """Small, offline version of a building config."""
    model = cfg.model
    if model.backbone.type == 'TIMMBackbone':
        assert model.backbone.pretrained is True  # users get the weights
        model.backbone.pretrained = False
    else:
        assert model.backbone.init_cfg.type == 'Pretrained'
        model.backbone.init_cfg = None
    model.data_preprocessor.size = CROP
    for transform in cfg.train_dataloader.dataset.pipeline:
        if transform.type == 'AlbuSeg':
            for t in transform.transforms:
                if t.type == 'CropNonEmptyMaskIfExists':
                    t.height = t.width = 48
                elif t.type == 'RandomResizedCrop':
                    t.size = CROP
    for transform in cfg.val_dataloader.dataset.pipeline:
        if transform.type == 'AlbuSeg':
            transform.transforms[0].height = transform.transforms[0].width = 32
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.data_root = data_root
    cfg.train_dataloader.batch_size = 2
    # 9 training tiles, 1 validation tile.
    cfg.train_dataloader.dataset.val_ratio = 0.1
    cfg.val_dataloader.dataset.val_ratio = 0.1
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    # Checkpoints of these backbones are 30-110 MB: write none but the
    # last (save_best is exercised by the tools tests' run).
    cfg.default_hooks.checkpoint.interval = 100
    cfg.default_hooks.checkpoint.save_best = None
    cfg.default_hooks.checkpoint.save_last = False
    cfg.default_hooks.logger.interval = 1
    cfg.test_evaluator.ann_file = osp.join(data_root, 'test.csv')
    cfg.test_evaluator.out_file = osp.join(work_dir, 'submission.csv')
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    return cfg


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.basename(p) for p in CONFIGS])
def test_config_trains_validates_and_submits(path, building_root, tmp_path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports == dict(
        imports=['mmseg_ext'], allow_failed_imports=False)
    assert cfg.model.type == 'MultiLabelEncoderDecoder'
    assert cfg.visualizer.type == 'MultiLabelSegLocalVisualizer'
    assert cfg.model.decode_head.num_classes if 'num_classes' in \
        cfg.model.decode_head else cfg.model.decode_head.head.num_classes == 1
    assert set(cfg.model.test_cfg) >= {'threshold', 'min_area'}
    assert any(h.type == 'EarlyStoppingHook' and
               h.monitor == 'building/score' for h in cfg.custom_hooks)
    cfg = shrink(cfg, building_root, str(tmp_path))
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    metrics = runner.message_hub.get_info('eval_res') or {}
    scalars = runner.message_hub.log_scalars
    assert 'val/building/score' in scalars, sorted(scalars)
    score = scalars['val/building/score'].current()
    assert 0.0 <= score <= 1.0, metrics

    runner.test()
    with open(osp.join(str(tmp_path), 'submission.csv'), newline='') as f:
        rows = list(csv.reader(f))
    with open(osp.join(building_root, 'test.csv'), newline='') as f:
        test_rows = list(csv.reader(f))
    assert rows[0] == ['img_id', 'mask_rle']
    assert [r[0] for r in rows[1:]] == [r[0] for r in test_rows[1:]]
    assert all(r[1] == '-1' or r[1].split()[0].isdigit() for r in rows[1:])
