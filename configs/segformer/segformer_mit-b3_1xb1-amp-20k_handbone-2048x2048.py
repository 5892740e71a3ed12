# Mixed precision (fp16 autocast + dynamic loss scaling; needs a CUDA device)
# of segformer_mit-b3_1xb1-20k_handbone-2048x2048.py.
_base_ = './segformer_mit-b3_1xb1-20k_handbone-2048x2048.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
