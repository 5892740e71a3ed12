# Copyright (c) mmseg_ext contributors. All rights reserved.
"""optimizer.step() with mmengine's default vs the merged-groups constructor.

The model is the hand-bone SegFormer MiT-B0
(``configs/segformer/segformer_mit-b0_1xb8-20k_handbone-512x512.py``, random
init, no download) and the optimiser wrapper its config's: AdamW with the
``paramwise_cfg`` of mmseg's SegFormer configs (no decay on norms and
``pos_block``, 10x lr on the head). ``DefaultOptimWrapperConstructor`` makes
one param group per parameter from it; ``MergedGroupsOptimWrapperConstructor``
(the config's) merges the groups with equal options. Both optimisers get
the same random gradients (``optimizer.step`` does the same work whatever
their values), ``--warmup`` untimed steps create the AdamW state, then the
mean of ``--steps`` timed steps is taken, the best of ``--repeat`` rounds,
the two constructors interleaved round by round.

Implementations: on the CPU torch's default (one tensor at a time, since the
``foreach`` kernels are for CUDA) and ``foreach=True``; on CUDA (when there
is one) torch's default (``foreach``) and ``fused=True``.

Prints the number of groups, ms per step of each constructor and the
default / merged ratio; no timing is asserted.

Example::

    python benchmarks/bench_optim_step.py
    python benchmarks/bench_optim_step.py --device cpu --steps 20
"""
import argparse
import copy
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'segformer',
                          'segformer_mit-b0_1xb8-20k_handbone-512x512.py')
CONSTRUCTORS = ('DefaultOptimWrapperConstructor',
                'MergedGroupsOptimWrapperConstructor')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='training config with a paramwise_cfg')
    parser.add_argument('--device', choices=['all', 'cpu', 'cuda'],
                        default='all',
                        help='all: the CPU, and CUDA when available')
    parser.add_argument('--steps', type=int, default=50,
                        help='timed optimizer steps per round')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed steps first (AdamW state, caches)')
    parser.add_argument('--repeat', type=int, default=3,
                        help='rounds; the fastest is reported')
    args = parser.parse_args()
    if min(args.steps, args.warmup, args.repeat) < 1:
        parser.error('--steps, --warmup and --repeat should be >= 1')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch.cuda.is_available() is False')
    return args


def build_model(cfg, device):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pretrained = None
    if 'init_cfg' in model_cfg.backbone:
        model_cfg.backbone.init_cfg = None
    torch.manual_seed(0)
    return MODELS.build(model_cfg).to(device)


def build_optimizer(model, cfg, constructor, impl):
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.constructor = constructor
    optim_cfg.optimizer.update(impl)
    return build_optim_wrapper(model, optim_cfg).optimizer


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def time_steps(optimizer, steps, device):
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    sync(device)
    return (time.perf_counter() - start) / steps


def main():
    args = parse_args()
    init_default_scope('mmseg')
    # the constructors log every parameter's options at INFO
    MMLogger.get_current_instance().setLevel('WARNING')
    cfg = Config.fromfile(args.config)
    devices = ['cpu', 'cuda'] if args.device == 'all' else [args.device]
    if not torch.cuda.is_available() and 'cuda' in devices:
        devices.remove('cuda')
        print('no CUDA device: CPU only')
    print(f'config: {osp.relpath(args.config, REPO)}')
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU '
          f'threads; mean of {args.steps} steps, best of {args.repeat} '
          'rounds')
    header = (f'{"device":<6} {"implementation":<15} {"groups":>8} '
              f'{"default ms":>11} {"merged ms":>10} {"default/merged":>15}')
    print(header)
    print('-' * len(header))
    for device in devices:
        impls = ([('single-tensor', {}), ('foreach', dict(foreach=True))]
                 if device == 'cpu' else
                 [('foreach', {}), ('fused', dict(fused=True))])
        for name, impl in impls:
            model = build_model(cfg, device)
            params = [p for p in model.parameters() if p.requires_grad]
            generator = torch.Generator(device).manual_seed(0)
            for p in params:
                p.grad = torch.randn(p.shape, device=device,
                                     generator=generator) * 1e-3
            optimizers = [build_optimizer(model, cfg, c, impl)
                          for c in CONSTRUCTORS]
            groups = [len(o.param_groups) for o in optimizers]
            for optimizer in optimizers:
                for _ in range(args.warmup):
                    optimizer.step()
            best = [float('inf')] * len(optimizers)
            for _ in range(args.repeat):
                for i, optimizer in enumerate(optimizers):
                    best[i] = min(best[i],
                                  time_steps(optimizer, args.steps, device))
            default, merged = best
            print(f'{device:<6} {name:<15} {groups[0]:>4}/{groups[1]:<3} '
                  f'{default * 1e3:>11.2f} {merged * 1e3:>10.2f} '
                  f'{default / merged:>14.2f}x')
    print(f'model: SegFormer MiT-B0, {sum(p.numel() for p in params):,} '
          f'parameters in {len(params)} tensors')


if __name__ == '__main__':
    main()
