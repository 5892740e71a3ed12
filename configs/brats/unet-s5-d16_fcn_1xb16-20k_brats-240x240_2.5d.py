# 2.5D unet-s5-d16_fcn_1xb16-20k_brats-240x240.py: each sample stacks the
# slices z-1, z, z+1 of the 4 modalities (12 channels, slice-major:
# channel j * 4 + m is modality m of slice z - 1 + j; clamped at the volume
# edges, see LoadBraTSSlice); the label is slice z.
_base_ = './unet-s5-d16_fcn_1xb16-20k_brats-240x240.py'
context_slices = 1
in_channels = 4 * (2 * context_slices + 1)
model = dict(
    data_preprocessor=dict(
        mean=[0.0] * in_channels, std=[1.0] * in_channels),
    backbone=dict(in_channels=in_channels))
train_dataloader = dict(dataset=dict(context_slices=context_slices))
val_dataloader = dict(dataset=dict(context_slices=context_slices))
test_dataloader = val_dataloader
