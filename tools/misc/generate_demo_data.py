# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Write the class-imbalanced demo dataset (deterministic by seed).

Example:
    python tools/misc/generate_demo_data.py data/synthetic_imbalance
"""
import argparse
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
from mmseg_ext.datasets.generators import generate_synthetic_imbalance
from mmseg_ext.engine.tool_cli import add_debug_arg, tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder (mmseg layout)')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.num_train < 0:
        parser.error(f'--num-train should be >= 0, but got {args.num_train}')
    if args.num_val < 0:
        parser.error(f'--num-val should be >= 0, but got {args.num_val}')
    if args.size < 1:
        parser.error(f'--size should be >= 1, but got {args.size}')
    return args


@tool_main('tools/misc/generate_demo_data.py')
def main(argv=None):
    args = parse_args(argv)
    counts = generate_synthetic_imbalance(args.out_dir, args.num_train,
                                          args.num_val, args.size, args.seed)
    total = sum(counts.values())
    print(f'wrote {args.num_train} train + {args.num_val} val samples of '
          f'{args.size}x{args.size} to {args.out_dir}')
    for name, n in counts.items():
        print(f'  {name:<12s}{n:>10d} px  {100 * n / total:6.2f} %')


if __name__ == '__main__':
    main()
