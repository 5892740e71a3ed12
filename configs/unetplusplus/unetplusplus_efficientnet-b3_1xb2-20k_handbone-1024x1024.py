# UNet++ + timm EfficientNet-B3 (deep supervision) for the 29 overlapping hand
# bones (multi-label: a sigmoid per class, BCE + Dice, horizontal-flip TTA,
# threshold 0.5). Data: X-rays resized to 1024x1024, whole-image inference.
# Prepare it with tools/dataset_converters/hand_bone.py.
_base_ = [
    '../_base_/models/unetplusplus_efficientnet-b3_multilabel.py',
    '../_base_/datasets/hand_bone.py',
    '../_base_/multilabel_runtime.py',
    '../_base_/schedules/hand_bone_adamw-cosine_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
crop_size = (1024, 1024)
model = dict(data_preprocessor=dict(size=crop_size))
# Pretrained backbone, new heads at 10x lr.
optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}))
train_dataloader = dict(batch_size=2)
