# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Sliding-window inference with uniform or Gaussian blending.

MMSeg's ``EncoderDecoder.slide_inference`` averages the overlapping windows
uniformly, and zero-pads every window's logits to the full image before
adding them (``F.pad``: one full-size ``(N, C, H, W)`` tensor per window).
:func:`blended_slide_inference` adds each window in place and supports
``blend='gaussian'``: an nnU-Net-style importance map (a Gaussian centred on
the window, ``sigma = sigma_scale * window size``, peak 1, no zeros) that
trusts window centres more than their borders, where the receptive field is
cut off. ``blend='uniform'`` gives exactly MMSeg's result (the same sums in
the same order).

``import mmseg_ext`` routes ``EncoderDecoder.slide_inference`` (and so every
subclass that does not override it: ``CascadeEncoderDecoder``,
``MultiLabelEncoderDecoder``) through this function, so a config only adds
``blend`` to its ``test_cfg``::

    model = dict(test_cfg=dict(mode='slide', crop_size=(512, 512),
                               stride=(341, 341), blend='gaussian'))

Monkey-patching rather than a new segmentor type: ``test_cfg`` is the place
MMSeg users set slide inference, and a subclass would not reach configs that
use MMSeg's own ``EncoderDecoder`` type (every config of its model zoo).
"""
from functools import lru_cache
from typing import Callable, List, Sequence, Tuple

import torch
from mmseg.models.segmentors import EncoderDecoder
from torch import Tensor

BLEND_MODES = ('uniform', 'gaussian')


@lru_cache(maxsize=16)
def _gaussian_map_cpu(h: int, w: int, sigma_scale: float) -> Tensor:
    def axis(n: int) -> Tensor:
        centre = (n - 1) / 2.0
        sigma = max(n * sigma_scale, 1e-6)
        x = torch.arange(n, dtype=torch.float64)
        return torch.exp(-0.5 * ((x - centre) / sigma)**2)

    weights = axis(h)[:, None] * axis(w)[None, :]
    weights /= weights.max()
    # nnU-Net: no zero weights, or pixels covered only by window borders
    # would divide by ~0.
    positive = weights[weights > 0]
    weights = torch.clamp(weights, min=float(positive.min()))
    return weights.float()


def gaussian_importance_map(size: Sequence[int],
                            sigma_scale: float = 0.125,
                            device=None,
                            dtype=torch.float32) -> Tensor:
    """``(h, w)`` Gaussian window weights, peak 1 at the centre.

    Args:
        size (Sequence[int]): ``(h, w)`` of the window.
        sigma_scale (float): ``sigma = sigma_scale * h`` (and ``* w``);
            nnU-Net uses 1/8. Defaults to 0.125.
        device (torch.device, optional): Device of the result.
        dtype (torch.dtype): Dtype of the result. Defaults to float32.

    Returns:
        Tensor: ``(h, w)`` weights in ``(0, 1]``.
    """
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f'`size` should be positive, but got {tuple(size)}')
    if not sigma_scale > 0:
        raise ValueError('`sigma_scale` should be > 0, but got '
                         f'{sigma_scale!r}')
    return _gaussian_map_cpu(h, w, float(sigma_scale)).to(
        device=device, dtype=dtype)


def _window_starts(size: int, crop: int, stride: int) -> List[int]:
    """Window starts along one axis, as MMSeg's slide inference lays them.
    """
    grids = max(size - crop + stride - 1, 0) // stride + 1
    starts = []
    for i in range(grids):
        end = min(i * stride + crop, size)
        starts.append(max(end - crop, 0))
    return starts


def slide_windows(image_size: Tuple[int, int], crop_size: Sequence[int],
                  stride: Sequence[int]) -> List[Tuple[int, int, int, int]]:
    """``(y1, y2, x1, x2)`` of every window, in MMSeg's order (rows first).
    """
    h_img, w_img = image_size
    h_crop, w_crop = crop_size
    h_stride, w_stride = stride
    if min(h_crop, w_crop, h_stride, w_stride) < 1:
        raise ValueError('`crop_size` and `stride` should be positive, but '
                         f'got crop_size={tuple(crop_size)}, '
                         f'stride={tuple(stride)}')
    windows = []
    for y1 in _window_starts(h_img, h_crop, h_stride):
        for x1 in _window_starts(w_img, w_crop, w_stride):
            windows.append((y1, min(y1 + h_crop, h_img), x1,
                            min(x1 + w_crop, w_img)))
    return windows


def blended_slide_inference(crop_fn: Callable[[Tensor, List[dict]], Tensor],
                            inputs: Tensor,
                            batch_img_metas: List[dict],
                            crop_size: Sequence[int],
                            stride: Sequence[int],
                            out_channels: int,
                            blend: str = 'uniform',
                            sigma_scale: float = 0.125) -> Tensor:
    """Run ``crop_fn`` on overlapping windows and blend the outputs.

    Args:
        crop_fn (Callable): ``crop_fn(crop (N, 3, h, w), batch_img_metas)``
            returns ``(N, out_channels, h, w)`` scores of the window (e.g.
            ``segmentor.encode_decode``).
        inputs (Tensor): ``(N, 3, H, W)`` images.
        batch_img_metas (list[dict]): Metas; ``img_shape`` of the first is
            set to each window's shape before ``crop_fn`` (as MMSeg does).
        crop_size (Sequence[int]): ``(h_crop, w_crop)``.
        stride (Sequence[int]): ``(h_stride, w_stride)``.
        out_channels (int): ``C`` of the scores.
        blend (str): ``'uniform'`` (MMSeg's mean) or ``'gaussian'``.
            Defaults to 'uniform'.
        sigma_scale (float): Gaussian sigma over window size.
            Defaults to 0.125.

    Returns:
        Tensor: ``(N, C, H, W)`` blended scores, dtype of ``inputs``.
    """
    if blend not in BLEND_MODES:
        raise ValueError(f'`test_cfg.blend` should be one of {BLEND_MODES}, '
                         f'but got {blend!r}')
    batch_size, _, h_img, w_img = inputs.shape
    preds = inputs.new_zeros((batch_size, out_channels, h_img, w_img))
    weight_sum = inputs.new_zeros((1, 1, h_img, w_img))
    # Importance maps on the device, once per window shape and call: a
    # host-to-device copy per window would stall the GPU queue each time.
    maps = {}
    for y1, y2, x1, x2 in slide_windows((h_img, w_img), crop_size, stride):
        crop_img = inputs[:, :, y1:y2, x1:x2]
        batch_img_metas[0]['img_shape'] = crop_img.shape[2:]
        crop_pred = crop_fn(crop_img, batch_img_metas)
        if blend == 'uniform':
            preds[:, :, y1:y2, x1:x2] += crop_pred
            weight_sum[:, :, y1:y2, x1:x2] += 1
        else:
            shape = (y2 - y1, x2 - x1)
            if shape not in maps:
                maps[shape] = gaussian_importance_map(
                    shape, sigma_scale, inputs.device, preds.dtype)
            weights = maps[shape]
            # fused multiply-add in place: no temporary window-sized tensor
            preds[:, :, y1:y2, x1:x2].addcmul_(crop_pred, weights)
            weight_sum[:, :, y1:y2, x1:x2] += weights
    return preds / weight_sum


_MMSEG_SLIDE_INFERENCE = EncoderDecoder.slide_inference


def _slide_inference(self, inputs: Tensor,
                     batch_img_metas: List[dict]) -> Tensor:
    """``EncoderDecoder.slide_inference`` with ``test_cfg.blend``.

    See :func:`blended_slide_inference`; ``test_cfg`` keys: ``crop_size``,
    ``stride``, ``blend`` ('uniform' | 'gaussian', default 'uniform') and
    ``sigma_scale`` (default 0.125).
    """
    return blended_slide_inference(
        self.encode_decode,
        inputs,
        batch_img_metas,
        crop_size=self.test_cfg['crop_size'],
        stride=self.test_cfg['stride'],
        out_channels=self.out_channels,
        blend=self.test_cfg.get('blend', 'uniform'),
        sigma_scale=self.test_cfg.get('sigma_scale', 0.125))


def patch_slide_inference() -> None:
    """Route ``EncoderDecoder.slide_inference`` through this module
    (idempotent)."""
    EncoderDecoder.slide_inference = _slide_inference


patch_slide_inference()

__all__ = [
    'BLEND_MODES', 'gaussian_importance_map', 'slide_windows',
    'blended_slide_inference', 'patch_slide_inference'
]
