# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Write the synthetic building dataset (competition CSV/PNG layout).

Example:
    python tools/misc/generate_building_data.py data/building \\
        --num-train 200 --num-test 60
"""
import argparse
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
from mmseg_ext.datasets.generators.building import generate_buildings
from mmseg_ext.engine.tool_cli import add_debug_arg, tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-test', type=int, default=60)
    parser.add_argument('--train-size', type=int, default=1024)
    parser.add_argument('--test-size', type=int, default=224)
    parser.add_argument(
        '--test-scale', type=float, default=0.5,
        help='test pixels per training pixel (coarser test tiles)')
    parser.add_argument('--seed', type=int, default=0)
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.num_train < 0:
        parser.error(f'--num-train should be >= 0, but got {args.num_train}')
    if args.num_test < 0:
        parser.error(f'--num-test should be >= 0, but got {args.num_test}')
    if args.train_size < 1:
        parser.error(f'--train-size should be >= 1, but got {args.train_size}')
    if args.test_size < 1:
        parser.error(f'--test-size should be >= 1, but got {args.test_size}')
    return args


@tool_main('tools/misc/generate_building_data.py')
def main(argv=None):
    args = parse_args(argv)
    stats = generate_buildings(args.out_dir, args.num_train, args.num_test,
                               args.train_size, args.test_size,
                               args.test_scale, args.seed)
    print(f'wrote {args.num_train} train tiles ({args.train_size}^2) and '
          f'{args.num_test} test tiles ({args.test_size}^2) to '
          f'{args.out_dir}')
    for split, s in stats.items():
        if not s.get('num'):
            continue
        print(f'  {split:<6s} mean foreground {100 * s["mean_fg_ratio"]:.2f}'
              f' %, {100 * s["frac_5_to_10pct"]:.0f} % of tiles in 5-10 %, '
              f'{100 * s["frac_under_1pct"]:.0f} % under 1 %, '
              f'{s["num_empty"]} empty')


if __name__ == '__main__':
    main()
