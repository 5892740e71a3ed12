# Hand-bone X-ray segmentation: 29 overlapping bone classes (multi-label),
# 2048x2048 grey X-rays in the competition's layout. Prepare the labels once:
#   python tools/dataset_converters/hand_bone.py data/hand_bone
# (packed labels + patient-grouped folds; a synthetic stand-in:
#  python tools/misc/generate_hand_bone_data.py data/hand_bone).
# Images are resized to 1024x1024 (whole-image inference, predictions are
# resized back to 2048 by the segmentor). The `_512x512`, `_2048x2048` and
# `hand_bone2048_*` files beside this one change the sizes.
dataset_type = 'HandBoneDataset'
data_root = 'data/hand_bone'
fold = 0
img_scale = (1024, 1024)
crop_size = (1024, 1024)

# Augmentations reported by the competition's top teams (albumentations 2.x;
# each moves the packed uint16 label exactly, nearest interpolation). Fill
# values 0 outside the rotated image: black image, and label 0 = valid bit
# clear = ignored (not "no bone").
albu_transforms = [
    dict(type='GaussianBlur', blur_limit=(3, 5), p=0.2),
    dict(type='ElasticTransform', alpha=30, sigma=6, p=0.2),
    dict(type='GridDistortion', num_steps=5, distort_limit=0.2, p=0.2),
    dict(type='Rotate', limit=30, border_mode=0, fill=0, fill_mask=0, p=0.5),
    dict(type='CLAHE', clip_limit=(1, 4), tile_grid_size=(8, 8), p=0.3),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiLabelAnnotations'),
    # mmseg resizes seg maps with nearest interpolation.
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.9, 1.1),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    # The teams' HorizontalFlip (a right hand becomes a left one), done by
    # mmseg (no BGR<->RGB round trip through Albu).
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Albu', transforms=albu_transforms),
    dict(type='PackMultiLabelSegInputs'),
]
# Labels are loaded after Resize: metrics compare at the original size.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='PackMultiLabelSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        fold=fold,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        fold=fold,
        pipeline=test_pipeline))
# `tools/test.py` reports Dice on the validation fold. The competition's
# test images (no labels) go through `tools/hand_bone_submission.py`, which
# switches to split='test', drops the label loading and writes the CSV.
test_dataloader = val_dataloader
# Competition Dice: per image and class, mean over images then classes.
val_evaluator = dict(type='MultiLabelDiceMetric')
test_evaluator = val_evaluator

# Class weights from the data: positive-pixel counts per bone, read from the
# packed-label cache (PackedLabelPixelCounter), set on every head loss with a
# `class_weight` (BCE and Dice); carpals and fingertips get the large weights.
custom_hooks = [
    dict(type='ClassWeightHook', method='sqrt_inv_freq', max_ratio=10.0)
]
