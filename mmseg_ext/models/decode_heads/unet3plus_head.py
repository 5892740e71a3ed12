# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The UNet 3+ decoder (full-scale skips) on any backbone's pyramid.

The decoder of "UNet 3+: A Full-Scale Connected UNet for Medical Image
Segmentation" (Huang et al., 2020) with the encoder stages taken from the
backbone; MMSeg has no such head.
"""
from typing import List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from .deep_supervision import DeepSupervisedHead

__all__ = ['UNet3PlusHead']


@MODELS.register_module()
class UNet3PlusHead(DeepSupervisedHead):
    """UNet 3+ decoder (full-scale skip connections) over a feature pyramid.

    With ``L`` backbone features ``E_0 .. E_{L-1}`` (shallow to deep,
    strides doubling) and ``D_{L-1} = E_{L-1}``, each decoder stage
    ``D_i`` (``i = L-2 .. 0``) gathers all ``L`` scales at the size of
    ``E_i``: ``E_k`` for ``k < i`` max-pooled down (``adaptive_max_pool2d``
    to the size of ``E_i``, which is the paper's ``MaxPool(2^(i-k))`` when
    the sizes divide), ``E_i`` itself, and ``D_k`` for ``k > i`` resized up
    (bilinear); each through one 3x3 conv-norm-act to ``cat_channels``
    channels; the ``L * cat_channels`` concatenation goes through one more
    3x3 conv-norm-act of the same width. ``conv_seg`` (1x1, MMSeg's
    convention; the paper uses a 3x3) predicts on ``D_0``, at the stride of
    the shallowest feature. The paper's classification-guided module is
    not implemented.

    Deep supervision (the paper's, on ``D_1 .. D_{L-2}`` and ``E_{L-1}``):
    a 1x1 classifier per output; in training mode ``forward`` returns
    ``[main, aux_1, ..., aux_{L-1}]`` (``aux_k`` from ``D_k``) and the
    losses of ``aux_k`` are added times ``deep_supervision[k - 1]``
    (:mod:`~mmseg_ext.models.decode_heads.deep_supervision`; the logits are
    resized to the label size by the loss, bilinear, as the paper).

    Args:
        in_channels (Sequence[int]): Channels of the selected features,
            shallow to deep, ``L >= 2``.
        cat_channels (int): Width of each scale's branch. Defaults to 64
            (the paper's; stages are then ``L * 64`` wide).
        deep_supervision (float | Sequence[float], optional): Loss weight
            of every auxiliary output (one number, or ``L - 1``). Defaults
            to None (off).
        **kwargs: As :class:`mmseg.models.decode_heads.BaseDecodeHead`;
            ``channels`` is ``L * cat_channels``, ``input_transform`` is
            ``'multiple_select'``.

    Returns:
        ``forward``: ``(N, out_channels, H / s0, W / s0)`` logits, or the
        list above.

    Raises:
        ValueError: On fewer than 2 levels, a ``cat_channels`` that is not
            a positive int, a bad ``deep_supervision``.

    Examples:
        >>> # timm ResNet-34, features at strides 2 .. 32
        >>> head = dict(type='UNet3PlusHead',
        ...             in_channels=[64, 64, 128, 256, 512],
        ...             cat_channels=64, deep_supervision=0.4,
        ...             num_classes=29)
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 cat_channels: int = 64,
                 deep_supervision: Union[None, float,
                                         Sequence[float]] = None,
                 **kwargs) -> None:
        in_channels = list(in_channels)
        if len(in_channels) < 2:
            raise ValueError('`in_channels` should list >= 2 feature levels, '
                             f'but got {in_channels}')
        if isinstance(cat_channels, bool) or not isinstance(
                cat_channels, int) or cat_channels < 1:
            raise ValueError('`cat_channels` should be a positive int, but '
                             f'got {cat_channels!r}')
        levels = len(in_channels)
        width = levels * cat_channels
        kwargs.pop('channels', None)
        kwargs.setdefault('in_index', tuple(range(levels)))
        super().__init__(
            in_channels=in_channels,
            channels=width,
            input_transform='multiple_select',
            **kwargs)
        self.num_levels = levels
        self.cat_channels = cat_channels

        def conv(cin, cout):
            return ConvModule(cin, cout, 3, padding=1,
                              conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                              act_cfg=self.act_cfg)

        # stages[i] builds D_i; branches[k] reads scale k
        self.stages = nn.ModuleList()
        for i in range(levels - 1):
            sources = [
                in_channels[k] if k <= i or k == levels - 1 else width
                for k in range(levels)
            ]
            self.stages.append(
                nn.ModuleDict(
                    dict(
                        branches=nn.ModuleList(
                            conv(c, cat_channels) for c in sources),
                        fuse=conv(width, width))))
        self.init_deep_supervision(
            deep_supervision, [width] * (levels - 2) + [in_channels[-1]])

    def forward_stages(self, inputs) -> List[Tensor]:
        """``[D_0, ..., D_{L-2}, E_{L-1}]``."""
        feats = self._transform_inputs(inputs)
        levels = self.num_levels
        dec = [None] * (levels - 1) + [feats[-1]]
        for i in range(levels - 2, -1, -1):
            size = feats[i].shape[2:]
            stage = self.stages[i]
            parts = []
            for k, branch in enumerate(stage['branches']):
                if k < i:
                    x = F.adaptive_max_pool2d(feats[k], size)
                elif k == i:
                    x = feats[i]
                else:
                    x = resize(dec[k], size=size, mode='bilinear',
                               align_corners=self.align_corners)
                parts.append(branch(x))
            dec[i] = stage['fuse'](torch.cat(parts, dim=1))
        return dec

    def forward(self, inputs) -> Union[Tensor, List[Tensor]]:
        """Logits of ``D_0`` (and of ``D_1 .. E_{L-1}`` in training with
        deep supervision)."""
        dec = self.forward_stages(inputs)
        return self.outputs(dec[0], dec[1:])
