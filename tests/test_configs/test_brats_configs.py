# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The BraTS configs: fields, every distinct network (shrunk) builds on 4
(or 12) channel float input and takes a loss step, and a shrunk UNet trains
and validates through mmengine's Runner on converted generated cases. The
``-amp`` configs train on CUDA where there is one.

``BraTSMetric`` (the configs' evaluator) is not needed here: the Runner
tests swap in ``MultiLabelDiceMetric`` and the checkpoint's ``mDice``.
Pretrained weights cannot be downloaded: the tests drop them.
"""
import copy
import functools
import glob
import json
import math
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_ext.datasets.brats import convert_brats
from mmseg_ext.datasets.generators.brats import generate_brats

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'brats', '*.py')))
IDS = [osp.basename(p)[:-3] for p in CONFIGS]
NAME_RE = re.compile(r'^(?P<algo>[a-z0-9-]+)_(?P<backbone>[a-z0-9-]+)_'
                     r'(?:[a-z0-9-]+_)?1xb\d+(?P<amp>-amp)?-20k_'
                     r'brats-240x240(?:_(?P<variant>bce-dice|2\.5d))?\.py$')
C = 3
CASE_KEYS = ('case_id', 'slice_index', 'case_slices', 'brats_case')
PRETRAINED_URL = 'https://download.openmmlab.com/mmsegmentation/'


@functools.lru_cache(maxsize=None)
def _load(path):
    """Parsed config (cached: read only, copy before changing it)."""
    return Config.fromfile(path)


def _no_pretrained(model_cfg):
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.pretrained = None
    if 'init_cfg' in model_cfg.backbone:
        model_cfg.backbone.init_cfg = None
    return model_cfg


def _model_key(cfg):
    model = cfg.model.to_dict()
    return json.dumps(model, sort_keys=True, default=str)


@pytest.fixture(scope='module')
def no_yapf():
    mp = pytest.MonkeyPatch()
    mp.setattr(Config, 'pretty_text', property(lambda self: self.text))
    yield
    mp.undo()


def test_configs_found_and_named():
    assert len(CONFIGS) == 10
    seen = set()
    for path in CONFIGS:
        match = NAME_RE.match(osp.basename(path))
        assert match, osp.basename(path)
        seen.add((match['algo'], match['amp'], match['variant']))
    for algo in ('unet-s5-d16', 'segformer', 'upernet'):
        for variant in ((None, None), ('-amp', None), (None, 'bce-dice')):
            assert (algo, ) + variant in seen
    assert ('unet-s5-d16', None, '2.5d') in seen


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_config_fields(path):
    cfg = _load(path)
    match = NAME_RE.match(osp.basename(path))
    assert cfg.custom_imports['imports'] == ['mmseg_ext']
    assert cfg.default_scope == 'mmseg'
    assert cfg.visualizer.type == 'MultiLabelSegLocalVisualizer'
    k = 1 if match['variant'] == '2.5d' else 0
    channels = 4 * (2 * k + 1)
    model = cfg.model
    assert model.type == 'MultiLabelEncoderDecoder'
    pre = model.data_preprocessor
    assert pre.type == 'MultiLabelSegDataPreProcessor'
    assert pre.num_classes == C and tuple(pre.size) == (240, 240)
    assert pre.mean == [0.0] * channels and pre.std == [1.0] * channels
    assert pre.bgr_to_rgb is False and pre.seg_pad_val == 0
    assert model.backbone.in_channels == channels
    heads = [model.decode_head] + ([model.auxiliary_head]
                                   if model.get('auxiliary_head') else [])
    losses = {'bce-dice': {'MultiLabelBCELoss', 'SoftDiceLoss'}}.get(
        match['variant'], {'MultiLabelFocalLoss', 'SoftDiceLoss'})
    for head in heads:
        assert head.type == 'MultiLabelHead' and head.head.num_classes == C
        assert {loss.type for loss in head.loss_decode} == losses
    assert model.test_cfg.mode == 'whole'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[key].dataset
        assert ds.type == 'BraTSDataset' and ds.context_slices == k
        assert ds.pipeline[0].type == 'LoadBraTSSlice'
        pack = ds.pipeline[-1]
        assert pack.type == 'PackMultiLabelSegInputs'
        assert set(CASE_KEYS) <= set(pack.meta_keys)
        assert 'img_shape' in pack.meta_keys
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.split == 'val'
    assert not cfg.val_dataloader.sampler.shuffle
    assert [t.type for t in cfg.train_dataloader.dataset.pipeline] == [
        'LoadBraTSSlice', 'RandomFlip', 'RandomRotate',
        'PackMultiLabelSegInputs'
    ]
    assert 'PhotoMetricDistortion' not in str(cfg.train_dataloader)
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator == dict(type='BraTSMetric', label_scheme='brats2020',
                                 convention='brats2020')
    assert cfg.default_hooks.checkpoint.save_best == 'mean_dice'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    if match['amp']:
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.loss_scale == 'dynamic'
        parent = _load(path.replace('-amp', ''))
        assert _model_key(parent) == _model_key(cfg)
    else:
        assert cfg.optim_wrapper.type == 'OptimWrapper'
    backbone = model.backbone
    if backbone.type == 'MixVisionTransformer':
        assert backbone.init_cfg.checkpoint.startswith(PRETRAINED_URL)
    elif backbone.type == 'SwinTransformer':
        assert backbone.init_cfg is None  # see the config's comment


NETWORKS = [
    'segformer_mit-b0_1xb16-20k_brats-240x240.py',
    'unet-s5-d16_fcn_1xb16-20k_brats-240x240.py',
    'unet-s5-d16_fcn_1xb16-20k_brats-240x240_2.5d.py',
    'upernet_swin-t_1xb8-20k_brats-240x240.py',
]


def _network_key(cfg):
    model = cfg.model.to_dict()
    for head in ('decode_head', 'auxiliary_head'):
        if head in model:
            model[head].pop('loss_decode')
    return json.dumps(model, sort_keys=True, default=str)


def test_networks_cover_every_config():
    keys = {_network_key(_load(osp.join(ROOT, 'configs', 'brats', n)))
            for n in NETWORKS}
    assert len(keys) == len(NETWORKS)
    for path in CONFIGS:
        assert _network_key(_load(path)) in keys, path


# --- a shrunk UNet trains and validates on converted generated cases --------
@pytest.fixture(scope='module')
def brats_root(tmp_path_factory):
    """3 labelled 32x32x12 cases, 3 folds (2 train, 1 val per fold)."""
    root = str(tmp_path_factory.mktemp('brats_cfg'))
    generate_brats(root, 3, (32, 32, 12), 'brats2020', seed=7)
    convert_brats(root, num_folds=3, show_progress=False)
    return root


def _scale_sizes(node, size):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('crop_size', 'size') and isinstance(
                    value, (tuple, list)) and len(value) == 2:
                node[key] = (size, size)
            else:
                _scale_sizes(value, size)
    elif isinstance(node, list):
        for value in node:
            _scale_sizes(value, size)


def _shrink_model(model):
    """The same network family, a few channels wide, 32x32 input."""
    model = _no_pretrained(model)
    _scale_sizes(model, 32)
    backbone = model.backbone
    head, aux = model.decode_head.head, model.get('auxiliary_head')
    if backbone.type == 'UNet':
        backbone.update(base_channels=4)
        head.update(in_channels=4, channels=4)
        aux.head.update(in_channels=8, channels=4)
    elif backbone.type == 'MixVisionTransformer':
        backbone.update(embed_dims=8, num_layers=[1, 1, 1, 1],
                        num_heads=[1, 1, 1, 1], drop_path_rate=0.0)
        head.update(in_channels=[8, 8, 8, 8], channels=8)
    else:
        backbone.update(embed_dims=8, depths=[1, 1, 1, 1],
                        num_heads=[1, 1, 1, 1], window_size=4,
                        drop_path_rate=0.0)
        head.update(in_channels=[8, 16, 32, 64], channels=8,
                    pool_scales=(1, 2))
        aux.head.update(in_channels=32, channels=8)
    return model


def _shrunk_cfg(path, data_root, work_dir, max_iters):
    cfg = Config.fromfile(path)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].update(num_workers=0, persistent_workers=False,
                        batch_size=2)
        cfg[key].dataset.data_root = data_root
    cfg.model = _shrink_model(cfg.model)
    # BraTSMetric comes from another module; the Dice of the slices here.
    cfg.val_evaluator = dict(type='MultiLabelDiceMetric')
    cfg.test_evaluator = cfg.val_evaluator
    cfg.default_hooks.checkpoint.update(save_best='mDice',
                                        interval=max_iters)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler = [
        dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0,
             end=max_iters)
    ]
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    return cfg


@pytest.mark.parametrize('name', NETWORKS)
def test_shrunk_network_takes_a_loss_step(name):
    """Each distinct network of the configs (a few channels wide) on float
    multi-channel input (z-scores, negative values included)."""
    cfg = _load(osp.join(ROOT, 'configs', 'brats', name))
    init_default_scope('mmseg')
    model = MODELS.build(_shrink_model(cfg.model))
    channels = cfg.model.backbone.in_channels
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(2):
        packed = rng.integers(0, 8, (1, 32, 32), dtype=np.uint16) | 1 << 15
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(packed.view(np.int16)))
        sample.set_metainfo(dict(img_shape=(32, 32), ori_shape=(32, 32)))
        samples.append(sample)
    data = model.data_preprocessor(
        dict(inputs=[torch.randn(channels, 32, 32) for _ in range(2)],
             data_samples=samples), training=True)
    assert data['inputs'].shape == (2, channels, 32, 32)
    model.train()
    losses = model.loss(**data)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()


def test_shrunk_unet_trains_and_validates(brats_root, tmp_path, no_yapf):
    name = 'unet-s5-d16_fcn_1xb16-20k_brats-240x240.py'
    cfg = _shrunk_cfg(osp.join(ROOT, 'configs', 'brats', name), brats_root,
                      tmp_path, max_iters=2)
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/loss'].current())
    assert 0.0 <= scalars['val/mDice'].current() <= 1.0
    assert glob.glob(osp.join(str(tmp_path), 'best_mDice_iter_2.pth'))
    # the validation batches carried the case fields of the contract
    batch = next(iter(runner.val_dataloader))
    meta = batch['data_samples'][0].metainfo
    assert set(CASE_KEYS) <= set(meta) and meta['num_classes'] == 3
    assert batch['inputs'][0].shape == (4, 32, 32)


AMP_CONFIGS = [p for p in CONFIGS if '-amp-' in osp.basename(p)]


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='needs a CUDA device (AmpOptimWrapper); '
                    'torch.cuda.is_available() is False')
@pytest.mark.parametrize('path', AMP_CONFIGS,
                         ids=[osp.basename(p)[:-3] for p in AMP_CONFIGS])
def test_amp_config_trains_on_cuda(path, brats_root, tmp_path, no_yapf):
    """A few AMP iterations of each shrunk ``-amp`` config on CUDA."""
    max_iters = 6  # the dynamic loss scale may skip the first steps
    cfg = _shrunk_cfg(path, brats_root, tmp_path, max_iters)
    runner = Runner.from_cfg(cfg)
    runner.train()
    from mmengine.optim import AmpOptimWrapper
    assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
    assert math.isfinite(runner.optim_wrapper.loss_scaler.get_scale())
    assert np.isfinite(runner.message_hub.log_scalars['train/loss'].current())
