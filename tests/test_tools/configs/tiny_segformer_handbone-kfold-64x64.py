# The tiny hand-bone SegFormer with a validation loop (per-class Dice JSON),
# for the K-fold tool test: 2 iterations, validated and saved at the end.
_base_ = ['./tiny_segformer_handbone-64x64.py']
val_dataloader = {{_base_.test_dataloader}}
val_evaluator = dict(type='MultiLabelDiceMetric')
val_cfg = dict(type='ValLoop')
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2,
                    save_best='mDice', rule='greater'),
    visualization=dict(type='SegVisualizationHook', draw=False))
