# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Our multi-label training step against MMSeg's softmax step, same model.

For SegFormer MiT-B0 and UPerNet Swin-T (the hand-bone 1024x1024 configs,
``configs/segformer/segformer_mit-b0_1xb2-20k_handbone-1024x1024.py`` and
``configs/upernet/upernet_swin-t_1xb2-20k_handbone-1024x1024.py``), two
segmentors with the same backbone and inner heads, on the same images:

- ``ours``: the config's model as trained (``MultiLabelEncoderDecoder``,
  packed int16 labels unpacked on the device by
  ``MultiLabelSegDataPreProcessor``, ``MultiLabelHead`` with
  ``MultiLabelBCELoss`` + ``SoftDiceLoss``, class weights set on both);
- ``mmseg``: MMSeg's ``EncoderDecoder`` with ``SegDataPreProcessor``, the
  inner heads with ``CrossEntropyLoss`` (the same class weights), class
  index labels.

An iteration is ``model.train_step(batch, optim_wrapper)`` (what mmengine's
``IterBasedTrainLoop`` runs: preprocessing, forward, losses, backward,
AdamW step), fp32 (``OptimWrapper``) and AMP (``AmpOptimWrapper``, fp16,
dynamic loss scale; CUDA only); ``--warmup`` untimed then ``--iters`` timed
iterations, the two segmentors interleaved per round. Printed: iter/s and
peak memory (``torch.cuda.max_memory_allocated``) and the ratios ours /
mmseg (target: <= 1.05x MMSeg's step time). Random images and labels (the
step's cost does not depend on their values); pretrained weights off.

Without CUDA (or with ``--cpu-smoke``) it runs a reduced size on the CPU
(``--size 64``, batch 2, 2 iterations, fp32) so CI can smoke-test it; its
ratios say nothing about a GPU.

Example::

    python benchmarks/bench_step_gpu.py            # CUDA: 1024², batch 2
    python benchmarks/bench_step_gpu.py --cpu-smoke
"""
import argparse
import copy
import os.path as osp
import statistics
import sys
import time

import numpy as np
import torch

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_ext.utils.multilabel import pack_multilabel

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'segformer-b0': 'configs/segformer/segformer_mit-b0_1xb2-20k_handbone-'
    '1024x1024.py',
    'upernet-swin-t': 'configs/upernet/upernet_swin-t_1xb2-20k_handbone-'
    '1024x1024.py',
}
C = 29
MIB = 2**20


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cpu-smoke', action='store_true',
                        help='reduced size on the CPU (automatic without '
                        'CUDA)')
    parser.add_argument('--size', type=int, default=None,
                        help='input side (default 1024; 64 on the CPU)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help="default 2 (the configs' batch; UPerHead's "
                        'pooling needs >= 2)')
    parser.add_argument('--iters', type=int, default=None,
                        help='timed iterations (default 20; 2 on the CPU)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed iterations (default 5; 1 on the CPU)')
    parser.add_argument('--models', nargs='+', default=list(CONFIGS),
                        choices=list(CONFIGS))
    args = parser.parse_args()
    cpu = args.cpu_smoke or not torch.cuda.is_available()
    args.device = 'cpu' if cpu else 'cuda'
    defaults = (64, 2, 2, 1) if cpu else (1024, 2, 20, 5)
    for key, value in zip(('size', 'batch_size', 'iters', 'warmup'),
                          defaults):
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def model_cfgs(path: str, size: int):
    """(ours, mmseg's) model configs of a hand-bone config."""
    cfg = Config.fromfile(osp.join(REPO, path))
    ours = copy.deepcopy(cfg.model)
    ours.pretrained = None
    ours.backbone.init_cfg = None
    ours.data_preprocessor.size = (size, size)
    weights = list(np.linspace(0.5, 2.0, C))
    for head in [ours.decode_head] + ([ours.auxiliary_head]
                                      if ours.get('auxiliary_head') else []):
        for loss in head.loss_decode:
            loss.class_weight = weights
    pre = ours.data_preprocessor
    theirs = copy.deepcopy(ours)
    theirs.type = 'EncoderDecoder'
    theirs.data_preprocessor = dict(
        type='SegDataPreProcessor', mean=pre.mean, std=pre.std,
        bgr_to_rgb=pre.bgr_to_rgb, pad_val=0, seg_pad_val=255,
        size=(size, size))
    theirs.test_cfg = dict(mode='whole')

    def softmax_head(head, loss_weight):
        inner = copy.deepcopy(head.head)
        inner.loss_decode = dict(type='CrossEntropyLoss', use_sigmoid=False,
                                 loss_weight=loss_weight,
                                 class_weight=weights)
        return inner

    theirs.decode_head = softmax_head(ours.decode_head, 1.0)
    if ours.get('auxiliary_head'):
        theirs.auxiliary_head = softmax_head(ours.auxiliary_head, 0.4)
    return cfg, ours, theirs


def batches(kind: str, size: int, n: int, rng) -> dict:
    """One batch of random uint8 images and labels of each kind."""
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.from_numpy(
            rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
        sample = SegDataSample()
        if kind == 'ours':
            masks = rng.random((C, size, size)) < 0.05
            packed = pack_multilabel(masks).view(np.int16).transpose(2, 0, 1)
            data = torch.from_numpy(np.ascontiguousarray(packed))
        else:
            data = torch.from_numpy(
                rng.integers(0, C, (1, size, size))).long()
        sample.gt_sem_seg = PixelData(data=data)
        sample.set_metainfo(dict(img_shape=(size, size),
                                 ori_shape=(size, size)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build(model_cfg, optim_cfg, device, amp):
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(model_cfg)))
    model.init_weights()
    model = model.to(device).train()
    optim = copy.deepcopy(optim_cfg)
    optim.pop('constructor', None)
    optim.pop('paramwise_cfg', None)
    optim.type = 'AmpOptimWrapper' if amp else 'OptimWrapper'
    if amp:
        optim.loss_scale = 'dynamic'
    return model, build_optim_wrapper(model, optim)


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def run(args, name: str) -> dict:
    cfg, ours, theirs = model_cfgs(CONFIGS[name], args.size)
    rng = np.random.default_rng(0)
    data = {'ours': batches('ours', args.size, args.batch_size, rng),
            'mmseg': batches('mmseg', args.size, args.batch_size, rng)}
    results = {}
    for amp in ([False, True] if args.device == 'cuda' else [False]):
        built = {
            'ours': build(ours, cfg.optim_wrapper, args.device, amp),
            'mmseg': build(theirs, cfg.optim_wrapper, args.device, amp)
        }
        times = {k: [] for k in built}
        peak = {}
        for k, (model, optim) in built.items():
            for _ in range(args.warmup):
                model.train_step(data[k], optim)
        for _ in range(args.iters):
            for k, (model, optim) in built.items():
                if args.device == 'cuda':
                    torch.cuda.reset_peak_memory_stats()
                sync(args.device)
                start = time.perf_counter()
                model.train_step(data[k], optim)
                sync(args.device)
                times[k].append(time.perf_counter() - start)
                if args.device == 'cuda':
                    peak[k] = max(peak.get(k, 0),
                                  torch.cuda.max_memory_allocated() / MIB)
        results['amp' if amp else 'fp32'] = dict(
            times={k: statistics.median(v) for k, v in times.items()},
            peak=peak)
        del built
        if args.device == 'cuda':
            torch.cuda.empty_cache()
    return results


def main():
    args = parse_args()
    init_default_scope('mmseg')
    MMLogger.get_instance('bench_step_gpu', log_level='WARNING')
    where = 'CPU smoke (reduced size; no GPU figures)' \
        if args.device == 'cpu' else torch.cuda.get_device_name()
    print(f'{where}: {args.size}x{args.size}, batch {args.batch_size}, '
          f'{C} classes, {args.warmup} warm-up + {args.iters} timed '
          'iterations (median)')
    for name in args.models:
        for mode, res in run(args, name).items():
            t, peak = res['times'], res['peak']
            line = (f'{name:<15} {mode:<5} ours {1 / t["ours"]:7.2f} it/s, '
                    f'mmseg {1 / t["mmseg"]:7.2f} it/s; time ours / mmseg '
                    f'{t["ours"] / t["mmseg"]:.2f}x')
            if peak:
                line += (f'; peak {peak["ours"]:.0f} / {peak["mmseg"]:.0f} '
                         f'MiB = {peak["ours"] / peak["mmseg"]:.2f}x')
            if args.device == 'cuda':
                ok = t['ours'] / t['mmseg'] <= 1.05
                line += f' (target <= 1.05x: {"ok" if ok else "MISSED"})'
            print(line)


if __name__ == '__main__':
    main()
