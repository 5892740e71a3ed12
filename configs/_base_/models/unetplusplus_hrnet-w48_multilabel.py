# UNet++ decoder (UNetPlusPlusHead, deep supervision on X^{0,1..2}) on
# MMSeg's HRNetV2-W48 (ImageNet weights from OpenMMLab) as a multi-label
# segmentor; branches [48, 96, 192, 384] at strides 4 .. 32, logits at 4.
_base_ = ['./unet_hrnet-w32_multilabel.py']
num_classes = 29
norm_cfg = dict(type='SyncBN', requires_grad=True)
checkpoint = 'https://download.openmmlab.com/pretrain/third_party/hrnetv2_w48-d2186c55.pth'  # noqa
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
        extra=dict(
            stage2=dict(num_channels=(48, 96)),
            stage3=dict(num_channels=(48, 96, 192)),
            stage4=dict(num_channels=(48, 96, 192, 384)))),
    decode_head=dict(
        head=dict(
            _delete_=True,
            type='UNetPlusPlusHead',
            in_channels=[48, 96, 192, 384],
            decoder_channels=(48, 96, 192),
            deep_supervision=0.25,
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg=norm_cfg,
            align_corners=False)))
