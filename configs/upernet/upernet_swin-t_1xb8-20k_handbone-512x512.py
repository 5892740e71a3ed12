# UPerNet + Swin-T for the 29 overlapping hand bones (multi-label: a sigmoid
# per class, BCE + Dice, horizontal-flip TTA, threshold 0.5). Data: X-rays
# resized to 512x512, whole-image inference. Prepare it with
# tools/dataset_converters/hand_bone.py.
_base_ = [
    '../_base_/models/upernet_swin-t_multilabel.py',
    '../_base_/datasets/hand_bone_512x512.py',
    '../_base_/multilabel_runtime.py',
    '../_base_/schedules/hand_bone_adamw-cosine_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
crop_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size))
# AdamW as mmseg's Swin configs: no weight decay on position tables, norms.
optim_wrapper = dict(
    optimizer=dict(lr=1e-4),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
train_dataloader = dict(batch_size=8)
