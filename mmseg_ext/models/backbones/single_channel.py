# Copyright (c) mmseg_ext contributors. All rights reserved.
"""1-channel (grey X-ray) input for backbones pretrained on RGB.

A grey image fed as three equal channels ``[x, x, x]`` through a first
convolution ``W`` gives ``sum_c W_c * x``: the same as a 1-channel
convolution with the RGB kernels summed (exactly, when the three channels
are normalised alike). Feeding 1 channel saves the copy and 2/3 of the
first layer's input; the summed kernels keep the pretrained features.
timm does this itself (``TIMMBackbone(in_channels=1)``: timm's
``adapt_input_conv``); MMSeg's ``Pretrained`` init would instead skip the
mismatching first convolution (random weights), hence
:class:`SingleChannelBackbone` for MMSeg's backbones (HRNet, ResNet, MiT,
Swin ...).
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict
from mmseg.registry import MODELS

__all__ = ['SingleChannelBackbone', 'sum_rgb_input_convs']


def sum_rgb_input_convs(
        state: Dict[str, torch.Tensor],
        target: Dict[str, torch.Tensor]
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Sum the RGB input kernels of a checkpoint for a 1-channel model.

    Args:
        state (dict[str, Tensor]): Checkpoint state dict (RGB model).
        target (dict[str, Tensor]): State dict of the 1-channel model.

    Returns:
        tuple: The state dict with every ``(O, 3, kh, kw)`` weight whose
        model counterpart is ``(O, 1, kh, kw)`` replaced by its sum over the
        input channels, and the keys so converted.
    """
    out, converted = dict(state), []
    for key, value in state.items():
        want = target.get(key)
        if want is None or value.dim() != 4 or value.shape[1] != 3:
            continue
        if want.shape == (value.shape[0], 1) + tuple(value.shape[2:]):
            out[key] = value.sum(dim=1, keepdim=True)
            converted.append(key)
    return out, converted


@MODELS.register_module()
class SingleChannelBackbone(BaseModule):
    """Any backbone on 1-channel input, its RGB pretrained stem summed.

    Builds ``backbone`` with ``in_channels=1`` (and without its own
    ``init_cfg`` / ``pretrained``); ``init_weights`` loads ``checkpoint``
    (any path or URL mmengine reads, ``state_dict`` / ``prefix`` handled)
    with :func:`sum_rgb_input_convs` applied, non-strictly as MMSeg's
    ``Pretrained`` init does. ``forward`` is the backbone's.

    Args:
        backbone (dict): Config of the backbone (with an ``in_channels``
            argument: MMSeg's HRNet, ResNet, MixVisionTransformer, Swin ...).
        checkpoint (str, optional): RGB checkpoint. Defaults to None
            (random initialisation).
        prefix (str, optional): Keep only the keys under this prefix
            (e.g. ``'backbone.'`` of a whole segmentor), stripped.
            Defaults to None.
        init_cfg (dict, optional): Not used with a ``checkpoint``.
            Defaults to None.

    Raises:
        ValueError: if ``backbone`` is not a config dict; at
            ``init_weights``, if the checkpoint has no RGB input
            convolution that fits (the wrong checkpoint or backbone).

    Examples:
        >>> backbone = dict(
        ...     type='SingleChannelBackbone',
        ...     checkpoint='open-mmlab://msra/hrnetv2_w32',
        ...     backbone=dict(type='HRNet', extra=...))
    """

    def __init__(self,
                 backbone: dict,
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise ValueError('`backbone` should be a backbone config dict, '
                             f'but got {backbone!r}')
        backbone = dict(backbone, in_channels=1)
        backbone.pop('init_cfg', None)
        backbone.pop('pretrained', None)
        self.backbone = MODELS.build(backbone)
        self.checkpoint = checkpoint
        self.prefix = prefix

    def init_weights(self) -> None:
        """The backbone's own init, then the summed checkpoint."""
        super().init_weights()
        if self.checkpoint is None:
            return
        ckpt = CheckpointLoader.load_checkpoint(self.checkpoint,
                                                map_location='cpu')
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt,
                                                           dict) else ckpt
        if self.prefix:
            n = len(self.prefix)
            state = {k[n:]: v for k, v in state.items()
                     if k.startswith(self.prefix)}
        state, converted = sum_rgb_input_convs(state,
                                               self.backbone.state_dict())
        if not converted:
            raise ValueError(
                f'{self.checkpoint}: no RGB input convolution (O, 3, kh, kw) '
                'matching a 1-channel weight of the backbone; check the '
                'checkpoint, `prefix` and the backbone config')
        print_log(f'SingleChannelBackbone: summed the RGB kernels of '
                  f'{converted} from {self.checkpoint}', logger='current')
        load_state_dict(self.backbone, state, strict=False,
                        logger='current')

    def forward(self, x):
        """The backbone's features of ``(N, 1, H, W)`` images."""
        return self.backbone(x)
