# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Uniform / Gaussian blended slide inference."""

import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from mmseg_ext.models.segmentors import slide_inference as si


def _segmentor(test_cfg):
    norm_cfg = dict(type='BN', requires_grad=True)
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(
            type='MixVisionTransformer', in_channels=3, embed_dims=8,
            num_stages=2, num_layers=[1, 1], num_heads=[1, 2],
            patch_sizes=[7, 3], strides=[4, 2], sr_ratios=[2, 1],
            out_indices=(0, 1)),
        decode_head=dict(
            type='SegformerHead', in_channels=[8, 16], in_index=[0, 1],
            channels=8, num_classes=3, norm_cfg=norm_cfg),
        test_cfg=ConfigDict(test_cfg))
    model = MODELS.build(cfg)
    model.eval()
    return model


def _metas(h, w):
    return [dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))]


def test_uniform_equals_mmseg_exactly():
    torch.manual_seed(0)
    model = _segmentor(dict(mode='slide', crop_size=(32, 32),
                            stride=(20, 20)))
    inputs = torch.randn(2, 3, 70, 53)
    with torch.no_grad():
        ours = model.slide_inference(inputs, _metas(70, 53))
        ref = si._MMSEG_SLIDE_INFERENCE(model, inputs, _metas(70, 53))
    assert ours.shape == (2, 3, 70, 53)
    assert torch.equal(ours, ref)


def test_patched_into_encoder_decoder():
    assert EncoderDecoder.slide_inference is si._slide_inference


class _ConstantCrop:
    """A window model that answers a constant, or its local x coordinate."""

    def __init__(self, mode):
        self.mode = mode
        self.crops = []

    def __call__(self, crop, metas):
        n, _, h, w = crop.shape
        self.crops.append((h, w))
        if self.mode == 'constant':
            return torch.full((n, 2, h, w), 3.5)
        x = torch.arange(w, dtype=torch.float32).expand(n, 2, h, w)
        return x.clone()


@pytest.mark.parametrize('blend', ['uniform', 'gaussian'])
def test_constant_model_gives_the_constant(blend):
    fn = _ConstantCrop('constant')
    out = si.blended_slide_inference(fn, torch.zeros(1, 3, 50, 61),
                                     _metas(50, 61), (32, 32), (16, 16), 2,
                                     blend=blend)
    assert torch.allclose(out, torch.full_like(out, 3.5), atol=1e-6)
    # windows as MMSeg lays them: 3 rows (0, 16, 18) x 3 cols (0, 16, 29)
    assert len(fn.crops) == 9 and set(fn.crops) == {(32, 32)}


def test_gaussian_trusts_window_centres():
    # Two windows of width 4 over a width-6 row: x1 = 0 and x1 = 2. The
    # model answers the local x; at image column 2 the left window says 2
    # and the right says 0. Uniform: mean 1. Gaussian (sigma = 0.5 px):
    # column 2 is 0.5 px from the left window's centre (1.5) and 1.5 px
    # from the right one's (3.5).
    fn = _ConstantCrop('x')
    inputs = torch.zeros(1, 3, 1, 6)
    uni = si.blended_slide_inference(fn, inputs, _metas(1, 6), (1, 4),
                                     (1, 2), 2, blend='uniform')
    gau = si.blended_slide_inference(fn, inputs, _metas(1, 6), (1, 4),
                                     (1, 2), 2, blend='gaussian')
    assert uni[0, 0, 0, 2].item() == pytest.approx(1.0)
    g = si.gaussian_importance_map((1, 4), 0.125)[0]
    w_left, w_right = g[2].item(), g[0].item()
    expected = (2 * w_left + 0 * w_right) / (w_left + w_right)
    assert gau[0, 0, 0, 2].item() == pytest.approx(expected, rel=1e-5)
    assert gau[0, 0, 0, 2].item() > 1.9


def test_gaussian_map_properties():
    g = si.gaussian_importance_map((9, 5), 0.125)
    assert g.shape == (9, 5)
    assert g.max().item() == pytest.approx(1.0)
    assert g[4, 2].item() == pytest.approx(1.0)
    assert (g > 0).all()
    assert torch.equal(g, g.flip(0)) and torch.equal(g, g.flip(1))


def test_gaussian_through_test_cfg_changes_result():
    torch.manual_seed(0)
    model = _segmentor(dict(mode='slide', crop_size=(32, 32),
                            stride=(16, 16), blend='gaussian'))
    inputs = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        gau = model.inference(inputs, _metas(64, 64))
        model.test_cfg.blend = 'uniform'
        uni = model.inference(inputs, _metas(64, 64))
    assert gau.shape == uni.shape == (1, 3, 64, 64)
    assert not torch.allclose(gau, uni)


@pytest.mark.parametrize('kwargs,match', [
    (dict(blend='median'), 'blend'),
    (dict(stride=(0, 4)), 'stride'),
])
def test_bad_arguments(kwargs, match):
    args = dict(crop_size=(4, 4), stride=(2, 2), blend='uniform')
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        si.blended_slide_inference(
            _ConstantCrop('constant'), torch.zeros(1, 3, 8, 8), _metas(8, 8),
            args['crop_size'], args['stride'], 2, blend=args['blend'])
