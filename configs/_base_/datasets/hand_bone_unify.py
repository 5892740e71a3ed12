# Hand bones with every left hand flipped into the right-hand orientation
# at load (HandBoneDataset(unify_hands=True); the side comes from the
# `_L`/`_R` file name, see docs/hand_bone_unify.md). Outputs (predictions,
# probabilities, submissions, pseudo-labels) are flipped back by the
# multi-label segmentor: everything saved is in the original orientation.
# The horizontal RandomFlip of ./hand_bone.py is dropped: it would mirror
# half of the unified hands back into left ones.
_base_ = './hand_bone.py'
albu_transforms = {{_base_.albu_transforms}}
img_scale = {{_base_.img_scale}}
crop_size = {{_base_.crop_size}}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.9, 1.1),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='Albu', transforms=albu_transforms),
    dict(type='PackMultiLabelSegInputs'),
]
train_dataloader = dict(
    dataset=dict(unify_hands=True, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(unify_hands=True))
test_dataloader = val_dataloader
