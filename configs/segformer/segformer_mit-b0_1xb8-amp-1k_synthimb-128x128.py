# Mixed precision (fp16 autocast + dynamic loss scaling); needs a CUDA device.
# Equivalent to `tools/train.py <quick-start config> --amp`.
_base_ = './segformer_mit-b0_1xb8-1k_synthimb-128x128.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
