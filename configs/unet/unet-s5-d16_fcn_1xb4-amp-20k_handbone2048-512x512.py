# Mixed precision (fp16 autocast + dynamic loss scaling; needs a CUDA device)
# of unet-s5-d16_fcn_1xb4-20k_handbone2048-512x512.py.
_base_ = './unet-s5-d16_fcn_1xb4-20k_handbone2048-512x512.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
