# UNet s5-d16 + FCN for the 29 overlapping hand bones (multi-label: a sigmoid
# per class, BCE + Dice, horizontal-flip TTA, threshold 0.5). Data: full
# 2048x2048 X-rays, random 512x512 training crops, sliding-window inference
# (512x512 windows, stride 384). Prepare it with
# tools/dataset_converters/hand_bone.py.
_base_ = [
    '../_base_/models/fcn_unet_s5-d16_multilabel.py',
    '../_base_/datasets/hand_bone2048_512x512.py',
    '../_base_/multilabel_runtime.py',
    '../_base_/schedules/hand_bone_adamw-cosine_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    test_cfg=dict(
        mode='slide', crop_size=(512, 512), stride=(384, 384),
        flip=True))
# From scratch: a higher learning rate.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_dataloader = dict(batch_size=4)
