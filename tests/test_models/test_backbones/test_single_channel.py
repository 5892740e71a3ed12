# Copyright (c) mmseg_ext contributors. All rights reserved.
"""SingleChannelBackbone on a hand-made RGB checkpoint: summed first
kernels, every other weight loaded, the same features as the RGB model on
a grey image copied to 3 channels."""
import pytest
import torch
from mmseg.registry import MODELS

from mmseg_ext.models.backbones.single_channel import sum_rgb_input_convs

RESNET = dict(type='ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
              norm_cfg=dict(type='BN'))


def test_sum_rgb_input_convs_by_hand():
    w = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).view(2, 3, 1, 1)
    state = dict(stem=w, other=torch.ones(2, 3, 1, 1), bias=torch.ones(2))
    target = dict(stem=torch.zeros(2, 1, 1, 1),
                  other=torch.zeros(2, 3, 1, 1), bias=torch.zeros(2))
    out, converted = sum_rgb_input_convs(state, target)
    assert converted == ['stem']
    assert out['stem'].flatten().tolist() == [0 + 1 + 2, 3 + 4 + 5]
    assert out['other'] is state['other'] and out['bias'] is state['bias']


@pytest.mark.parametrize('prefix', [None, 'backbone.'])
def test_summed_checkpoint_gives_the_rgb_features(tmp_path, prefix):
    torch.manual_seed(0)
    rgb = MODELS.build(RESNET)
    for m in rgb.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    state = rgb.state_dict()
    if prefix:
        state = {prefix + k: v for k, v in state.items()}
        state['decode_head.conv.weight'] = torch.zeros(1)
    path = str(tmp_path / 'rgb.pth')
    torch.save(dict(state_dict=state), path)
    grey = MODELS.build(dict(type='SingleChannelBackbone', backbone=RESNET,
                             checkpoint=path, prefix=prefix))
    grey.init_weights()
    w = grey.backbone.conv1.weight
    assert w.shape == (64, 1, 7, 7)
    assert torch.equal(w, rgb.conv1.weight.sum(1, keepdim=True))
    rgb.eval()
    grey.eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        for a, b in zip(grey(x), rgb(x.repeat(1, 3, 1, 1))):
            assert torch.allclose(a, b, atol=1e-4)


def test_wrong_checkpoint(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=dict(fc=torch.zeros(3, 3))), path)
    grey = MODELS.build(dict(type='SingleChannelBackbone', backbone=RESNET,
                             checkpoint=path))
    with pytest.raises(ValueError, match='no RGB input convolution'):
        grey.init_weights()
    with pytest.raises(ValueError, match='backbone'):
        MODELS.build(dict(type='SingleChannelBackbone', backbone='ResNet'))
