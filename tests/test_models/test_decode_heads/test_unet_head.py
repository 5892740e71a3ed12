# Copyright (c) mmseg_ext contributors. All rights reserved.
"""UNetHead over a feature pyramid (shapes, registry, argument checks)."""
import pytest
import torch
from mmseg.registry import MODELS


def _features(n=2, size=32):
    # strides 2, 4, 8 of a 32 x 32 input, like a ResNet stem + 2 stages
    return [torch.randn(n, c, size // s, size // s)
            for c, s in ((4, 2), (8, 4), (16, 8))]


@pytest.mark.parametrize('extra,stride', [(1, 1), (0, 2)])
def test_output_stride(extra, stride):
    head = MODELS.build(
        dict(type='UNetHead', in_channels=[4, 8, 16],
             decoder_channels=(8, 4, 4)[:2 + extra], num_extra_upsamples=extra,
             num_classes=3, norm_cfg=dict(type='BN')))
    out = head(_features())
    assert out.shape == (2, 3, 32 // stride, 32 // stride)
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters()
               if p.requires_grad)


def test_bad_decoder_channels():
    with pytest.raises(ValueError, match='decoder_channels'):
        MODELS.build(dict(type='UNetHead', in_channels=[4, 8, 16],
                          decoder_channels=(8, ), num_classes=2))
    with pytest.raises(ValueError, match='in_channels'):
        MODELS.build(dict(type='UNetHead', in_channels=[4],
                          decoder_channels=(8, ), num_classes=2))
