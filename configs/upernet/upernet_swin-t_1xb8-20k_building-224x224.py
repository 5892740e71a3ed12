# UPerNet + Swin-T (ImageNet-1k pretrained, from mmseg's zoo) as a binary
# sigmoid segmentor (MultiLabelHead, C = 1) for building footprints, with
# Focal + Dice losses; AdamW + cosine (Swin's usual recipe: no weight decay
# on position tables and norms).
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    '../_base_/datasets/building.py',
    '../_base_/multilabel_runtime.py',
    '../_base_/schedules/building_adamw-cosine_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
crop_size = (224, 224)
norm_cfg = dict(type='SyncBN', requires_grad=True)
checkpoint_file = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_tiny_patch4_window7_224_20220317-1cdeb081.pth'  # noqa
model = dict(
    type='MultiLabelEncoderDecoder',
    data_preprocessor=dict(
        type='MultiLabelSegDataPreProcessor',
        num_classes=1,
        size=crop_size,
        seg_pad_val=0),  # valid bit clear: padding is ignored
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file),
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        use_abs_pos_embed=False,
        drop_path_rate=0.3,
        patch_norm=True),
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='UPerHead',
            in_channels=[96, 192, 384, 768],
            in_index=[0, 1, 2, 3],
            pool_scales=(1, 2, 3, 6),
            channels=512,
            dropout_ratio=0.1,
            num_classes=1,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelFocalLoss', gamma=2.0, alpha=None,
                 loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='binary', loss_weight=1.0),
        ],
        threshold=0.5),
    auxiliary_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='FCNHead',
            in_channels=384,
            in_index=2,
            channels=256,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.1,
            num_classes=1,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelFocalLoss', gamma=2.0, alpha=None,
                 loss_weight=0.4),
        ],
        threshold=0.5),
    test_cfg=dict(mode='whole', flip=False, threshold=0.5, min_area=0))
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
