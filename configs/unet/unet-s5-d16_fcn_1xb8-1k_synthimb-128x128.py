# UNet (s5-d16) + FCN head with CE + GeneralizedDiceLoss (Sudre et al. 2017)
# on the decode head and an effective-number weighted CE on the auxiliary head.
_base_ = [
    'mmseg::_base_/models/fcn_unet_s5-d16.py',
    '../_base_/datasets/synthetic_imbalance.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
crop_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(base_channels=16, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=16,
        channels=16,
        num_classes=4,
        norm_cfg=norm_cfg,
        loss_decode=[
            dict(type='CrossEntropyLoss', loss_weight=1.0,
                 avg_non_ignore=True),
            dict(type='GeneralizedDiceLoss', mode='multiclass',
                 loss_weight=1.0),
        ]),
    auxiliary_head=dict(
        in_channels=32,
        channels=16,
        num_classes=4,
        norm_cfg=norm_cfg,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=0.4, avg_non_ignore=True)),
    test_cfg=dict(mode='slide', crop_size=(128, 128), stride=(85, 85)))
custom_hooks = [dict(type='ClassWeightHook', method='effective_num',
                     beta=0.9999)]
train_cfg = dict(max_iters=1000, val_interval=500)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=1000,
         by_epoch=False)
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500))
