# UPerNet + timm ConvNeXt-XL for the 29 overlapping hand bones (multi-label: a
# sigmoid per class, BCE + Dice, horizontal-flip TTA, threshold 0.5). Data:
# X-rays resized to 1024x1024, whole-image inference. Prepare it with
# tools/dataset_converters/hand_bone.py.
_base_ = [
    '../_base_/models/upernet_convnext-xl_multilabel.py',
    '../_base_/datasets/hand_bone.py',
    '../_base_/multilabel_runtime.py',
    '../_base_/schedules/hand_bone_adamw-cosine_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
crop_size = (1024, 1024)
model = dict(data_preprocessor=dict(size=crop_size))
# AdamW as mmseg's ConvNeXt configs: no weight decay on norms, head at
# 10x lr.
optim_wrapper = dict(
    optimizer=dict(lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.),
            'head': dict(lr_mult=10.)
        }))
train_dataloader = dict(batch_size=2)
