# Hand-bone X-rays read as 1 grey channel (the competition's PNGs are grey):
# hand_bone.py with `color_type='grayscale'` loading; models pair it with a
# 1-channel data preprocessor and `in_channels=1` backbones (pretrained first
# convolution summed over RGB: timm does it itself, MMSeg backbones go
# through SingleChannelBackbone).
_base_ = ['./hand_bone.py']
img_scale = (1024, 1024)
crop_size = (1024, 1024)
albu_transforms = [
    dict(type='GaussianBlur', blur_limit=(3, 5), p=0.2),
    dict(type='ElasticTransform', alpha=30, sigma=6, p=0.2),
    dict(type='GridDistortion', num_steps=5, distort_limit=0.2, p=0.2),
    dict(type='Rotate', limit=30, border_mode=0, fill=0, fill_mask=0, p=0.5),
    dict(type='CLAHE', clip_limit=(1, 4), tile_grid_size=(8, 8), p=0.3),
]
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.9, 1.1),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Albu', transforms=albu_transforms),
    # mmseg's Albu hands albumentations a BGR->RGB conversion, which turns
    # the grey image into 3 equal channels: keep the first (exact).
    dict(type='RGB2Gray', out_channels=1, weights=(1.0, 0.0, 0.0)),
    dict(type='PackMultiLabelSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='PackMultiLabelSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
