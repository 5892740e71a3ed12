# Copyright (c) mmseg_ext contributors. All rights reserved.
"""AMP vs fp32 training on CUDA, and the cost of Gaussian slide blending.

1. Training speed and memory of the hand-bone SegFormer MiT-B0 512x512
   config (``configs/segformer/segformer_mit-b0_1xb8-20k_handbone-512x512.py``)
   in fp32 and with mixed precision. The repo has no ``-amp`` file of this
   config, so the AMP variant is the config after ``tools/train.py --amp``
   (:func:`mmseg_ext.engine.launch.enable_amp`: ``AmpOptimWrapper``, fp16
   autocast, dynamic loss scale). Pretrained weights are off (no download);
   the data are generated hand-bone X-rays (the project's generator and
   converter, in a temporary folder). Model and optimiser wrapper are built
   from the config as mmengine's ``Runner`` builds them (one process: SyncBN
   reverted to BN, ``env_cfg.cudnn_benchmark``); ``--batches`` batches of
   the config's train dataloader (its whole augmentation pipeline) are
   loaded once and cycled, so data loading is not timed. An iteration is
   ``model.train_step(batch, optim_wrapper)``, what ``IterBasedTrainLoop``
   runs: preprocessing on the GPU (labels unpacked there), forward, losses,
   backward, optimiser step. ``--warmup`` iterations, then ``--iters`` timed
   ones; peak memory is ``torch.cuda.max_memory_allocated`` over them.
2. Slide inference of the same network (29 sigmoid channels, no flip) on
   one ``--size`` x ``--size`` image with ``blend='uniform'`` and
   ``blend='gaussian'``: the fastest of ``--repeat`` runs of each after a
   warm-up of both, the two modes interleaved (measured one after the
   other, the second mode looked 13 % slower on an H100 whichever it was).

Measured on an H100 (torch 2.11, 2026-11-23): AMP 0.89-1.01x the fp32
iter/s at 0.84x the peak memory: SegFormer-B0 at batch 8 is bound by kernel
launches and the optimiser step (the GPU is busy about half of each step),
so fp16 saves memory, not time; Gaussian / uniform 1.00x.

Prints iter/s and peak memory of each variant, the AMP / fp32 ratios and the
Gaussian overhead; no timing is asserted. Without CUDA it says so and exits
(status 0).

Example::

    python benchmarks/bench_amp_gpu.py --iters 30
"""
import argparse
import copy
import math
import os
import os.path as osp
import sys
import tempfile
import time

import torch

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import MODELS

from mmseg_ext.datasets.converters.hand_bone import convert_hand_bone
from mmseg_ext.datasets.generators.hand_bone import generate_hand_bone
from mmseg_ext.engine.launch import enable_amp
from mmseg_ext.models.segmentors.slide_inference import slide_windows

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'segformer',
                          'segformer_mit-b0_1xb8-20k_handbone-512x512.py')
MIB = 2**20


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='hand-bone training config (fp32)')
    parser.add_argument('--iters', type=int, default=30,
                        help='timed training iterations per variant')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed iterations first (cuDNN autotuning)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help="batch size (default: the config's)")
    parser.add_argument('--batches', type=int, default=4,
                        help='distinct batches loaded once and cycled')
    parser.add_argument('--train-ids', type=int, default=4,
                        help='generated patients (2 X-rays each; fold 0 of '
                        '4 is left out for validation)')
    parser.add_argument('--image-size', type=int, default=1024,
                        help='side of the generated X-rays')
    parser.add_argument('--size', type=int, default=2048,
                        help='side of the slide-inference image')
    parser.add_argument('--crop', type=int, default=512,
                        help='slide window side')
    parser.add_argument('--stride', type=int, default=384,
                        help='slide stride (3/4 of the window, as the '
                        'hand-bone configs)')
    parser.add_argument('--repeat', type=int, default=5,
                        help='timed slide-inference runs per blend')
    args = parser.parse_args()
    if min(args.iters, args.batches, args.repeat, args.train_ids) < 1 or \
            args.warmup < 0:
        parser.error('--iters, --batches, --repeat and --train-ids should '
                     'be >= 1 and --warmup >= 0')
    if args.train_ids < 2:
        parser.error('--train-ids should be >= 2 (one fold is held out)')
    return args


def no_pretrained(model_cfg):
    """The configs keep the real checkpoint URL; never download here."""
    model_cfg.pretrained = None
    if 'init_cfg' in model_cfg.backbone:
        model_cfg.backbone.init_cfg = None


def build_model(cfg):
    """The config's model on the GPU, as a one-process Runner builds it."""
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(cfg.model)))
    model.init_weights()
    return model.cuda()


def load_batches(cfg, num):
    """``num`` batches of the config's train dataloader, kept on the host."""
    loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader),
                                     seed=0)
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == num:
            break
    return batches


def sync_time():
    torch.cuda.synchronize()
    return time.perf_counter()


def train_speed(cfg, batches, warmup, iters):
    """iter/s, peak MiB, last loss and loss scale of one variant."""
    model = build_model(cfg)
    model.train()
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(
        cfg.optim_wrapper))
    optim_wrapper.initialize_count_status(model, 0, warmup + iters)
    log_vars = None
    for i in range(warmup):
        log_vars = model.train_step(batches[i % len(batches)], optim_wrapper)
    torch.cuda.reset_peak_memory_stats()
    start = sync_time()
    for i in range(warmup, warmup + iters):
        log_vars = model.train_step(batches[i % len(batches)], optim_wrapper)
    seconds = sync_time() - start
    peak = torch.cuda.max_memory_allocated() / MIB
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    result = dict(
        iter_s=iters / seconds,
        ms=1000 * seconds / iters,
        peak_mib=peak,
        loss=float(log_vars['loss']),
        scale=scaler.get_scale() if scaler is not None else None)
    del model, optim_wrapper
    torch.cuda.empty_cache()
    return result


def slide_speed(cfg, args):
    """ms and peak MiB of one slide inference per blend mode."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.test_cfg = ConfigDict(
        mode='slide', crop_size=(args.crop, args.crop),
        stride=(args.stride, args.stride), flip=False)
    model = build_model(Config(dict(model=model_cfg))).eval()
    inputs = torch.randn(1, 3, args.size, args.size, device='cuda')
    metas = [dict(img_shape=(args.size, args.size),
                  ori_shape=(args.size, args.size))]
    blends = ('uniform', 'gaussian')
    times = {blend: [] for blend in blends}
    peaks = {blend: 0 for blend in blends}
    with torch.no_grad():
        for blend in blends:  # warm-up (cuDNN autotuning) of both
            model.test_cfg.blend = blend
            model.predict_probs(inputs, metas)
        # Interleaved, so clock ramps and allocator state favour neither.
        for _ in range(args.repeat):
            for blend in blends:
                model.test_cfg.blend = blend
                torch.cuda.reset_peak_memory_stats()
                start = sync_time()
                probs = model.predict_probs(inputs, metas)
                times[blend].append(sync_time() - start)
                peaks[blend] = max(peaks[blend],
                                   torch.cuda.max_memory_allocated() / MIB)
    results = {
        blend: dict(ms=1000 * min(times[blend]), peak_mib=peaks[blend],
                    channels=probs.shape[1])
        for blend in blends
    }
    del model
    torch.cuda.empty_cache()
    return results


def main():
    args = parse_args()
    if not torch.cuda.is_available():
        print('bench_amp_gpu.py measures CUDA mixed precision, but '
              'torch.cuda.is_available() is False on this machine '
              f'(torch {torch.__version__}); nothing to measure.',
              file=sys.stderr)
        return
    init_default_scope('mmseg')
    # the 'current' logger: no per-parameter init_weights report
    MMLogger.get_instance('bench_amp_gpu', log_level='WARNING')
    cfg = Config.fromfile(args.config)
    if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        sys.exit(f'--config should be an fp32 config (OptimWrapper), but '
                 f'{osp.basename(args.config)} has '
                 f'{cfg.optim_wrapper.type}')
    no_pretrained(cfg.model)
    loader = cfg.train_dataloader
    if args.batch_size is not None:
        loader.batch_size = args.batch_size
    loader.num_workers = min(8, os.cpu_count() or 1)
    loader.persistent_workers = False
    benchmark = bool(cfg.get('env_cfg', {}).get('cudnn_benchmark', False))
    torch.backends.cudnn.benchmark = benchmark
    amp_cfg = copy.deepcopy(cfg)
    enable_amp(amp_cfg)  # what `tools/train.py --amp` does

    print(f'device: {torch.cuda.get_device_name(0)}, torch '
          f'{torch.__version__}, cudnn.benchmark={benchmark}')
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_hand_bone(tmp, num_train_ids=args.train_ids, num_test_ids=0,
                           size=args.image_size, seed=0)
        convert_hand_bone(tmp, num_folds=args.train_ids,
                          nproc=min(8, os.cpu_count() or 1),
                          show_progress=False)
        loader.dataset.data_root = tmp
        amp_cfg.train_dataloader.dataset.data_root = tmp
        batches = load_batches(cfg, args.batches)
        prep_s = time.perf_counter() - start
    batch_size = len(batches[0]['inputs'])
    height, width = batches[0]['inputs'][0].shape[-2:]
    print(f'data: {2 * args.train_ids} generated {args.image_size}x'
          f'{args.image_size} hand-bone X-rays, {len(batches)} batches of '
          f'{batch_size} through the train pipeline of '
          f'{osp.basename(args.config)} ({prep_s:.1f} s), cycled on the '
          'host')

    print(f'\ntraining: {args.warmup} warm-up + {args.iters} timed '
          f'iterations, batch {batch_size}, {height}x{width} crops')
    train = {
        'fp32': train_speed(cfg, batches, args.warmup, args.iters),
        'amp': train_speed(amp_cfg, batches, args.warmup, args.iters),
    }
    print(f'{"variant":<9}{"iter/s":>8}{"ms/iter":>9}{"img/s":>8}'
          f'{"peak MiB":>10}{"last loss":>11}{"loss scale":>12}')
    for name, r in train.items():
        scale = '-' if r['scale'] is None else f'{r["scale"]:.0f}'
        print(f'{name:<9}{r["iter_s"]:>8.2f}{r["ms"]:>9.1f}'
              f'{r["iter_s"] * batch_size:>8.1f}{r["peak_mib"]:>10.0f}'
              f'{r["loss"]:>11.4f}{scale:>12}')
    fp32, amp = train['fp32'], train['amp']
    print(f'AMP / fp32: {amp["iter_s"] / fp32["iter_s"]:.2f}x iter/s, '
          f'{amp["peak_mib"] / fp32["peak_mib"]:.2f}x peak memory')
    if not all(math.isfinite(r['loss']) for r in train.values()):
        print('warning: a non-finite training loss (see the table)')

    n_win = len(slide_windows((args.size, args.size), (args.crop, args.crop),
                              (args.stride, args.stride)))
    slide = slide_speed(cfg, args)
    print(f'\nslide inference: {args.size}x{args.size} image, {n_win} '
          f'windows of {args.crop} (stride {args.stride}), '
          f'{slide["uniform"]["channels"]} sigmoid channels, fp32, no flip, '
          f'fastest of {args.repeat}')
    for blend, r in slide.items():
        print(f'{blend:<9}{r["ms"]:>9.1f} ms{r["peak_mib"]:>10.0f} MiB peak')
    ratio = slide['gaussian']['ms'] / slide['uniform']['ms']
    mem = slide['gaussian']['peak_mib'] / slide['uniform']['peak_mib']
    print(f'gaussian / uniform: {ratio:.3f}x (overhead '
          f'{100 * (ratio - 1):+.1f} %), peak memory {mem:.2f}x')


if __name__ == '__main__':
    main()
