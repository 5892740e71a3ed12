# SegFormer MiT-B0 (ImageNet-1k pretrained, from mmseg's zoo) as a
# multi-label segmentor: one sigmoid per class (MultiLabelHead around mmseg's
# SegformerHead), BCE + Dice, horizontal-flip TTA at test. Full configs set
# the data preprocessor's `size` to their crop size.
_base_ = ['mmseg::_base_/models/segformer_mit-b0.py']
num_classes = 29
norm_cfg = dict(type='SyncBN', requires_grad=True)
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b0_20220624-7e0fe6dd.pth'  # noqa
model = dict(
    type='MultiLabelEncoderDecoder',
    data_preprocessor=dict(
        type='MultiLabelSegDataPreProcessor',
        num_classes=num_classes,
        seg_pad_val=0),  # valid bit clear: padding is ignored
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(
        _delete_=True,
        type='MultiLabelHead',
        head=dict(
            type='SegformerHead',
            in_channels=[32, 64, 160, 256],
            in_index=[0, 1, 2, 3],
            channels=256,
            dropout_ratio=0.1,
            num_classes=num_classes,
            norm_cfg=norm_cfg,
            align_corners=False),
        loss_decode=[
            dict(type='MultiLabelBCELoss', loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='multilabel', loss_weight=1.0),
        ],
        threshold=0.5),
    test_cfg=dict(mode='whole', flip=True, threshold=0.5))
