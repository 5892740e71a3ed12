# The tiny config with class weights computed by ClassWeightHook (rank 0
# counts, then broadcasts) and recorded per rank by RecordRunHook.
_base_ = './tiny_segformer_synthimb-64x64_test-hooks.py'
custom_hooks = [
    dict(type='ClassWeightHook', method='inverse_freq'),
    dict(type='RecordRunHook'),
]
