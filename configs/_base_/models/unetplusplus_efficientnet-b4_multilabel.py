# UNet++ on a timm EfficientNet-B4 (`efficientnet_b4.ra2_in1k`); see
# unetplusplus_efficientnet-b3_multilabel.py. Features [24, 32, 56, 160, 448].
_base_ = ['./unetplusplus_efficientnet-b3_multilabel.py']
model = dict(
    backbone=dict(model_name='efficientnet_b4', drop_path_rate=0.2),
    decode_head=dict(head=dict(in_channels=[24, 32, 56, 160, 448])))
