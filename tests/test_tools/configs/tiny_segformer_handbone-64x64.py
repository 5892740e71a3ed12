# Tiny multi-label SegFormer on generated hand-bone data, for the tools tests
# (a few CPU iterations in seconds). `data_root` is set by the tests with
# `--cfg-options`.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)

num_classes = 29
crop_size = (64, 64)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='MultiLabelEncoderDecoder',
    data_preprocessor=dict(
        type='MultiLabelSegDataPreProcessor',
        num_classes=num_classes,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=0,
        size=crop_size),
    pretrained=None,
    backbone=dict(
        type='MixVisionTransformer',
        in_channels=3,
        embed_dims=8,
        num_stages=4,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        patch_sizes=[7, 3, 3, 3],
        sr_ratios=[8, 4, 2, 1],
        out_indices=(0, 1, 2, 3),
        mlp_ratio=2),
    decode_head=dict(
        type='MultiLabelHead',
        head=dict(
            type='SegformerHead',
            in_channels=[8, 8, 8, 8],
            in_index=[0, 1, 2, 3],
            channels=8,
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelBCELoss', loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='multilabel', loss_weight=1.0),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole', flip=True, threshold=0.5))

dataset_type = 'HandBoneDataset'
data_root = 'data/hand_bone'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='PackMultiLabelSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        fold=0,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadMultiLabelAnnotations'),
            dict(type='Resize', scale=crop_size, keep_ratio=True),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackMultiLabelSegInputs'),
        ]))
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        fold=0,
        pipeline=test_pipeline))
test_evaluator = dict(type='MultiLabelDiceMetric')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
