# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Write a synthetic hand-bone X-ray dataset in the competition's layout.

Deterministic by seed. Convert it like the real data afterwards.

Example:
    python tools/misc/generate_hand_bone_data.py data/hand_bone_synth \
        --num-train-ids 20 --num-test-ids 5 --size 512
    python tools/dataset_converters/hand_bone.py data/hand_bone_synth
"""
import argparse
import os.path as osp
import sys

try:
    import mmseg_ext  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
from mmseg_ext.datasets.generators.hand_bone import generate_hand_bone
from mmseg_ext.engine.tool_cli import add_debug_arg, tool_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='dataset root to write')
    parser.add_argument(
        '--num-train-ids', type=int, default=20,
        help='labelled patients (two hands each)')
    parser.add_argument(
        '--num-test-ids', type=int, default=5,
        help='unlabelled test patients (two hands each)')
    parser.add_argument(
        '--size', type=int, default=512,
        help='image side in pixels (the competition uses 2048)')
    parser.add_argument('--seed', type=int, default=0)
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if args.num_train_ids < 0:
        parser.error(f'--num-train-ids should be >= 0, but got {args.num_train_ids}')
    if args.num_test_ids < 0:
        parser.error(f'--num-test-ids should be >= 0, but got {args.num_test_ids}')
    if args.size < 1:
        parser.error(f'--size should be >= 1, but got {args.size}')
    return args


@tool_main('tools/misc/generate_hand_bone_data.py')
def main(argv=None):
    args = parse_args(argv)
    info = generate_hand_bone(args.out_dir, args.num_train_ids,
                              args.num_test_ids, args.size, args.seed)
    print(f'wrote {len(info["train"])} labelled and {len(info["test"])} '
          f'test images of {args.size}x{args.size} to {args.out_dir}')


if __name__ == '__main__':
    main()
