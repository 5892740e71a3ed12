# AdamW with a linear warm-up (500 iterations) and a cosine decay to 20k
# iterations; best `building/score` kept, early stopping as
# building_adam-step_20k.py.
_base_ = ['./building_adam-step_20k.py']
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=500,
         end=20000),
]
