# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The UNet++ decoder (nested dense skips) on any backbone's pyramid.

MMSeg ships U-Net only as its own encoder-decoder backbone (``UNet``), with
no nested decoder usable over a pretrained encoder; this head is the
decoder of "UNet++: A Nested U-Net Architecture for Medical Image
Segmentation" (Zhou et al., 2018) with the encoder nodes ``X^{i,0}`` taken
from the backbone (timm through ``TIMMBackbone``, MMSeg's ResNet / HRNet /
MiT ...).
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from .deep_supervision import DeepSupervisedHead

__all__ = ['UNetPlusPlusHead']


def conv_block(in_channels: int, out_channels: int, conv_cfg, norm_cfg,
               act_cfg) -> nn.Sequential:
    """Two 3x3 conv-norm-act layers (the "standard unit" of UNet++)."""
    return nn.Sequential(
        ConvModule(in_channels, out_channels, 3, padding=1,
                   conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg),
        ConvModule(out_channels, out_channels, 3, padding=1,
                   conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg))


@MODELS.register_module()
class UNetPlusPlusHead(DeepSupervisedHead):
    """UNet++ decoder (nested dense skip pathways) over a feature pyramid.

    With ``L`` backbone features ``X^{i,0}`` (``i = 0`` shallowest, strides
    doubling), every node ``X^{i,j}`` (``j >= 1``, ``i + j <= L - 1``) is
    ``H(cat[X^{i,0}, ..., X^{i,j-1}, Up(X^{i+1,j-1})])``: ``H`` is two 3x3
    conv-norm-act layers of width ``decoder_channels[i]``, ``Up`` resizes to
    the size of ``X^{i,0}`` (``upsample_mode``; param-free, where the paper's
    Keras code has a transposed convolution). So node ``X^{i,j}`` takes
    ``in_channels[i] + (j - 1) * decoder_channels[i] + c`` channels with
    ``c = in_channels[i + 1]`` for ``j = 1``, else
    ``decoder_channels[i + 1]``. ``conv_seg`` predicts on ``X^{0,L-1}``, at
    the stride of the shallowest feature (the segmentor / loss resizes to
    the label size).

    Deep supervision (the paper's, over the nodes ``X^{0,1} ... X^{0,L-2}``):
    a 1x1 classifier per node, in training mode ``forward`` returns
    ``[main, aux_1, ..., aux_{L-2}]`` and the losses of ``aux_j`` are added
    times ``deep_supervision[j - 1]`` (see
    :mod:`~mmseg_ext.models.decode_heads.deep_supervision`); inference uses
    ``X^{0,L-1}`` (the paper's "accurate mode"). Works inside
    :class:`MultiLabelHead` (multi-label losses) and alone (softmax,
    ``loss_decode``).

    Args:
        in_channels (Sequence[int]): Channels of the selected features,
            shallow to deep, ``L >= 2`` of them.
        decoder_channels (Sequence[int], optional): Width of the nodes of
            each level ``i = 0 .. L-2`` (shallow first). Defaults to None
            (``in_channels[:-1]``, the paper's layout where node widths
            equal the encoder's).
        deep_supervision (float | Sequence[float], optional): Loss weight
            of every auxiliary output (one number, or ``L - 2``). Defaults
            to None (off).
        upsample_mode (str): ``'bilinear'`` or ``'nearest'``.
            Defaults to 'bilinear'.
        **kwargs: As :class:`mmseg.models.decode_heads.BaseDecodeHead`
            (``num_classes``, ``in_index``, ``norm_cfg``, ``dropout_ratio``,
            ``align_corners``, ``loss_decode``); ``channels`` is
            ``decoder_channels[0]`` and ``input_transform`` is
            ``'multiple_select'``.

    Returns:
        ``forward``: ``(N, out_channels, H / s0, W / s0)`` logits (``s0``
        the stride of ``in_channels[0]``), or the list above.

    Raises:
        ValueError: On fewer than 2 levels, a ``decoder_channels`` without
            ``L - 1`` entries, bad ``deep_supervision`` or
            ``upsample_mode``.

    Examples:
        >>> # timm EfficientNet-B3, features at strides 2 .. 32
        >>> head = dict(type='UNetPlusPlusHead',
        ...             in_channels=[24, 32, 48, 136, 384],
        ...             decoder_channels=(32, 64, 128, 256),
        ...             deep_supervision=0.4, num_classes=29)
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 decoder_channels: Optional[Sequence[int]] = None,
                 deep_supervision: Union[None, float,
                                         Sequence[float]] = None,
                 upsample_mode: str = 'bilinear',
                 **kwargs) -> None:
        in_channels = list(in_channels)
        if len(in_channels) < 2:
            raise ValueError('`in_channels` should list >= 2 feature levels, '
                             f'but got {in_channels}')
        levels = len(in_channels)
        decoder_channels = list(in_channels[:-1] if decoder_channels is None
                                else decoder_channels)
        if len(decoder_channels) != levels - 1:
            raise ValueError(
                f'`decoder_channels` should have len(in_channels) - 1 = '
                f'{levels - 1} entries (one width per decoder level, '
                f'shallow first), but got {decoder_channels}')
        if upsample_mode not in ('bilinear', 'nearest'):
            raise ValueError("`upsample_mode` should be 'bilinear' or "
                             f"'nearest', but got {upsample_mode!r}")
        kwargs.pop('channels', None)
        kwargs.setdefault('in_index', tuple(range(levels)))
        super().__init__(
            in_channels=in_channels,
            channels=decoder_channels[0],
            input_transform='multiple_select',
            **kwargs)
        self.decoder_channels = decoder_channels
        self.upsample_mode = upsample_mode
        self.num_levels = levels
        self.nodes = nn.ModuleDict()
        for j in range(1, levels):
            for i in range(levels - j):
                below = in_channels[i + 1] if j == 1 else \
                    decoder_channels[i + 1]
                cin = in_channels[i] + (j - 1) * decoder_channels[i] + below
                self.nodes[f'x{i}_{j}'] = conv_block(
                    cin, decoder_channels[i], self.conv_cfg, self.norm_cfg,
                    self.act_cfg)
        self.init_deep_supervision(deep_supervision,
                                   [decoder_channels[0]] * (levels - 2))

    def _up(self, x: Tensor, like: Tensor) -> Tensor:
        return resize(
            x,
            size=like.shape[2:],
            mode=self.upsample_mode,
            align_corners=self.align_corners
            if self.upsample_mode == 'bilinear' else None)

    def forward_nodes(self, inputs) -> List[List[Tensor]]:
        """Every node: ``grid[i][j]`` is ``X^{i,j}``."""
        grid = [[x] for x in self._transform_inputs(inputs)]
        for j in range(1, self.num_levels):
            for i in range(self.num_levels - j):
                up = self._up(grid[i + 1][j - 1], grid[i][0])
                grid[i].append(self.nodes[f'x{i}_{j}'](
                    torch.cat(grid[i][:j] + [up], dim=1)))
        return grid

    def forward(self, inputs) -> Union[Tensor, List[Tensor]]:
        """Logits of ``X^{0,L-1}`` (and of ``X^{0,1..L-2}`` in training
        with deep supervision)."""
        top = self.forward_nodes(inputs)[0]
        return self.outputs(top[-1], top[1:-1])
