# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Overhead of Gaussian blending in slide inference (target <= 5 %).

Times ``EncoderDecoder.slide_inference`` of a SegFormer MiT-B0 (29 output
channels, like the hand-bone task) on one image with ``blend='uniform'`` and
``blend='gaussian'``, and MMSeg's original implementation (``F.pad`` of each
window to the full image), and prints the ratios. The window model is the
same in all three, so the difference is the blending itself.

Example::

    python benchmarks/bench_slide_blend.py --size 1024 --crop 256 --stride 170
"""
import argparse
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config, ConfigDict

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from mmseg_ext.models.segmentors import slide_inference as si


def build(num_classes, device, tiny=False):
    """MMSeg's SegFormer MiT-B0 (random weights), or a 2-stage toy."""
    if tiny:
        cfg = dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=dict(
                type='MixVisionTransformer', in_channels=3, embed_dims=16,
                num_stages=2, num_layers=[1, 1], num_heads=[1, 2],
                patch_sizes=[7, 3], strides=[4, 2], sr_ratios=[4, 2],
                out_indices=(0, 1)),
            decode_head=dict(
                type='SegformerHead', in_channels=[16, 32], in_index=[0, 1],
                channels=32, num_classes=num_classes,
                norm_cfg=dict(type='BN', requires_grad=True)))
    else:
        import mmseg
        path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                        '_base_', 'models', 'segformer_mit-b0.py')
        cfg = Config.fromfile(path).model
        cfg.pretrained = None
        cfg.decode_head.num_classes = num_classes
        cfg.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    return MODELS.build(cfg).to(device).eval()


def timed(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=768)
    parser.add_argument('--crop', type=int, default=256)
    parser.add_argument('--stride', type=int, default=170)
    parser.add_argument('--classes', type=int, default=29)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--tiny', action='store_true',
                        help='a toy window model: shows the blending cost '
                        'alone, an upper bound of the overhead')
    args = parser.parse_args()
    init_default_scope('mmseg')
    torch.manual_seed(0)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = build(args.classes, device, args.tiny)
    inputs = torch.randn(1, 3, args.size, args.size, device=device)
    metas = [dict(img_shape=(args.size, args.size),
                  ori_shape=(args.size, args.size))]
    n_win = len(si.slide_windows((args.size, args.size),
                                 (args.crop, args.crop),
                                 (args.stride, args.stride)))
    results = {}
    with torch.no_grad():
        for name, blend, fn in [
            ('mmseg (F.pad)', None, si._MMSEG_SLIDE_INFERENCE),
            ('ours uniform', 'uniform', si._slide_inference),
            ('ours gaussian', 'gaussian', si._slide_inference),
        ]:
            model.test_cfg = ConfigDict(
                mode='slide', crop_size=(args.crop, args.crop),
                stride=(args.stride, args.stride), blend=blend or 'uniform')
            results[name] = timed(lambda: fn(model, inputs, metas),
                                  args.repeat)
    print(f'{args.size}x{args.size} image, {n_win} windows of {args.crop}, '
          f'{args.classes} channels, model='
          f'{"toy" if args.tiny else "SegFormer MiT-B0"}, device={device}')
    for name, t in results.items():
        print(f'{name:<16} {t * 1e3:9.1f} ms')
    base = results['ours uniform']
    print(f'gaussian / uniform: {results["ours gaussian"] / base:.3f}x '
          f'(overhead {100 * (results["ours gaussian"] / base - 1):+.1f} %)')
    print(f'gaussian / mmseg uniform: '
          f'{results["ours gaussian"] / results["mmseg (F.pad)"]:.3f}x')


if __name__ == '__main__':
    main()
