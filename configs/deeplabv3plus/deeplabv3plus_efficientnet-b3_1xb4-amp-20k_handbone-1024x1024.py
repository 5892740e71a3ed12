# Mixed precision (fp16 autocast + dynamic loss scaling; needs a CUDA device)
# of deeplabv3plus_efficientnet-b3_1xb4-20k_handbone-1024x1024.py.
_base_ = './deeplabv3plus_efficientnet-b3_1xb4-20k_handbone-1024x1024.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
