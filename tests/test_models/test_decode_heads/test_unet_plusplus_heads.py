# Copyright (c) mmseg_ext contributors. All rights reserved.
"""UNetPlusPlusHead and UNet3PlusHead: the shape of every node / stage,
parameter counts of the papers' reference layouts computed from the layer
formula, deep supervision (softmax alone and inside MultiLabelHead), the
registry and argument checks."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

BN = dict(type='BN')


def _features(channels, size=64, first_stride=2, n=1):
    """Features at strides first_stride * 2**i of a size x size input."""
    return [
        torch.randn(n, c, size // (first_stride << i),
                    size // (first_stride << i))
        for i, c in enumerate(channels)
    ]


def _block_params(cin, cout):
    """Two bias-free 3x3 convs, each followed by BN (weight + bias)."""
    return 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


# --- UNet++ -----------------------------------------------------------------
def test_unetpp_every_node_shape():
    head = MODELS.build(
        dict(type='UNetPlusPlusHead', in_channels=[4, 8, 16, 32],
             decoder_channels=(6, 10, 12), num_classes=3, norm_cfg=BN))
    feats = _features([4, 8, 16, 32], size=64)  # 32, 16, 8, 4 pixels
    grid = head.forward_nodes(feats)
    # node X^{i,j}: width decoder_channels[i], size of X^{i,0}
    expected = {(0, 1): (6, 32), (0, 2): (6, 32), (0, 3): (6, 32),
                (1, 1): (10, 16), (1, 2): (10, 16), (2, 1): (12, 8)}
    assert [len(row) for row in grid] == [4, 3, 2, 1]
    for (i, j), (c, s) in expected.items():
        assert grid[i][j].shape == (1, c, s, s), (i, j)
    # input widths of the nodes: in_i + (j-1) dec_i + (in_{i+1} or dec_{i+1})
    first = {name: block[0].conv.in_channels
             for name, block in head.nodes.items()}
    assert first == {'x0_1': 4 + 8, 'x1_1': 8 + 16, 'x2_1': 16 + 32,
                     'x0_2': 4 + 6 + 10, 'x1_2': 8 + 10 + 12,
                     'x0_3': 4 + 2 * 6 + 10}
    out = head(feats)
    assert out.shape == (1, 3, 32, 32)
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_unetpp_parameter_count_of_the_paper_layout():
    """UNet++ with filters (32, 64, 128, 256, 512) (the paper's code):
    node X^{i,j} is two 3x3 conv-BN-ReLU of width f_i on
    j * f_i + f_{i+1} input channels; a 1x1 classifier per output."""
    f = [32, 64, 128, 256, 512]
    head = MODELS.build(
        dict(type='UNetPlusPlusHead', in_channels=f, num_classes=1,
             deep_supervision=[0.25, 0.25, 0.25], norm_cfg=BN))
    nodes = sum(
        _block_params(j * f[i] + f[i + 1], f[i]) for j in range(1, 5)
        for i in range(5 - j))
    assert nodes == 4_445_440  # 10 nodes
    assert _n_params(head.nodes) == nodes
    classifiers = 4 * (32 + 1)  # main + 3 deep-supervision 1x1 convs
    assert _n_params(head) == nodes + classifiers


def test_unetpp_deep_supervision_outputs_and_softmax_losses():
    head = MODELS.build(
        dict(type='UNetPlusPlusHead', in_channels=[4, 8, 16, 32],
             decoder_channels=(4, 8, 16), num_classes=3, norm_cfg=BN,
             deep_supervision=(0.5, 0.25), dropout_ratio=0.0,
             loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)))
    feats = _features([4, 8, 16, 32], size=64, n=2)
    head.train()
    outs = head(feats)
    assert [o.shape for o in outs] == [(2, 3, 32, 32)] * 3
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 64, 64)))
        samples.append(s)
    losses = head.loss(feats, samples, None)
    assert set(losses) == {'loss_ce', 'acc_seg', 'aux1_loss_ce',
                           'aux2_loss_ce'}
    ce = torch.nn.functional.cross_entropy
    label = torch.stack([s.gt_sem_seg.data[0] for s in samples])

    def up(x):
        return torch.nn.functional.interpolate(x, (64, 64), mode='bilinear')

    assert losses['aux1_loss_ce'].item() == pytest.approx(
        0.5 * ce(up(outs[1]), label).item(), rel=1e-5)
    assert losses['aux2_loss_ce'].item() == pytest.approx(
        0.25 * ce(up(outs[2]), label).item(), rel=1e-5)
    head.eval()
    out = head(feats)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 32, 32)
    pred = head.predict(feats, [dict(img_shape=(64, 64))] * 2, None)
    assert pred.shape == (2, 3, 64, 64)


# --- UNet3+ -----------------------------------------------------------------
def test_unet3p_every_stage_shape():
    head = MODELS.build(
        dict(type='UNet3PlusHead', in_channels=[4, 8, 16, 32],
             cat_channels=5, num_classes=2, norm_cfg=BN))
    feats = _features([4, 8, 16, 32], size=64)
    dec = head.forward_stages(feats)
    # D_i: 4 * 5 channels at the size of E_i; D_3 = E_3
    assert [tuple(d.shape) for d in dec] == [
        (1, 20, 32, 32), (1, 20, 16, 16), (1, 20, 8, 8), (1, 32, 4, 4)]
    # branch k of stage i reads E_k (k <= i or k = L-1) or D_k (20 wide)
    widths = [[b.conv.in_channels for b in stage['branches']]
              for stage in head.stages]
    assert widths == [[4, 20, 20, 32], [4, 8, 20, 32], [4, 8, 16, 32]]
    out = head(feats)
    assert out.shape == (1, 2, 32, 32)


def test_unet3p_parameter_count_of_the_paper_layout():
    """UNet 3+ with encoder filters (64, 128, 256, 512, 1024) and 64-channel
    cat blocks: decoder stage i has 5 conv3x3-BN-ReLU branches (64 out,
    from E_k or the 320-wide D_k) and a 320 -> 320 fusion conv3x3-BN-ReLU.
    """
    f = [64, 128, 256, 512, 1024]
    head = MODELS.build(
        dict(type='UNet3PlusHead', in_channels=f, cat_channels=64,
             num_classes=1, deep_supervision=0.2, norm_cfg=BN))

    def conv_bn(cin, cout):
        return 9 * cin * cout + 2 * cout

    stages = 0
    for i in range(4):
        for k in range(5):
            src = f[k] if k <= i or k == 4 else 320
            stages += conv_bn(src, 64)
        stages += conv_bn(320, 320)
    assert stages == 8_115_200
    assert _n_params(head.stages) == stages
    classifiers = (320 + 1) + 3 * (320 + 1) + (1024 + 1)
    assert _n_params(head) == stages + classifiers


def test_unet3p_deep_supervision_inside_multilabel_head():
    head = MODELS.build(
        dict(type='MultiLabelHead',
             head=dict(type='UNet3PlusHead', in_channels=[4, 8, 16],
                       cat_channels=4, num_classes=2, norm_cfg=BN,
                       deep_supervision=0.4, dropout_ratio=0.0),
             loss_decode=[dict(type='MultiLabelBCELoss'),
                          dict(type='SoftDiceLoss', mode='multilabel')]))
    feats = _features([4, 8, 16], size=32, n=2)
    head.train()
    outs = head(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 2, 16, 16), (2, 2, 8, 8),
                                              (2, 2, 4, 4)]
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 2, (2, 32, 32), dtype=torch.uint8))
        samples.append(s)
    losses = head.loss(feats, samples)
    assert set(losses) == {
        'loss_ml_bce', 'loss_soft_dice', 'dice_seg', 'aux1_loss_ml_bce',
        'aux1_loss_soft_dice', 'aux2_loss_ml_bce', 'aux2_loss_soft_dice'}
    # aux = 0.4 x the losses of that output alone
    single = head._loss_single(outs[2], head.stack_targets(samples))
    assert losses['aux2_loss_ml_bce'].item() == pytest.approx(
        0.4 * single['loss_ml_bce'].item(), rel=1e-5)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is not None for p in head.parameters())
    head.eval()
    assert head(feats).shape == (2, 2, 16, 16)


@pytest.mark.parametrize('backbone,channels', [
    (dict(type='ResNetV1c', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
          norm_cfg=BN), [64, 128, 256, 512]),
    (dict(type='MixVisionTransformer', in_channels=3, embed_dims=8,
          num_stages=4, num_layers=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
          patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1],
          out_indices=(0, 1, 2, 3)), [8, 8, 8, 8]),
    (dict(type='TIMMBackbone', model_name='resnet18', features_only=True,
          pretrained=False, out_indices=(0, 1, 2, 3, 4)),
     [64, 64, 128, 256, 512]),
])
@pytest.mark.parametrize('head_type', ['UNetPlusPlusHead', 'UNet3PlusHead'])
def test_heads_over_real_backbones(backbone, channels, head_type):
    import mmseg_ext  # noqa: F401  (registers TIMMBackbone users)
    net = MODELS.build(backbone)
    extra = dict(decoder_channels=[8] * (len(channels) - 1)) \
        if head_type == 'UNetPlusPlusHead' else dict(cat_channels=4)
    head = MODELS.build(dict(type=head_type, in_channels=channels,
                             num_classes=2, norm_cfg=BN, **extra))
    feats = net(torch.randn(1, 3, 64, 64))
    stride = 64 // feats[0].shape[-1]
    assert head(feats).shape == (1, 2, 64 // stride, 64 // stride)


@pytest.mark.parametrize('cfg,match', [
    (dict(type='UNetPlusPlusHead', in_channels=[4]), 'in_channels'),
    (dict(type='UNetPlusPlusHead', in_channels=[4, 8, 16],
          decoder_channels=[4]), 'decoder_channels'),
    (dict(type='UNetPlusPlusHead', in_channels=[4, 8, 16],
          upsample_mode='bicubic'), 'upsample_mode'),
    (dict(type='UNetPlusPlusHead', in_channels=[4, 8, 16],
          deep_supervision=[0.1, 0.2]), 'deep_supervision'),
    (dict(type='UNet3PlusHead', in_channels=[4, 8, 16],
          deep_supervision=-1.0), 'deep_supervision'),
    (dict(type='UNet3PlusHead', in_channels=[4, 8], cat_channels=0),
     'cat_channels'),
    (dict(type='UNet3PlusHead', in_channels=[4]), 'in_channels'),
])
def test_bad_arguments(cfg, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(cfg, num_classes=2))
