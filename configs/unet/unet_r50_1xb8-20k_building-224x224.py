# U-Net decoder (mmseg_ext's UNetHead: upsample x2, concatenate the skip,
# two 3x3 conv-BN-ReLU per block) on a ResNet-50 (timm `resnet50`,
# ImageNet-1k weights fetched by timm) through mmseg's TIMMBackbone, as a
# binary sigmoid segmentor (MultiLabelHead, C = 1) with Focal + Dice
# losses; Adam + StepLR. ResNet-50 features at out_indices (0, ..., 4):
# channels [64, 256, 512, 1024, 2048] at strides [2, 4, 8, 16, 32]; with
# one extra block the decoder predicts at stride 1.
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
        model_name='resnet50',
        features_only=True,
        pretrained=True,
        out_indices=(0, 1, 2, 3, 4)),
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='UNetHead',
            in_channels=[64, 256, 512, 1024, 2048],
            in_index=(0, 1, 2, 3, 4),
            decoder_channels=(256, 128, 64, 32, 16),
            num_extra_upsamples=1,
            dropout_ratio=0.0,
            num_classes=1,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelFocalLoss', gamma=2.0, alpha=None,
                 loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='binary', loss_weight=1.0),
        ],
        threshold=0.5),
    auxiliary_head=None,
    test_cfg=dict(mode='whole', flip=False, threshold=0.5, min_area=0))
