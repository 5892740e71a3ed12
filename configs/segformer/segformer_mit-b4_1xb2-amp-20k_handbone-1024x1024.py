# Mixed precision (fp16 autocast + dynamic loss scaling; needs a CUDA device)
# of segformer_mit-b4_1xb2-20k_handbone-1024x1024.py.
_base_ = './segformer_mit-b4_1xb2-20k_handbone-1024x1024.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
