# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Which class-imbalance method rescues the rarest class? Same budget each.

Data: the project's demo generator (``tools/misc/generate_demo_data.py``;
4 classes, ``car`` about 0.1 % of the pixels at any size): 64 training and
16 validation images of ``--size`` (default 64, the demo's is 128: a
quarter of the CPU time; cars are 2 x 2 pixels there), seed 0, and a
separate test split of 32 images (seed 100) on which every variant is
scored, so the variant that tunes weights on validation is not scored on
what it tuned on.

Model and schedule: the demo config
``configs/unet/unet-s5-d16_fcn_1xb8-1k_synthimb-128x128.py`` (16-channel
UNet + FCN head, auxiliary head, SGD + poly) with ``--iters`` iterations
of ``--batch-size`` images, whole-image inference, the losses / hooks /
sampler / dataset of the variant swapped in, one Runner per (variant,
seed), ``randomness.seed`` = the seed.

Prints, per variant, the test mDice and the worst class's Dice (percent,
mean ± sd over the seeds) as a Markdown table, and writes
``{out}/efficacy.json`` and ``{out}/efficacy.png``.

Examples::

    python benchmarks/bench_imbalance_efficacy.py --iters 300 --seeds 0 1 2
    python benchmarks/bench_imbalance_efficacy.py --quick   # smoke run
"""
import argparse
import copy
import json
import os
import os.path as osp
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
from mmengine.runner import Runner

from mmseg_ext.datasets.generators import generate_synthetic_imbalance
from mmseg_ext.utils.io import dump_json_atomic
from mmseg_ext.utils.plotting import new_figure, save_figure

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE_CONFIG = osp.join(ROOT, 'configs', 'unet',
                       'unet-s5-d16_fcn_1xb8-1k_synthimb-128x128.py')

CE = [dict(type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True)]
FOCAL_DICE = [
    dict(type='SoftmaxFocalLoss', gamma=2.0, loss_weight=1.0),
    dict(type='SoftDiceLoss', mode='multiclass', loss_weight=1.0)
]
# name -> (decode losses, ClassWeightHook method or None, extras);
# copy_paste: RareClassCopyPaste(prob=0.5) (one object), copy_paste_x3:
# prob=1.0, max_objects=3.
VARIANTS = {
    'ce': (CE, None, ()),
    'ce + inverse_freq': (CE, 'inverse_freq', ()),
    'ce + sqrt_inv_freq': (CE, 'sqrt_inv_freq', ()),
    'ce + effective_num': (CE, 'effective_num', ()),
    'ce + median_freq': (CE, 'median_freq', ()),
    'focal + dice + sqrt_inv_freq': (FOCAL_DICE, 'sqrt_inv_freq', ()),
    'focal + dice + effective_num': (FOCAL_DICE, 'effective_num', ()),
    'focal + dice + effective_num + rcs': (FOCAL_DICE, 'effective_num',
                                           ('rcs', )),
    'ce + rcs': (CE, None, ('rcs', )),
    'ce + copy_paste': (CE, None, ('copy_paste', )),
    'ce + val_weights': (CE, None, ('val_weights', )),
    'ce + inverse_freq + rcs': (CE, 'inverse_freq', ('rcs', )),
    'ce + inverse_freq + rcs + copy_paste': (CE, 'inverse_freq',
                                             ('rcs', 'copy_paste')),
    'ce + inverse_freq + copy_paste': (CE, 'inverse_freq',
                                       ('copy_paste', )),
    'ce + effective_num + rcs': (CE, 'effective_num', ('rcs', )),
    'ce + effective_num + copy_paste': (CE, 'effective_num',
                                        ('copy_paste', )),
    'ce + effective_num + val_weights': (CE, 'effective_num',
                                         ('val_weights', )),
    'ce + effective_num + copy_paste + val_weights':
    (CE, 'effective_num', ('copy_paste', 'val_weights')),
    'ce + copy_paste_x3': (CE, None, ('copy_paste_x3', )),
    'ce + effective_num + copy_paste_x3': (CE, 'effective_num',
                                           ('copy_paste_x3', )),
    'all: ce + inverse_freq + rcs + copy_paste + val_weights':
    (CE, 'inverse_freq', ('rcs', 'copy_paste', 'val_weights')),
}
QUICK_VARIANTS = ['ce', 'ce + inverse_freq + rcs + copy_paste']


def make_data(root: str, size: int) -> dict:
    """Train/val (seed 0) and test (seed 100) splits; pixel counts."""
    counts = generate_synthetic_imbalance(
        osp.join(root, 'trainval'), 64, 16, size, seed=0)
    generate_synthetic_imbalance(
        osp.join(root, 'test'), 0, 32, size, seed=100)
    return counts


def build_cfg(name: str, seed: int, iters: int, data_root: str,
              work_dir: str, size: int = 64, batch_size: int = 4,
              beta: float = 0.99999) -> Config:
    """The demo config with the variant ``name`` swapped in."""
    losses, method, extras = VARIANTS[name]
    cfg = Config.fromfile(BASE_CONFIG)
    cfg.work_dir = work_dir
    cfg.model.data_preprocessor.size = (size, size)
    cfg.model.test_cfg = dict(mode='whole')
    cfg.train_dataloader.batch_size = batch_size
    cfg.randomness = dict(seed=seed)
    cfg.log_level = 'WARNING'
    cfg.model.decode_head.loss_decode = copy.deepcopy(losses)
    cfg.model.auxiliary_head.loss_decode = dict(
        type='CrossEntropyLoss', loss_weight=0.4, avg_non_ignore=True)
    cfg.custom_hooks = []
    if method is not None:
        cfg.custom_hooks.append(dict(type='ClassWeightHook', method=method,
                                     beta=beta, num_workers=0))
    cfg.param_scheduler = [
        dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=iters,
             by_epoch=False)
    ]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        by_epoch=False, interval=iters)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                         val_interval=iters + 1)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.data_root = data_root
    test = cfg.test_dataloader
    test.dataset.data_root = osp.join(osp.dirname(data_root), 'test')
    cfg.test_evaluator = dict(
        type='PerClassIoUMetric', iou_metrics=['mDice'],
        per_class_json=osp.join(work_dir, 'test_scores.json'))
    cfg.val_evaluator = dict(
        type='PerClassIoUMetric', iou_metrics=['mDice'],
        per_class_json=osp.join(work_dir, 'val_scores.json'))
    if 'rcs' in extras:
        cfg.train_dataloader.sampler = dict(type='RareClassSampler',
                                            num_workers=0)
    paste = dict(copy_paste=dict(prob=0.5),
                 copy_paste_x3=dict(prob=1.0, max_objects=3))
    for key, kwargs in paste.items():
        if key not in extras:
            continue
        inner = cfg.train_dataloader.dataset
        pipeline = inner.pipeline
        inner.pipeline = pipeline[:2]  # load image + annotations
        cfg.train_dataloader.dataset = dict(
            type='MultiImageMixDataset', dataset=inner,
            pipeline=[dict(type='RareClassCopyPaste', **kwargs)] +
            pipeline[2:])
    if 'val_weights' in extras:
        cfg.train_cfg.val_interval = max(1, iters // 5)
        cfg.custom_hooks.append(dict(type='ValidationClassWeightHook'))
    else:  # no validation at all (the loop would validate at the end)
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    return cfg


def run_one(name: str, seed: int, iters: int, data_root: str,
            work_dir: str, size: int, batch_size: int,
            beta: float = 0.99999) -> dict:
    """Train and test one (variant, seed); per-class test Dice."""
    cfg = build_cfg(name, seed, iters, data_root, work_dir, size,
                    batch_size, beta)
    cfg.experiment_name = f'efficacy_{abs(hash((name, seed)))}'
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    runner.test()
    seconds = time.perf_counter() - start
    with open(osp.join(work_dir, 'test_scores.json'), encoding='utf-8') as f:
        scores = json.load(f)
    dice = [0.0 if v is None else 100 * v for v in scores['dice']]
    MMLogger._instance_dict.clear()  # one log file per run, not all
    return dict(variant=name, seed=seed, dice=dice, seconds=seconds,
                classes=scores['classes'])


def summarise(runs: list, variants: list) -> list:
    rows = []
    for name in variants:
        mine = [r for r in runs if r['variant'] == name]
        if not mine:
            continue
        dice = np.array([r['dice'] for r in mine])  # (S, C)
        mdice, worst = dice.mean(1), dice.min(1)
        rows.append(dict(
            variant=name, seeds=len(mine), mdice=mdice.mean(),
            mdice_sd=mdice.std(ddof=1) if len(mine) > 1 else 0.0,
            worst=worst.mean(),
            worst_sd=worst.std(ddof=1) if len(mine) > 1 else 0.0,
            class_dice=dice.mean(0).tolist(),
            seconds=float(np.mean([r['seconds'] for r in mine]))))
    return rows


def markdown(rows: list, classes: list) -> str:
    head = ('| variant | mDice | worst class Dice | ' +
            ' | '.join(classes) + ' | s/run |')
    lines = [head, '|' + '---|' * 1 + '---:|' * (3 + len(classes))]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['mdice']:.1f} ± {r['mdice_sd']:.1f} | "
            f"{r['worst']:.1f} ± {r['worst_sd']:.1f} | " +
            ' | '.join(f'{v:.1f}' for v in r['class_dice']) +
            f" | {r['seconds']:.0f} |")
    return '\n'.join(lines)


def plot(rows: list, path: str) -> None:
    fig = new_figure((max(7.0, 0.8 * len(rows) + 3), 5.0))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r['mdice'] for r in rows], 0.4,
           yerr=[r['mdice_sd'] for r in rows], label='mDice',
           color='tab:blue')
    ax.bar(x + 0.2, [r['worst'] for r in rows], 0.4,
           yerr=[r['worst_sd'] for r in rows], label='worst class Dice',
           color='tab:orange')
    ax.set_xticks(x)
    ax.set_xticklabels([r['variant'] for r in rows], rotation=40,
                       ha='right', fontsize=7)
    ax.set_ylabel('test Dice (%)')
    ax.set_ylim(0, 100)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100, format='png')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--variants', nargs='+', default=None,
                        help=f'a subset of: {list(VARIANTS)}')
    parser.add_argument('--size', type=int, default=64,
                        help='image side (a multiple of 16; the demo '
                        'default is 128, 64 keeps a CPU run short)')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--beta', type=float, default=None,
                        help='effective_num beta (default 0.99999 at 64, '
                        'scaled to keep (1 - beta) x pixels per image: '
                        '1 - 2.5e-6 at 128)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads')
    parser.add_argument('--out', default='/tmp/bench_imbalance_efficacy',
                        help='data, work dirs and results')
    parser.add_argument('--from-json', nargs='+', default=None,
                        help='no training: summarise the runs of these '
                        'efficacy.json files (e.g. of runs split over '
                        'processes) into {out}/efficacy.json/.png')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 4 iterations, 1 seed, 2 variants')
    args = parser.parse_args(argv)
    if args.quick:
        args.iters, args.seeds, args.size = 2, [0], 32
        args.variants = args.variants or QUICK_VARIANTS
    args.variants = args.variants or list(VARIANTS)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f'unknown variants {unknown}; known: {list(VARIANTS)}')
    if args.beta is None:
        args.beta = 1 - 1e-5 * (64 / args.size)**2
    if args.iters < 1:
        parser.error(f'--iters should be >= 1, but got {args.iters}')
    return args


def main(argv=None) -> list:
    args = parse_args(argv)
    # One intra-op thread: several variants run side by side on few cores.
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    results_path = osp.join(args.out, 'efficacy.json')
    if args.from_json:
        runs, iters = [], set()
        for path in args.from_json:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
            runs += data['runs']
            iters.add(data['iters'])
        if len(iters) != 1:
            raise SystemExit(f'the files have different --iters: {iters}')
        args.iters = iters.pop()
        args.seeds = sorted({r['seed'] for r in runs})
        done = {r['variant'] for r in runs}
        args.variants = [v for v in VARIANTS if v in done]
        return report(runs, args, results_path)
    data_root = osp.join(args.out, 'data', 'trainval')
    counts = make_data(osp.join(args.out, 'data'), args.size)
    total = sum(counts.values())
    print('train pixel frequencies: ' + ', '.join(
        f'{k} {100 * v / total:.2f} %' for k, v in counts.items()))
    runs = []
    for name in args.variants:
        for seed in args.seeds:
            slug = ''.join(c if c.isalnum() else '_' for c in name)
            work_dir = osp.join(args.out, 'work', f'{slug}_s{seed}')
            run = run_one(name, seed, args.iters, data_root, work_dir,
                          args.size, args.batch_size, args.beta)
            runs.append(run)
            print(f"{name} seed {seed}: mDice {np.mean(run['dice']):.1f}, "
                  f"per class {[round(v, 1) for v in run['dice']]} "
                  f"({run['seconds']:.0f} s)", flush=True)
            dump_json_atomic(dict(iters=args.iters, runs=runs),
                             results_path)
    return report(runs, args, results_path)


def report(runs: list, args, results_path: str) -> list:
    """Print the Markdown table; write the JSON and the PNG."""
    rows = summarise(runs, args.variants)
    classes = runs[0]['classes']
    print(f'\n{args.iters} iterations, seeds {args.seeds}, test Dice (%) '
          'mean ± sd over seeds:\n')
    print(markdown(rows, classes))
    dump_json_atomic(dict(iters=args.iters, seeds=args.seeds, runs=runs,
                          summary=rows), results_path)
    plot(rows, osp.join(args.out, 'efficacy.png'))
    print(f'\nwritten: {results_path}, {osp.join(args.out, "efficacy.png")}')
    return rows


if __name__ == '__main__':
    main()
