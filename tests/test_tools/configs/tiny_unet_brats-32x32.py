# The BraTS UNet config shrunk to a few channels on 32x32 slices, for the
# end-to-end tools test (generated cases -> slice cache -> train -> test with
# BraTSMetric -> database -> cross-check). `data_root` is set by the test.
_base_ = ['../../../configs/brats/unet-s5-d16_fcn_1xb16-20k_brats-240x240.py']
crop_size = (32, 32)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(base_channels=4),
    decode_head=dict(head=dict(in_channels=4, channels=4)),
    auxiliary_head=dict(head=dict(in_channels=8, channels=4)))
loader = dict(batch_size=2, num_workers=0, persistent_workers=False)
train_dataloader = loader
val_dataloader = loader
test_dataloader = loader
train_cfg = dict(max_iters=2, val_interval=2)
param_scheduler = [
    dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=2)
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, save_best='mean_dice'))
log_level = 'WARNING'
