# UNet (s5-d16, from mmseg's zoo, trained from scratch) + FCN heads as a
# multi-label segmentor: one sigmoid per class (MultiLabelHead), BCE + Dice,
# horizontal-flip TTA at test.
_base_ = ['mmseg::_base_/models/fcn_unet_s5-d16.py']
num_classes = 29
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='MultiLabelEncoderDecoder',
    data_preprocessor=dict(
        type='MultiLabelSegDataPreProcessor',
        num_classes=num_classes,
        seg_pad_val=0),  # valid bit clear: padding is ignored
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='FCNHead',
            in_channels=64,
            in_index=4,
            channels=64,
            num_convs=1,
            concat_input=False,
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
            in_channels=128,
            in_index=3,
            channels=64,
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
    test_cfg=dict(_delete_=True, mode='whole', flip=True, threshold=0.5))
