# UNet 3+ decoder (mmseg_ext's UNet3PlusHead: full-scale skips, 64-channel
# branches, deep supervision on D_1..D_3 and E_4) on a timm ResNet-34
# (`resnet34.a1_in1k`, fetched by timm) as a multi-label segmentor, with the
# reference team's Focal 0.4 + Dice 0.6. ResNet-34 features at out_indices
# (0, .., 4): channels [64, 64, 128, 256, 512], strides [2, .., 32].
_base_ = ['./deeplabv3plus_efficientnet-b3_multilabel.py']
num_classes = 29
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='TIMMBackbone',
        model_name='resnet34',
        features_only=True,
        pretrained=True,
        out_indices=(0, 1, 2, 3, 4)),
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='UNet3PlusHead',
            in_channels=[64, 64, 128, 256, 512],
            cat_channels=64,
            deep_supervision=0.25,
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelFocalLoss', gamma=2.0, alpha=0.25,
                 loss_weight=0.4),
            dict(type='SoftDiceLoss', mode='multilabel', loss_weight=0.6),
        ],
        threshold=0.5),
    auxiliary_head=None)
