# Quick-start: SegFormer MiT-B0 (from scratch) on the generated imbalanced
# dataset with SoftmaxFocalLoss + SoftDiceLoss and class weights computed from
# the data by ClassWeightHook. Trains on a CPU in a few minutes.
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/synthetic_imbalance.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)

crop_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs GPUs
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # demo trains from scratch; see mit-b0 URL in mmseg's zoo
    backbone=dict(drop_path_rate=0.0),
    decode_head=dict(
        num_classes=4,
        channels=64,
        norm_cfg=norm_cfg,
        loss_decode=[
            dict(type='SoftmaxFocalLoss', gamma=2.0, loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='multiclass', loss_weight=1.0),
        ]))

custom_hooks = [
    # Counts the label files once (cached in the work dir) and sets
    # `class_weight` on every loss above.
    dict(type='ClassWeightHook', method='sqrt_inv_freq', max_ratio=10.0),
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999),
                   weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=50,
         end=1000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1000, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500,
                    max_keep_ckpts=2))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
