# Online hard example mining with mmseg's OHEMPixelSampler: the loss is taken
# over the pixels whose confidence is below `thresh` (at least `min_kept`).
_base_ = './segformer_mit-b0_1xb8-1k_synthimb-128x128.py'
model = dict(
    decode_head=dict(
        sampler=dict(type='OHEMPixelSampler', thresh=0.7, min_kept=20000),
        loss_decode=dict(
            _delete_=True, type='CrossEntropyLoss', use_sigmoid=False,
            loss_weight=1.0)))
custom_hooks = []
