# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Compare training runs with each other and with MMSeg's model zoo.

Reads each WORK_DIR's config, mmengine ``vis_data/scalars.json`` (or log),
per-class JSONs / per-case CSVs (or the per-class table of the log) and
writes ``summary.md`` (README-ready tables), ``summary.csv``,
``summary.json``, ``per_class.csv``, ``config_diff.csv``, ``paired.csv``,
``curves.png``, ``per_class.png`` and ``cost.png`` to ``--out``. A run that
cannot be read is named with what is missing, listed as skipped, and the
others are still compared. See ``mmseg_ext/apis/compare_runs.py``.

Examples:
    python tools/analysis_tools/compare_runs.py work_dirs/a work_dirs/b \\
        --out work_dirs/compare --names segformer-b0 upernet-r50 \\
        --metric mDice --zoo segformer_mit-b0_8xb2-160k_ade20k-512x512
    # also images/s and peak memory on this machine
    python tools/analysis_tools/compare_runs.py work_dirs/* --out cmp --speed
"""
import argparse
import os.path as osp
import sys
import warnings

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    # Run from a checkout without `pip install -e .`.
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import mmseg_ext  # noqa: F401

from mmseg_ext.apis.compare_runs import compare_runs
from mmseg_ext.engine.tool_cli import add_debug_arg, note_partial, tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR',
                        help='work dirs of the runs')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--metric', help='validation metric key (default: the first of '
        'mDice, mIoU, building/score, score, dice that every run has)')
    parser.add_argument(
        '--rule', choices=('greater', 'less'),
        help='whether a larger metric is better (default: from the key, '
        'less for loss / hd95)')
    parser.add_argument('--names', nargs='+',
                        help='display names, one per work dir')
    parser.add_argument(
        '--zoo', nargs='+', default=[], metavar='CONFIG_NAME',
        help='MMSeg zoo models (metafile.yaml names) shown per dataset')
    parser.add_argument(
        '--speed', action='store_true',
        help='measure inference images/s and peak memory on this machine')
    parser.add_argument('--device', help='device of --speed (default: cuda '
                        'if available, else cpu)')
    parser.add_argument('--speed-iters', type=int, default=10,
                        help='timed images per run (default 10)')
    parser.add_argument('--no-complexity', action='store_true',
                        help='do not build the models for params / FLOPs')
    parser.add_argument('--bootstrap', type=int, default=10000,
                        help='bootstrap resamples (default 10000)')
    parser.add_argument('--seed', type=int, default=0,
                        help='bootstrap seed (default 0)')
    parser.add_argument(
        '--cost', choices=('auto', 'flops', 'speed'), default='auto',
        help='x axis of cost.png (default auto: images/s with --speed, '
        'else FLOPs)')
    parser.add_argument('--no-progress', action='store_true',
                        help='hide the progress bar')
    parser.add_argument('--no-plots', action='store_true',
                        help='write the tables only')
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.names is not None and len(args.names) != len(args.work_dirs):
        parser.error(f'--names should give one name per WORK_DIR '
                     f'({len(args.work_dirs)}), but got {len(args.names)}')
    if args.speed_iters < 1:
        parser.error(f'--speed-iters should be >= 1, but got '
                     f'{args.speed_iters}')
    if args.cost == 'speed' and not args.speed:
        parser.error('--cost speed needs --speed')
    if args.bootstrap < 1:
        parser.error(f'--bootstrap should be >= 1, but got {args.bootstrap}')
    return args


@tool_main('tools/analysis_tools/compare_runs.py')
def main(argv=None):
    args = parse_args(argv)
    note_partial(f'files already in {args.out} may be from an earlier run')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = compare_runs(
            args.work_dirs, args.out, names=args.names, metric=args.metric,
            rule=args.rule, zoo=args.zoo, speed=args.speed,
            speed_device=args.device, speed_iters=args.speed_iters,
            complexity=not args.no_complexity, num_samples=args.bootstrap,
            seed=args.seed, plot=not args.no_plots, cost=args.cost,
            show_progress=not args.no_progress)
    note_partial(None)
    for w in caught:  # ours only: the model builders' deprecations are noise
        if 'mmseg_ext' in str(w.filename):
            print(f'warning: {w.message}', file=sys.stderr)
    print(f'compared {len(result["runs"])} runs on {result["metric"]} '
          f'({len(result["skipped"])} skipped parts); wrote '
          f'{result["files"]["summary.md"]} and '
          f'{len(result["files"]) - 1} more files in {args.out}')


if __name__ == '__main__':
    main()
