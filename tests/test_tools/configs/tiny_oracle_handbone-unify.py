# The hand-side oracle (tests/test_tools/hand_side_oracle.py, needs
# `tests/test_tools` on PYTHONPATH) on hand-bone data with
# `unify_hands=True`: no resize, no padding, no test-time flip, so its
# predictions are known pixel for pixel. `data_root` is set by the tests.
_base_ = './tiny_segformer_handbone-64x64.py'
custom_imports = dict(
    imports=['mmseg_ext', 'hand_side_oracle'], allow_failed_imports=False)
model = dict(
    data_preprocessor=dict(size=None),
    backbone=dict(_delete_=True, type='HandSideOracleBackbone'),
    decode_head=dict(
        head=dict(
            _delete_=True,
            type='FCNHead',
            in_channels=29,
            channels=29,
            num_convs=0,
            concat_input=False,
            dropout_ratio=0.0,
            num_classes=29)),
    test_cfg=dict(mode='whole', flip=False, threshold=0.5))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiLabelAnnotations'),
    dict(type='PackMultiLabelSegInputs'),
]
test_dataloader = dict(
    dataset=dict(unify_hands=True, pipeline=test_pipeline))
