# UPerNet + timm ConvNeXt-XL (`convnext_xlarge.fb_in22k_ft_in1k`, fetched by
# timm) as a multi-label segmentor; see upernet_swin-t_multilabel.py.
# ConvNeXt-XL features: channels [256, 512, 1024, 2048], strides 4 .. 32.
_base_ = ['./upernet_swin-t_multilabel.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='TIMMBackbone',
        model_name='convnext_xlarge',
        features_only=True,
        pretrained=True,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4),
    decode_head=dict(head=dict(in_channels=[256, 512, 1024, 2048])),
    auxiliary_head=dict(head=dict(in_channels=1024)))
