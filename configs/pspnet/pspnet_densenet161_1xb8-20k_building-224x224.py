# PSPNet on a DenseNet-161 (timm, ImageNet-1k weights fetched by timm:
# `densenet161.tv_in1k`) through mmseg's TIMMBackbone, as a binary
# sigmoid segmentor (MultiLabelHead, C = 1) with Focal + Dice losses; Adam
# + StepLR. One of the three models a top team of the building competition
# ensembled (with DeepLabV3+ MobileNetV3-L and UNet ResNet-50).
# TIMMBackbone returns timm's `features_only` maps; DenseNet-161 has
# channels [96, 384, 768, 2112, 2208] at strides [2, 4, 8, 16, 32] and no
# dilated variant in timm, so PSP pools the stride-32 map (7x7 at 224).
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py',
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
        model_name='densenet161',
        features_only=True,
        pretrained=True,
        out_indices=(3, 4)),
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='PSPHead',
            in_channels=2208,
            in_index=1,
            channels=512,
            pool_scales=(1, 2, 3, 6),
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
            in_channels=2112,
            in_index=0,
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
    # threshold / min_area: tune them with
    # tools/analysis_tools/search_threshold.py (min_area in pixels of the
    # validation tiles at the test scale).
    test_cfg=dict(mode='whole', flip=False, threshold=0.5, min_area=0))
