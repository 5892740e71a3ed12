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


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder (mmseg layout)')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    counts = generate_synthetic_imbalance(args.out_dir, args.num_train,
                                          args.num_val, args.size, args.seed)
    total = sum(counts.values())
    print(f'wrote {args.num_train} train + {args.num_val} val samples of '
          f'{args.size}x{args.size} to {args.out_dir}')
    for name, n in counts.items():
        print(f'  {name:<12s}{n:>10d} px  {100 * n / total:6.2f} %')


if __name__ == '__main__':
    main()
