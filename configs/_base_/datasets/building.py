# Satellite building footprints, competition layout (train.csv with
# img_id,img_path,mask_rle of 1024x1024 tiles; test.csv of 224x224 tiles at a
# coarser scale). Synthetic stand-in:
#   python tools/misc/generate_building_data.py data/building
# Binary task, one sigmoid class (C = 1): the 0/1 map decoded from the RLE is
# packed for the multi-label model with PackLabelRegions(regions=[[1]]).
dataset_type = 'BuildingRLEDataset'
data_root = 'data/building'
crop_size = (224, 224)
# Test pixels per training pixel: a 224x224 test tile covers about
# 448x448 training pixels.
test_scale = 0.5
# Training crops mimic the test scale: a 512x512 crop holding a building
# when the tile has one (CropNonEmptyMaskIfExists, on the plain 0/1 map),
# then a random resized crop of 50-100 % of its area to 224x224, i.e.
# 0.44-0.62 test pixels per training pixel around test_scale.
albu_train_transforms = [
    dict(type='CropNonEmptyMaskIfExists', height=512, width=512, p=1.0),
    dict(type='RandomResizedCrop', size=crop_size, scale=(0.5, 1.0),
         ratio=(0.8, 1.25), p=1.0),
    dict(type='HorizontalFlip', p=0.5),
    dict(type='VerticalFlip', p=0.5),
    dict(type='RandomRotate90', p=0.5),
    # Corners brought in by the rotation are ignored (255), not background.
    dict(type='Rotate', limit=30, border_mode=0, fill=0, fill_mask=255,
         p=0.3),
    dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
         hue=0.05, p=0.5),
    dict(type='ToGray', p=0.1),
]
meta_keys = ('img_path', 'img_id', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
             'num_classes')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRLEAnnotations'),
    dict(type='AlbuSeg', transforms=albu_train_transforms),
    dict(type='PackLabelRegions', regions=[[1]]),
    dict(type='PackMultiLabelSegInputs', num_classes=1, meta_keys=meta_keys),
]
# Validation at the test scale: image and mask resized together, and the
# resized tile counts as the original (update_ori_shape), so Dice and
# test_cfg.min_area are measured in test-scale pixels.
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRLEAnnotations'),
    dict(type='AlbuSeg', update_ori_shape=True,
         transforms=[dict(type='Resize', height=512, width=512,
                          interpolation=3, p=1.0)]),
    dict(type='PackLabelRegions', regions=[[1]]),
    dict(type='PackMultiLabelSegInputs', num_classes=1, meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackMultiLabelSegInputs', num_classes=1, meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train.csv',
        split='train',
        val_ratio=0.2,
        seed=0,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train.csv',
        split='val',
        val_ratio=0.2,
        seed=0,
        pipeline=val_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='test.csv',
        split='all',
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='BuildingDiceMetric')
# tools/building_submission.py writes the CSV; `tools/test.py` works too.
test_evaluator = dict(
    type='BuildingSubmissionMetric',
    ann_file=data_root + '/test.csv',
    out_file='submission.csv')
