# BraTS brain tumour: the overlapping regions WT / TC / ET (multi-label, a
# sigmoid each) on 240x240 axial slices with the 4 MRI modalities (FLAIR,
# T1, T1ce, T2) as channels, z-scored over the brain by the converter.
# Prepare the slice cache once (next to the data, data/brats/brats_slices):
#   python tools/dataset_converters/brats.py data/brats
# (a synthetic stand-in: python tools/misc/generate_brats_data.py data/brats
#  --num-cases 10 --size 240 240 155).
# Val / test list every slice with brain; BraTSMetric rebuilds each case's
# volume and scores Dice / HD95 per region.
dataset_type = 'BraTSDataset'
data_root = 'data/brats'
fold = 0
context_slices = 0  # 2.5D: k neighbours each side -> 4 * (2k + 1) channels
crop_size = (240, 240)
# The case fields BraTSMetric needs to put slices back into their volume.
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'reduce_zero_label', 'num_classes', 'case_id', 'slice_index',
             'case_slices', 'brats_case')
# Float (H, W, C) images with C > 3: geometric transforms only (no
# PhotoMetricDistortion, which assumes 8-bit BGR). Left-right is H (the
# NIfTI X axis), so both flips are anatomical mirrors. Rotation pads with
# 0 (the background, and the brain mean) and the label with 0 (valid bit
# clear: ignored).
train_pipeline = [
    dict(type='LoadBraTSSlice'),
    dict(type='RandomFlip', prob=[0.25, 0.25],
         direction=['horizontal', 'vertical']),
    dict(type='RandomRotate', prob=0.3, degree=15, pad_val=0, seg_pad_val=0),
    dict(type='PackMultiLabelSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadBraTSSlice'),
    dict(type='PackMultiLabelSegInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        fold=fold,
        context_slices=context_slices,
        # keep every tumour slice, at most 50 % slices without tumour
        tumour_ratio=0.5,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        fold=fold,
        context_slices=context_slices,
        pipeline=test_pipeline))
# `tools/test.py` scores the validation fold; unlabelled cases (the
# BraTS validation set, splits/test.txt) with
# --cfg-options test_dataloader.dataset.split=test and the metric's
# out_dir for the NIfTI predictions.
test_dataloader = val_dataloader
val_evaluator = dict(
    type='BraTSMetric', label_scheme='brats2020', convention='brats2020')
test_evaluator = val_evaluator
