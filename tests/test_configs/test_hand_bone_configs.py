# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The hand-bone (multi-label) configs: fields, every model builds and takes
a loss step, a shrunk config of each family trains and validates through
mmengine's Runner on generated data, and the Albu augmentations move packed
labels exactly.

Pretrained weights cannot be downloaded in tests: the configs keep the real
URLs (and timm's ``pretrained=True``); the tests override them.
"""
import copy
import functools
import glob
import json
import os.path as osp
import re

import albumentations
import cv2
import numpy as np
import pytest
import torch
from mmengine import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import generate_hand_bone
from mmseg_ext.datasets.transforms.multilabel_transforms import \
    pipeline_packed_map
from mmseg_ext.utils.multilabel import read_packed_label

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', '*', '*_handbone*.py')))
IDS = [osp.relpath(p, osp.join(ROOT, 'configs')) for p in CONFIGS]
NAME_RE = re.compile(r'^(?P<algo>[a-z0-9-]+)_(?P<backbone>[a-z0-9-]+)_'
                     r'(?:[a-z0-9-]+_)?1xb\d+(?P<amp>-amp)?-20k_'
                     r'handbone(?P<full>2048)?-(?P<h>\d+)x(?P<w>\d+)\.py$')
C = 29
PRETRAINED_URL = 'https://download.openmmlab.com/'


@functools.lru_cache(maxsize=None)
def _load(path):
    """Parsed config (cached: read only, copy before changing it)."""
    return Config.fromfile(path)


def _no_pretrained(model_cfg):
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.pretrained = None
    backbone = model_cfg.backbone
    if 'init_cfg' in backbone:
        backbone.init_cfg = None
    if backbone.type == 'TIMMBackbone':
        backbone.pretrained = False
    if backbone.type == 'SingleChannelBackbone':
        backbone.checkpoint = None
    return model_cfg


def _model_key(cfg):
    """The model config without its input sizes (same network)."""
    model = cfg.model.to_dict()
    model['data_preprocessor'].pop('size', None)
    model.pop('test_cfg', None)
    return json.dumps(model, sort_keys=True, default=str)


@pytest.fixture(scope='module')
def no_yapf():
    """Runner logs and dumps the config through yapf (seconds per config);
    plain text is enough here."""
    mp = pytest.MonkeyPatch()
    mp.setattr(Config, 'pretty_text', property(lambda self: self.text))
    yield
    mp.undo()


@pytest.fixture(scope='module')
def hand_bone_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('hand_bone_cfg'))
    generate_hand_bone(root, num_train_ids=3, num_test_ids=0, size=128,
                       seed=2)
    convert_hand_bone(root, num_folds=3, show_progress=False)
    return root


def test_configs_found_and_named():
    assert len(CONFIGS) >= 15
    families = set()
    for path in CONFIGS:
        match = NAME_RE.match(osp.basename(path))
        assert match, f'{osp.basename(path)} does not follow ' \
            '{algo}_{backbone}_{N}xb{M}-{iters}k_{dataset}-{H}x{W}.py'
        families.add(match['algo'])
    assert families == {'upernet', 'segformer', 'unet-s5-d16',
                        'deeplabv3plus', 'unetplusplus', 'unet3plus', 'unet'}
    names = ' '.join(osp.basename(p) for p in CONFIGS)
    for needed in ('handbone-512x512', 'handbone-1024x1024',
                   'handbone-2048x2048', 'handbone2048-1024x1024', '-amp-',
                   'mit-b0', 'mit-b3', 'swin-t', 'efficientnet-b3',
                   'unetplusplus_efficientnet-b3',
                   'unetplusplus_efficientnet-b4',
                   'unet3plus_resnet34', 'unet_hrnet-w32',
                   'unetplusplus_hrnet-w48', 'segformer_mit-b4',
                   'upernet_convnext-xl'):
        assert needed in names


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_config_fields(path):
    cfg = _load(path)
    match = NAME_RE.match(osp.basename(path))
    crop = (int(match['h']), int(match['w']))
    assert cfg.custom_imports['imports'] == ['mmseg_ext']
    assert cfg.default_scope == 'mmseg'
    # configs/_base_/multilabel_runtime.py: draws (C, H, W) masks
    assert cfg.visualizer.type == 'MultiLabelSegLocalVisualizer'
    model = cfg.model
    assert model.type == 'MultiLabelEncoderDecoder'
    assert model.data_preprocessor.type == 'MultiLabelSegDataPreProcessor'
    assert model.data_preprocessor.num_classes == C
    assert tuple(model.data_preprocessor.size) == crop
    assert model.data_preprocessor.seg_pad_val < 1 << 15  # padding ignored
    heads = [model.decode_head] + ([model.auxiliary_head]
                                   if model.get('auxiliary_head') else [])
    for head in heads:
        assert head.type == 'MultiLabelHead'
        assert head.head.num_classes == C
        losses = {loss.type: loss for loss in head.loss_decode}
        if head.head.type == 'UNet3PlusHead':  # the team's Focal + Dice
            assert set(losses) == {'MultiLabelFocalLoss', 'SoftDiceLoss'}
            assert losses['MultiLabelFocalLoss'].loss_weight == 0.4
            assert losses['SoftDiceLoss'].loss_weight == 0.6
        else:
            assert set(losses) == {'MultiLabelBCELoss', 'SoftDiceLoss'}
        assert losses['SoftDiceLoss'].mode == 'multilabel'
    assert model.test_cfg.flip is True
    if match['full']:  # full resolution: sliding window over 2048
        assert model.test_cfg.mode == 'slide'
        assert tuple(model.test_cfg.crop_size) == crop
        assert tuple(model.test_cfg.stride) == (crop[0] * 3 // 4, ) * 2
    else:
        assert model.test_cfg.mode == 'whole'
        resize = cfg.val_dataloader.dataset.pipeline[1]
        assert resize.type == 'Resize' and tuple(resize.scale) == crop
    train = cfg.train_dataloader.dataset
    assert train.type == 'HandBoneDataset' and train.split == 'train'
    assert cfg.val_dataloader.dataset.split == 'val'
    assert cfg.val_evaluator.type == 'MultiLabelDiceMetric'
    pipeline = [t.type for t in train.pipeline]
    grey = '_1ch_' in osp.basename(path)
    assert pipeline == [
        'LoadImageFromFile', 'LoadMultiLabelAnnotations', 'RandomResize',
        'RandomCrop', 'RandomFlip', 'Albu'
    ] + (['RGB2Gray'] if grey else []) + ['PackMultiLabelSegInputs']
    assert tuple(train.pipeline[3].crop_size) == crop
    # optimiser and schedule
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert [s.type for s in cfg.param_scheduler] == \
        ['LinearLR', 'CosineAnnealingLR']
    assert cfg.train_cfg.max_iters == 20000
    if match['amp']:
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.loss_scale == 'dynamic'
        parent = _load(path.replace('-amp', ''))
        assert parent.optim_wrapper.type == 'OptimWrapper'
        assert _model_key(parent) == _model_key(cfg)
    else:
        assert cfg.optim_wrapper.type == 'OptimWrapper'
    # 1-channel X-ray variants: grey loading, 1-channel normalisation
    for p in (train.pipeline[0], cfg.val_dataloader.dataset.pipeline[0]):
        assert p.get('color_type', 'color') == ('grayscale' if grey
                                                else 'color')
    if grey:
        pre = model.data_preprocessor
        assert pre.mean == [114.5] and pre.std == [57.6]
        assert pre.bgr_to_rgb is False
        parent = _load(path.replace('_1ch', ''))
        assert parent.model.decode_head == model.decode_head
    # real pretrained weights for users (UNet trains from scratch)
    backbone = model.backbone
    if backbone.type == 'SingleChannelBackbone':
        assert grey and backbone.checkpoint.startswith(PRETRAINED_URL)
        backbone = backbone.backbone  # its init_cfg is dropped
    elif grey:
        assert backbone.type == 'TIMMBackbone' and backbone.in_channels == 1
    if backbone.type == 'TIMMBackbone':
        assert backbone.pretrained is True
        assert backbone.model_name == match['backbone'].replace(
            '-', '_').replace('convnext_xl', 'convnext_xlarge')
    elif backbone.type != 'UNet':
        assert backbone.init_cfg.checkpoint.startswith(PRETRAINED_URL)
        assert not model.get('pretrained')


# One config per distinct network; the others differ from one of these only
# in input size, test mode or optimiser wrapper (checked below).
NETWORKS = [
    'deeplabv3plus/deeplabv3plus_efficientnet-b3_1xb4-20k_handbone-'
    '1024x1024.py',
    'segformer/segformer_mit-b0_1xb2-20k_handbone-1024x1024.py',
    'segformer/segformer_mit-b3_1xb2-20k_handbone-1024x1024.py',
    'unet/unet-s5-d16_fcn_1xb4-20k_handbone-512x512.py',
    'upernet/upernet_swin-t_1xb2-20k_handbone-1024x1024.py',
]
# The zoo's large networks (HRNet-W48, MiT-B4, ConvNeXt-XL ... cost minutes
# on CI's CPUs at their real size): their head widths are checked against
# the backbones' real channels below; their code paths train shrunk in
# test_shrunk_family_trains_and_validates.
ZOO_NETWORKS = [
    'unetplusplus/unetplusplus_efficientnet-b3_1xb2-20k_handbone-'
    '1024x1024.py',
    'unetplusplus/unetplusplus_efficientnet-b4_1xb2-20k_handbone-'
    '1024x1024.py',
    'unetplusplus/unetplusplus_hrnet-w48_1xb2-20k_handbone-1024x1024.py',
    'unet3plus/unet3plus_resnet34_1xb2-20k_handbone-1024x1024.py',
    'unet/unet_hrnet-w32_1xb2-20k_handbone-1024x1024.py',
    'segformer/segformer_mit-b4_1xb2-20k_handbone-1024x1024.py',
    'upernet/upernet_convnext-xl_1xb2-20k_handbone-1024x1024.py',
    'unet/unet_hrnet-w32_1ch_1xb2-20k_handbone-1024x1024.py',
    'unetplusplus/unetplusplus_efficientnet-b3_1ch_1xb2-20k_handbone-'
    '1024x1024.py',
]
# Feature channels of the real backbones (timm 1.0 ``feature_info`` at the
# configs' out_indices; HRNet's last stage; MiT's embed_dims x heads).
TIMM_CHANNELS = {
    'efficientnet_b3': [24, 32, 48, 136, 384],
    'efficientnet_b4': [24, 32, 56, 160, 448],
    'resnet34': [64, 64, 128, 256, 512],
    'convnext_xlarge': [256, 512, 1024, 2048],
}


def _backbone_channels(backbone):
    if backbone.type == 'SingleChannelBackbone':
        backbone = backbone.backbone
    if backbone.type == 'TIMMBackbone':
        return TIMM_CHANNELS[backbone.model_name]
    if backbone.type == 'HRNet':
        return list(backbone.extra.stage4.num_channels)
    assert backbone.type == 'MixVisionTransformer'
    return [backbone.embed_dims * h for h in backbone.num_heads]


@pytest.mark.parametrize('name', ZOO_NETWORKS)
def test_zoo_head_widths_fit_the_backbone(name):
    model = _load(osp.join(ROOT, 'configs', name)).model
    channels = _backbone_channels(model.backbone)
    head = model.decode_head.head
    assert list(head.in_channels) == channels
    if model.get('auxiliary_head'):
        aux = model.auxiliary_head.head
        assert aux.in_channels == channels[aux.in_index]
    if head.type in ('UNetPlusPlusHead', 'UNet3PlusHead'):
        assert head.deep_supervision == 0.25
        assert not model.get('auxiliary_head')


def test_networks_cover_every_config():
    keys = {_model_key(_load(osp.join(ROOT, 'configs', n)))
            for n in NETWORKS + ZOO_NETWORKS}
    assert len(keys) == len(NETWORKS + ZOO_NETWORKS)
    for path in CONFIGS:
        assert _model_key(_load(path)) in keys, path


@pytest.mark.parametrize('name', NETWORKS)
def test_model_builds_and_takes_a_loss_step(name):
    """Each distinct network of the configs, at its real size."""
    cfg = _load(osp.join(ROOT, 'configs', name))
    init_default_scope('mmseg')
    model = MODELS.build(_no_pretrained(cfg.model))
    model.data_preprocessor.size = (64, 64)
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(2):
        packed = rng.integers(0, 1 << 16, (2, 64, 64), dtype=np.uint16)
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(packed.view(np.int16)))
        sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64)))
        samples.append(sample)
    data = model.data_preprocessor(
        dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)
                     for _ in range(2)],
             data_samples=samples), training=True)
    model.train()
    losses = model.loss(**data)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()


# --- a shrunk config of each family trains and validates -------------------
def _scale_sizes(node, factor):
    """Multiply every (h, w) size in pipelines/model settings by factor."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ('scale', 'crop_size', 'stride', 'size') and \
                    isinstance(value, (tuple, list)) and len(value) == 2:
                node[key] = tuple(max(8, int(v * factor)) for v in value)
            else:
                _scale_sizes(value, factor)
    elif isinstance(node, list):
        for value in node:
            _scale_sizes(value, factor)


def _shrink_model(model):
    backbone = model.backbone
    if backbone.type == 'SingleChannelBackbone':
        backbone = backbone.backbone
    head, aux = model.decode_head.head, model.get('auxiliary_head')
    if backbone.type == 'SwinTransformer':
        backbone.update(embed_dims=8, depths=[1, 1, 1, 1],
                        num_heads=[1, 1, 1, 1], window_size=4,
                        drop_path_rate=0.0)
        head.update(in_channels=[8, 16, 32, 64], channels=8,
                    pool_scales=(1, 2))
        aux.head.update(in_channels=32, channels=8)
    elif backbone.type == 'MixVisionTransformer':
        backbone.update(embed_dims=8, num_layers=[1, 1, 1, 1],
                        num_heads=[1, 1, 1, 1], drop_path_rate=0.0)
        head.update(in_channels=[8, 8, 8, 8], channels=8)
    elif backbone.type == 'UNet':
        backbone.update(base_channels=4)
        head.update(in_channels=4, channels=4)
        aux.head.update(in_channels=8, channels=4)
    elif backbone.type == 'TIMMBackbone' and head.type == 'UPerHead':
        # ConvNeXt-XL -> the smallest ConvNeXt
        backbone.update(model_name='convnext_atto', drop_path_rate=0.0)
        head.update(in_channels=[40, 80, 160, 320], channels=8,
                    pool_scales=(1, 2))
        aux.head.update(in_channels=160, channels=8)
    elif backbone.type == 'TIMMBackbone' and head.type == 'UNet3PlusHead':
        backbone.update(model_name='resnet18')  # ResNet-34's channels
        head.update(cat_channels=4)
    elif backbone.type == 'TIMMBackbone' and \
            head.type == 'UNetPlusPlusHead':
        backbone.update(model_name='efficientnet_b0', drop_path_rate=0.0)
        head.update(in_channels=[16, 24, 40, 112, 320],
                    decoder_channels=(4, 4, 8, 8))
    elif backbone.type == 'TIMMBackbone':
        # the same timm family, its smallest member
        backbone.update(model_name='efficientnet_b0', drop_path_rate=0.0)
        head.update(in_channels=320, c1_in_channels=24, channels=16,
                    c1_channels=8)
        aux.head.update(in_channels=112, channels=8)
    elif backbone.type == 'HRNet':
        channels = (4, 8, 16, 32)
        backbone.extra.stage1.update(num_blocks=(1, ), num_channels=(4, ))
        for i, stage in enumerate(('stage2', 'stage3', 'stage4'), 2):
            backbone.extra[stage].update(num_modules=1,
                                         num_blocks=(1, ) * i,
                                         num_channels=channels[:i])
        head.update(in_channels=list(channels),
                    decoder_channels=(8, ) * len(head.decoder_channels))
    else:
        raise AssertionError(f'unknown backbone {backbone.type}')


FAMILIES = [
    'upernet/upernet_swin-t_1xb2-20k_handbone-1024x1024.py',
    'segformer/segformer_mit-b3_1xb2-20k_handbone2048-1024x1024.py',
    'unet/unet-s5-d16_fcn_1xb4-20k_handbone2048-512x512.py',
    'deeplabv3plus/deeplabv3plus_efficientnet-b3_1xb4-20k_handbone-'
    '1024x1024.py',
    # (UNet++ EfficientNet: test_boundary_loss_trains_on_pipeline_maps)
    'unet3plus/unet3plus_resnet34_1xb2-20k_handbone-1024x1024.py',
    # HRNet + UNetHead, on 1-channel input (grey loading, stem summed)
    'unet/unet_hrnet-w32_1ch_1xb2-20k_handbone-1024x1024.py',
    'upernet/upernet_convnext-xl_1xb2-20k_handbone-1024x1024.py',
]


@pytest.mark.parametrize('name', FAMILIES)
def test_shrunk_family_trains_and_validates(name, hand_bone_root, tmp_path,
                                            no_yapf):
    runner = Runner.from_cfg(_shrunk_cfg(name, hand_bone_root, tmp_path))
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/loss'].current())
    assert 0.0 <= scalars['val/mDice'].current() <= 1.0
    assert glob.glob(osp.join(str(tmp_path), 'best_mDice_iter_2.pth'))


def test_boundary_loss_trains_on_pipeline_maps(hand_bone_root, tmp_path,
                                               no_yapf, monkeypatch):
    """The UNet++ family (deep supervision) trains and validates, with
    GenerateDistanceMaps in the pipeline, DistanceBoundaryLoss on the maps
    it packs (the loss's own fallback is disabled) and LossScheduleHook."""
    from mmseg_ext.models.losses import DistanceBoundaryLoss

    def no_fallback(*args, **kwargs):
        raise AssertionError('the maps should come from the pipeline')

    monkeypatch.setattr(DistanceBoundaryLoss, 'distance_maps', no_fallback)
    cfg = _shrunk_cfg(
        'unetplusplus/unetplusplus_efficientnet-b3_1xb2-20k_handbone-'
        '1024x1024.py', hand_bone_root, tmp_path)
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline.insert(len(pipeline) - 1,
                    dict(type='GenerateDistanceMaps', max_distance=8))
    cfg.model.decode_head.loss_decode = [
        dict(type='MultiLabelBCELoss'),
        dict(type='DistanceBoundaryLoss',
             region_loss=dict(type='SoftDiceLoss', mode='multilabel'),
             schedule=dict(type='linear', begin=0, end=2, start=0.0,
                           stop=0.5))
    ]
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='LossScheduleHook')]
    runner = Runner.from_cfg(cfg)
    runner.train()
    loss = runner.model.decode_head.loss_decode[1]
    assert loss.iteration == 1  # the last of 2 iterations, 0-based
    assert loss.boundary_weight == pytest.approx(0.25)
    assert loss.region_loss.class_weight is not None  # ClassWeightHook
    scalars = runner.message_hub.log_scalars
    for key in ('train/decode.loss_boundary',
                'train/decode.aux1_loss_boundary',
                'train/decode.aux3_loss_ml_bce'):
        assert np.isfinite(scalars[key].current()), key
    assert 0.0 <= scalars['val/mDice'].current() <= 1.0
    assert glob.glob(osp.join(str(tmp_path), 'best_mDice_iter_2.pth'))


def _shrunk_cfg(name, hand_bone_root, tmp_path):
    """A family's config at 64x64 on the generated data, 2 iterations."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    crop = cfg.model.data_preprocessor.size[0]
    factor = 64 / crop  # 64x64 training crops; the images are 128x128
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.data_root = hand_bone_root
        _scale_sizes(loader.dataset.pipeline, factor)
    cfg.train_dataloader.batch_size = 2
    cfg.model = _no_pretrained(cfg.model)
    _scale_sizes(cfg.model, factor)
    _shrink_model(cfg.model)
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False,
             begin=0, end=2)
    ]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 2
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    return cfg


# --- augmentations ----------------------------------------------------------
def test_albu_augmentations_move_packed_labels_exactly(hand_bone_root):
    """Each Albu transform of the configs, applied for sure, keeps the
    packed uint16 label's dtype and shape and creates no new label value
    (nearest interpolation; 0 = ignored outside the rotated image)."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', '_base_', 'datasets', 'hand_bone.py'))
    init_default_scope('mmseg')
    dataset = DATASETS.build(
        dict(type='HandBoneDataset', data_root=hand_bone_root, split='all'))
    info = dataset.get_data_info(0)
    img = cv2.imread(info['img_path'])
    packed = pipeline_packed_map(read_packed_label(info['seg_map_path'], C))
    values = set(map(tuple, packed.reshape(-1, 3).tolist())) | {(0, 0, 0)}
    names = []
    for t in cfg.albu_transforms:
        t = dict(t, p=1.0)
        names.append(t['type'])
        aug = getattr(albumentations, t.pop('type'))(**t)
        out = albumentations.Compose([aug])(image=img, mask=packed)
        mask = out['mask']
        assert mask.dtype == np.uint16 and mask.shape == packed.shape
        assert set(map(tuple, mask.reshape(-1, 3).tolist())) <= values, \
            names[-1]
        assert out['image'].shape == img.shape
    assert names == ['GaussianBlur', 'ElasticTransform', 'GridDistortion',
                     'Rotate', 'CLAHE']
    # the rotation border is ignored (valid bit clear), not "no bone"
    rotate = dict(cfg.albu_transforms[3])
    assert rotate['fill_mask'] == 0 and rotate['border_mode'] == 0
