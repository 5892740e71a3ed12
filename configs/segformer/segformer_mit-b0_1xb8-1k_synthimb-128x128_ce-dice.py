# CE + Dice through mmseg's list of losses (mmseg's own CrossEntropyLoss and
# DiceLoss); ClassWeightHook fills CE's `class_weight` from the data.
_base_ = './segformer_mit-b0_1xb8-1k_synthimb-128x128.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
             avg_non_ignore=True),
        dict(type='DiceLoss', loss_weight=1.0),
    ]))
custom_hooks = [dict(type='ClassWeightHook', method='median_freq',
                     max_ratio=20.0)]
