# U-Net decoder (mmseg_ext's UNetHead) on MMSeg's HRNetV2-W32 (ImageNet
# weights from OpenMMLab) as a multi-label segmentor: one sigmoid per class
# (MultiLabelHead), BCE + Dice, flip TTA at test. HRNet's four branches
# (channels [32, 64, 128, 256], strides 4 .. 32) are the pyramid; one extra
# upsampling block gives logits at stride 2.
_base_ = ['mmseg::_base_/models/fcn_hr18.py']
num_classes = 29
norm_cfg = dict(type='SyncBN', requires_grad=True)
checkpoint = 'https://download.openmmlab.com/pretrain/third_party/hrnetv2_w32-dc9eeb4f.pth'  # noqa
model = dict(
    type='MultiLabelEncoderDecoder',
    pretrained=None,
    data_preprocessor=dict(
        type='MultiLabelSegDataPreProcessor',
        num_classes=num_classes,
        seg_pad_val=0),  # valid bit clear: padding is ignored
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
        extra=dict(
            stage2=dict(num_channels=(32, 64)),
            stage3=dict(num_channels=(32, 64, 128)),
            stage4=dict(num_channels=(32, 64, 128, 256)))),
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='UNetHead',
            in_channels=[32, 64, 128, 256],
            in_index=(0, 1, 2, 3),
            decoder_channels=(128, 64, 32, 16),
            num_extra_upsamples=1,
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelBCELoss', loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='multilabel', loss_weight=1.0),
        ],
        threshold=0.5),
    test_cfg=dict(mode='whole', flip=True, threshold=0.5))
