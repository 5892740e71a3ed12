# Copyright (c) mmseg_ext contributors. All rights reserved.
"""A hand-side oracle segmentor for the unify-hands round trips.

Its backbone predicts, for every class, ``col < W / 2 and x > mean(x)``
(a logit of +10, else -10) on the model input ``x`` (channel 0, ``W`` its
width): it depends on the orientation (the column) *and* on the image, so
a saved prediction tells whether the model saw the flipped image and
whether the output was flipped back (:func:`oracle_masks` is the expected
prediction). Imported through ``custom_imports`` of
``configs/tiny_oracle_handbone-unify.py``.
"""
import numpy as np
import torch
import torch.nn as nn
from mmseg.registry import MODELS

NUM_CLASSES = 29


@MODELS.register_module()
class HandSideOracleBackbone(nn.Module):
    """``(N, 29, H, W)`` features: +10 where ``col < W / 2`` and channel 0
    is above its image mean, else -10."""

    def __init__(self, init_cfg=None) -> None:
        super().__init__()

    def forward(self, x):
        width = x.shape[-1]
        left = torch.arange(width, device=x.device) < width / 2
        bright = x[:, :1] > x[:, :1].mean((2, 3), keepdim=True)
        on = bright & left.view(1, 1, 1, -1)
        feat = torch.where(on, 10.0, -10.0).to(x.dtype)
        return [feat.expand(-1, NUM_CLASSES, -1, -1).contiguous()]


def init_identity_head(model) -> None:
    """Make the 1x1 ``conv_seg`` of the head the identity (logit of class
    ``c`` = feature ``c``)."""
    conv = model.decode_head.head.conv_seg
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(NUM_CLASSES):
            conv.weight[c, c] = 1.0


def oracle_masks(img: np.ndarray, flipped: bool) -> np.ndarray:
    """The ``(29, H, W)`` bool prediction, in ``img``'s orientation, of the
    oracle run on ``img`` (BGR, as read by OpenCV; flipped first when
    ``flipped``, its output flipped back)."""
    x = np.asarray(img)[..., 2].astype(np.float64)  # RGB channel 0
    if flipped:
        x = x[:, ::-1]
    width = x.shape[1]
    left = np.arange(width) < width / 2
    mask = (x > x.mean()) & left[None]
    if flipped:
        mask = mask[:, ::-1]
    return np.repeat(mask[None], NUM_CLASSES, 0)
