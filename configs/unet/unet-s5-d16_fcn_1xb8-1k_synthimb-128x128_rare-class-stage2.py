# Stage 2 of the two-stage recipe: fine-tune the final checkpoint of
# `..._rare-class.py` (same work dir, so the class-pixel counts are cached)
# for 200 iterations, validating every 40 with per-class Dice, while
# ValidationClassWeightHook multiplies the class weights of the classes
# that validate worst (bounded to [0.8, 1.5], EMA 0.3).
#   python tools/train.py configs/unet/unet-s5-d16_fcn_1xb8-1k_synthimb-128x128_rare-class.py
#   python tools/train.py configs/unet/unet-s5-d16_fcn_1xb8-1k_synthimb-128x128_rare-class-stage2.py
_base_ = './unet-s5-d16_fcn_1xb8-1k_synthimb-128x128_rare-class.py'
work_dir = './work_dirs/unet-s5-d16_fcn_1xb8-1k_synthimb-128x128_rare-class'
load_from = work_dir + '/iter_1000.pth'
resume = False  # new schedule and optimizer state, stage 1's weights
stage2_iters = 200
train_cfg = dict(max_iters=stage2_iters, val_interval=40)
optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=stage2_iters,
         by_epoch=False)
]
val_evaluator = dict(
    type='PerClassIoUMetric',
    iou_metrics=['mIoU', 'mDice'],
    per_class_json=work_dir + '/stage2_val_scores.json')
custom_hooks = [
    dict(type='ClassWeightHook', method='effective_num', beta=0.9999975),
    # Gentler than the hook's defaults, which hurt from scratch in
    # benchmarks/bench_imbalance_efficacy.py (docs/imbalance.md).
    dict(type='ValidationClassWeightHook', gamma=1.0, momentum=0.3,
         bounds=(0.8, 1.5)),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=stage2_iters,
                    filename_tmpl='stage2_iter_{}.pth'))
