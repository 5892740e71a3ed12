# As deeplabv3plus_mobilenetv3-l_1xb8-20k_building-224x224.py, trained with
# AdamW (lr 1e-4, weight decay 0.01), 500 warm-up iterations and a cosine
# decay (as ../_base_/schedules/building_adamw-cosine_20k.py) instead of
# Adam + StepLR.
_base_ = ['./deeplabv3plus_mobilenetv3-l_1xb8-20k_building-224x224.py']
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=500,
         end=20000),
]
