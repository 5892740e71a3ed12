# Mixed precision (fp16 autocast + dynamic loss scaling; needs a CUDA device)
# of upernet_swin-t_1xb8-20k_brats-240x240.py.
_base_ = './upernet_swin-t_1xb8-20k_brats-240x240.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
