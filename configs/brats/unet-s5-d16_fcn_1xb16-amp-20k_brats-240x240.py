# Mixed precision (fp16 autocast + dynamic loss scaling; needs a CUDA device)
# of unet-s5-d16_fcn_1xb16-20k_brats-240x240.py.
_base_ = './unet-s5-d16_fcn_1xb16-20k_brats-240x240.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
