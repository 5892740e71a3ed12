# The rare-class recipe of docs/imbalance.md, backed by
# benchmarks/bench_imbalance_efficacy.py (same 300-iteration budget, 3 seeds):
# softmax focal + soft Dice on the decode head, CE on the auxiliary head, and
# effective-number class weights (Cui et al., CVPR 2019) whose beta suits
# pixel counts. On the 128x128 demo data it gave 97.x mDice with every class
# >= 93 Dice, against 88.1 / worst 62.5 for CE + the same weights and
# 87.9 +- 12.9 / worst 55 +- 50 for focal + Dice + sqrt_inv_freq (the rarest
# class collapses on some seeds); RareClassSampler and RareClassCopyPaste
# added nothing measurable on top (see the tables there).
_base_ = './unet-s5-d16_fcn_1xb8-1k_synthimb-128x128.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='SoftmaxFocalLoss', gamma=2.0, loss_weight=1.0),
        dict(type='SoftDiceLoss', mode='multiclass', loss_weight=1.0)
    ]),
    auxiliary_head=dict(
        loss_decode=dict(
            type='CrossEntropyLoss', loss_weight=0.4, avg_non_ignore=True)))
# (1 - beta) * n is what matters: the benchmark's beta = 0.99999 on 64x64
# images is 1 - 2.5e-6 on the demo's 128x128 (4x the pixels per class).
custom_hooks = [
    dict(type='ClassWeightHook', method='effective_num', beta=0.9999975)
]
