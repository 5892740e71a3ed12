# SegFormer MiT-B4 (ImageNet-1k pretrained, from mmseg's zoo) as a
# multi-label segmentor; see segformer_mit-b0_multilabel.py.
_base_ = ['./segformer_mit-b0_multilabel.py']
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b4_20220624-d588d980.pth'  # noqa
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
        embed_dims=64,
        num_heads=[1, 2, 5, 8],
        num_layers=[3, 8, 27, 3]),
    decode_head=dict(head=dict(in_channels=[64, 128, 320, 512])))
