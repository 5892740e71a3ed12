# Copyright (c) mmseg_ext contributors. All rights reserved.
"""A U-Net decoder on the multi-level features of any backbone."""
from typing import List, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor


class _DecoderBlock(nn.Module):
    """Upsample x2, concatenate the skip, two 3x3 conv-norm-act."""

    def __init__(self, in_channels: int, skip_channels: int,
                 out_channels: int, conv_cfg, norm_cfg, act_cfg,
                 align_corners: bool) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.convs = nn.Sequential(
            ConvModule(in_channels + skip_channels, out_channels, 3,
                       padding=1, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                       act_cfg=act_cfg),
            ConvModule(out_channels, out_channels, 3, padding=1,
                       conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                       act_cfg=act_cfg))

    def forward(self, x: Tensor, skip: Tensor = None) -> Tensor:
        size = skip.shape[2:] if skip is not None else \
            tuple(2 * s for s in x.shape[2:])
        x = resize(x, size=size, mode='nearest')
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


@MODELS.register_module()
class UNetHead(BaseDecodeHead):
    """U-Net decoder over a backbone's feature pyramid.

    The decoder of "U-Net: Convolutional Networks for Biomedical Image
    Segmentation" (Ronneberger et al., 2015) as used with pretrained
    encoders (e.g. a ResNet-50 from timm): starting from the deepest
    feature, each block upsamples by 2 (nearest), concatenates the next
    shallower feature and applies two 3x3 conv-norm-act layers;
    ``num_extra_upsamples`` further blocks without skip bring the output to
    a finer stride (a ResNet's stride-2 stem feature plus one extra block
    give stride 1). ``channels`` is the width of the last block, on which
    ``conv_seg`` predicts.

    Args:
        in_channels (Sequence[int]): Channels of the selected features,
            shallow to deep (e.g. ``[64, 256, 512, 1024, 2048]``).
        decoder_channels (Sequence[int]): Width of each block, deep to
            shallow; ``len(in_channels) - 1 + num_extra_upsamples`` entries
            (e.g. ``(256, 128, 64, 32, 16)``).
        num_extra_upsamples (int): Blocks after the shallowest skip.
            Defaults to 1.
        **kwargs: As :class:`mmseg.models.decode_heads.BaseDecodeHead`
            (``in_index``, ``num_classes``, ``norm_cfg``, ...);
            ``input_transform`` is ``'multiple_select'`` and ``channels``
            is ``decoder_channels[-1]``.

    Returns:
        ``forward`` returns ``(N, out_channels, H', W')`` logits at the
        stride of the shallowest feature divided by
        ``2 ** num_extra_upsamples``.

    Raises:
        ValueError: on mismatched ``in_channels`` / ``decoder_channels``.

    Examples:
        >>> head = dict(type='UNetHead', in_channels=[64, 256, 512, 1024,
        ...             2048], in_index=(0, 1, 2, 3, 4),
        ...             decoder_channels=(256, 128, 64, 32, 16),
        ...             num_classes=1)
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
                 num_extra_upsamples: int = 1,
                 **kwargs) -> None:
        in_channels = list(in_channels)
        decoder_channels = list(decoder_channels)
        if len(in_channels) < 2:
            raise ValueError('`in_channels` should list >= 2 feature levels, '
                             f'but got {in_channels}')
        expected = len(in_channels) - 1 + num_extra_upsamples
        if len(decoder_channels) != expected:
            raise ValueError(
                f'`decoder_channels` should have len(in_channels) - 1 + '
                f'num_extra_upsamples = {expected} entries, but got '
                f'{decoder_channels}')
        kwargs.pop('channels', None)
        kwargs.setdefault('in_index', tuple(range(len(in_channels))))
        super().__init__(
            in_channels=in_channels,
            channels=decoder_channels[-1],
            input_transform='multiple_select',
            **kwargs)
        skips = in_channels[:-1][::-1] + [0] * num_extra_upsamples
        blocks: List[nn.Module] = []
        prev = in_channels[-1]
        for skip, out in zip(skips, decoder_channels):
            blocks.append(
                _DecoderBlock(prev, skip, out, self.conv_cfg, self.norm_cfg,
                              self.act_cfg, self.align_corners))
            prev = out
        self.blocks = nn.ModuleList(blocks)
        self.num_skips = len(in_channels) - 1

    def forward(self, inputs) -> Tensor:
        feats = self._transform_inputs(inputs)
        x = feats[-1]
        skips = feats[:-1][::-1]
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < self.num_skips else None)
        return self.cls_seg(x)


__all__ = ['UNetHead']
