# DeepLabV3+ R50-D8 from mmseg's zoo (ImageNet-pretrained ResNet-50-V1c via
# `open-mmlab://resnet50_v1c`) with SoftmaxFocalLoss + SoftDiceLoss on both
# heads and class weights from ClassWeightHook.
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/synthetic_imbalance.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(imports=['mmseg_ext'], allow_failed_imports=False)
crop_size = (128, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(
        num_classes=4,
        loss_decode=[
            dict(type='SoftmaxFocalLoss', gamma=2.0, loss_weight=1.0),
            dict(type='SoftDiceLoss', mode='multiclass', loss_weight=1.0),
        ]),
    auxiliary_head=dict(
        num_classes=4,
        loss_decode=dict(_delete_=True, type='SoftmaxFocalLoss', gamma=2.0,
                         loss_weight=0.4)))
custom_hooks = [dict(type='ClassWeightHook', method='inverse_freq',
                     max_ratio=50.0)]
train_cfg = dict(max_iters=1000, val_interval=500)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=1000,
         by_epoch=False)
]
