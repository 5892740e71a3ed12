# DeepLabV3+ (mmseg's DepthwiseSeparableASPPHead) on a timm EfficientNet-B3
# (ImageNet-1k weights fetched by timm: `efficientnet_b3.ra2_in1k`) through
# mmseg's TIMMBackbone, as a multi-label segmentor: one sigmoid per class
# (MultiLabelHead), BCE + Dice, horizontal-flip TTA at test.
# EfficientNet-B3 features at out_indices (1, 2, 3, 4): channels
# [32, 48, 136, 384], strides [4, 8, 16, 16] with output_stride=16.
_base_ = ['mmseg::_base_/models/deeplabv3plus_r50-d8.py']
num_classes = 29
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='MultiLabelEncoderDecoder',
    pretrained=None,  # timm loads the backbone weights itself
    data_preprocessor=dict(
        type='MultiLabelSegDataPreProcessor',
        num_classes=num_classes,
        seg_pad_val=0),  # valid bit clear: padding is ignored
    backbone=dict(
        _delete_=True,
        type='TIMMBackbone',
        model_name='efficientnet_b3',
        features_only=True,
        pretrained=True,
        out_indices=(1, 2, 3, 4),
        output_stride=16,
        drop_path_rate=0.1),
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='DepthwiseSeparableASPPHead',
            in_channels=384,
            in_index=3,
            channels=256,
            dilations=(1, 6, 12, 18),
            c1_in_channels=32,
            c1_channels=48,
            dropout_ratio=0.1,
            num_classes=num_classes,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelBCELoss', loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='multilabel', loss_weight=1.0),
        ],
        threshold=0.5),
    auxiliary_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='FCNHead',
            in_channels=136,
            in_index=2,
            channels=128,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.1,
            num_classes=num_classes,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelBCELoss', loss_weight=0.4),
            dict(type='SoftDiceLoss', mode='multilabel', loss_weight=0.4),
        ],
        threshold=0.5),
    test_cfg=dict(mode='whole', flip=True, threshold=0.5))
