# DeepLabV3+ (mmseg's DepthwiseSeparableASPPHead) on a MobileNetV3-Large
# (timm `mobilenetv3_large_100`, ImageNet-1k weights fetched by timm)
# through mmseg's TIMMBackbone, as a binary sigmoid segmentor
# (MultiLabelHead, C = 1) with Focal + Dice losses; Adam + StepLR.
# Features at out_indices (1, 2, 3, 4) with output_stride=16: channels
# [24, 40, 112, 960] at strides [4, 8, 16, 16]. (mmseg's own MobileNetV3,
# used by its LR-ASPP configs, would work too; timm's is used here so the
# three ensembled models share one weight source.)
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/building.py',
    '../_base_/multilabel_runtime.py',
    '../_base_/schedules/building_adam-step_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
crop_size = (224, 224)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='MultiLabelEncoderDecoder',
    pretrained=None,  # timm loads the backbone weights itself
    data_preprocessor=dict(
        type='MultiLabelSegDataPreProcessor',
        num_classes=1,
        size=crop_size,
        seg_pad_val=0),  # valid bit clear: padding is ignored
    backbone=dict(
        _delete_=True,
        type='TIMMBackbone',
        model_name='mobilenetv3_large_100',
        features_only=True,
        pretrained=True,
        out_indices=(1, 2, 3, 4),
        output_stride=16),
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='DepthwiseSeparableASPPHead',
            in_channels=960,
            in_index=3,
            channels=256,
            dilations=(1, 6, 12, 18),
            c1_in_channels=24,
            c1_channels=48,
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
            in_channels=112,
            in_index=2,
            channels=128,
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
