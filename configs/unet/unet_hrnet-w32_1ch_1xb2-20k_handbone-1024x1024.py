# unet_hrnet-w32_1xb2-20k_handbone-1024x1024.py on 1-channel grey input:
# HRNet built with in_channels=1, its ImageNet stem convolution summed over
# RGB (SingleChannelBackbone), the grey image normalised with the mean / std
# of ImageNet's three channels averaged.
_base_ = [
    '../_base_/models/unet_hrnet-w32_multilabel.py',
    '../_base_/datasets/hand_bone_1ch.py',
    '../_base_/multilabel_runtime.py',
    '../_base_/schedules/hand_bone_adamw-cosine_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
crop_size = (1024, 1024)
checkpoint = 'https://download.openmmlab.com/pretrain/third_party/hrnetv2_w32-dc9eeb4f.pth'  # noqa
model = dict(
    data_preprocessor=dict(
        size=crop_size, mean=[114.5], std=[57.6], bgr_to_rgb=False),
    backbone=dict(
        _delete_=True,
        type='SingleChannelBackbone',
        checkpoint=checkpoint,
        backbone={{_base_.model.backbone}}))
# Pretrained backbone, new heads at 10x lr.
optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}))
train_dataloader = dict(batch_size=2)
