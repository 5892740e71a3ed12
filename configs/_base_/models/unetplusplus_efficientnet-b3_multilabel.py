# UNet++ decoder (mmseg_ext's UNetPlusPlusHead: nested dense skips, deep
# supervision on X^{0,1..3}) on a timm EfficientNet-B3 (ImageNet-1k weights
# fetched by timm: `efficientnet_b3.ra2_in1k`) as a multi-label segmentor:
# one sigmoid per class (MultiLabelHead), BCE + Dice, flip TTA at test.
# EfficientNet-B3 features at out_indices (0, .., 4): channels
# [24, 32, 48, 136, 384], strides [2, 4, 8, 16, 32]; logits at stride 2.
_base_ = ['./deeplabv3plus_efficientnet-b3_multilabel.py']
num_classes = 29
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(out_indices=(0, 1, 2, 3, 4), output_stride=32),
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='UNetPlusPlusHead',
            in_channels=[24, 32, 48, 136, 384],
            decoder_channels=(32, 64, 128, 256),
            deep_supervision=0.25,
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelBCELoss', loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='multilabel', loss_weight=1.0),
        ],
        threshold=0.5),
    auxiliary_head=None)  # deep supervision instead
