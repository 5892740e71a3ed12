# Adam (lr 1e-3, weight decay 1e-3) with a StepLR (gamma 0.1 every 10
# epochs), as the ensemble of a top team of the building competition.
# Iteration-based: 10 epochs of the 5,712 training tiles (80 % of 7,140) at
# batch 8 are 7,140 iterations, so the LR drops at 7,140 and 14,280.
# (An epoch-based run would use `by_epoch=True, step_size=10` with
# EpochBasedTrainLoop; `convert_to_iter_based=True` keeps the epoch
# semantics while stepping every iteration.)
# Validation every 1,000 iterations; the best `building/score` (the
# competition Dice) is kept, and training stops after 5 validations without
# an improvement of 0.001 (mmengine's EarlyStoppingHook).
# MergedGroupsOptimWrapperConstructor: see hand_bone_adamw-cosine_20k.py.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='MergedGroupsOptimWrapperConstructor',
    optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=1e-3),
    clip_grad=None)
param_scheduler = [
    dict(type='StepLR', step_size=7140, gamma=0.1, by_epoch=False, begin=0,
         end=20000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20000, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000,
                    max_keep_ckpts=2, save_best='building/score',
                    rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
custom_hooks = [
    dict(type='EarlyStoppingHook', monitor='building/score', rule='greater',
         min_delta=0.001, patience=5),
]
