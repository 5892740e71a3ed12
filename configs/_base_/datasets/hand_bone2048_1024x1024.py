# Hand bones at the full 2048x2048 resolution, trained on random 1024x1024
# crops; models using it infer with a sliding window over the full image
# (test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768))).
_base_ = './hand_bone.py'
img_scale = (2048, 2048)
crop_size = (1024, 1024)
albu_transforms = {{_base_.albu_transforms}}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.9, 1.1),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Albu', transforms=albu_transforms),
    dict(type='PackMultiLabelSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='PackMultiLabelSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
