# SegFormer MiT-B0 for the BraTS regions WT / TC / ET (multi-label: a sigmoid
# per region, threshold 0.5), the 4 z-scored MRI modalities of a 240x240
# axial slice as input channels. Focal + Dice loss, as the reference
# project. Prepare the data with tools/dataset_converters/brats.py.
# The ImageNet checkpoint has a 3-channel first patch embedding: mmengine
# skips that one tensor (a size-mismatch warning; it stays randomly
# initialised) and loads the rest.
_base_ = [
    '../_base_/models/segformer_mit-b0_multilabel.py',
    '../_base_/datasets/brats_240x240.py',
    '../_base_/multilabel_runtime.py',
    '../_base_/schedules/brats_adamw-cosine_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
num_classes = 3
in_channels = 4  # FLAIR, T1, T1ce, T2
crop_size = (240, 240)
model = dict(
    # z-scored float input: mean 0 / std 1, no BGR->RGB on 4 channels.
    data_preprocessor=dict(
        num_classes=num_classes,
        mean=[0.0] * in_channels,
        std=[1.0] * in_channels,
        bgr_to_rgb=False,
        pad_val=0,
        size=crop_size),
    backbone=dict(in_channels=in_channels),
    decode_head=dict(
        head=dict(num_classes=num_classes),
        loss_decode=[
            dict(type='MultiLabelFocalLoss', gamma=2.0, alpha=0.25,
                 loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='multilabel', loss_weight=1.0),
        ]))
# AdamW as mmseg's SegFormer configs: head at 10x lr, no decay on norms.
optim_wrapper = dict(
    optimizer=dict(lr=1e-4),
    paramwise_cfg=dict(
        custom_keys={
            'pos_block': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'head': dict(lr_mult=10.)
        }))
