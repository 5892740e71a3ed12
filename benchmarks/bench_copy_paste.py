# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Cost of RareClassCopyPaste per sample: pipeline time with vs without.

- baseline: ``SyntheticImbalanceDataset`` with ``LoadImageFromFile``,
  ``LoadAnnotations``, ``RandomFlip``, ``PackSegInputs``;
- copy-paste: the same dataset in ``MultiImageMixDataset`` with
  ``RareClassCopyPaste(prob=P)`` first (one more sample loaded per paste).

Prints ms per sample and the ratio against the baseline for each ``prob``.

Example::

    python benchmarks/bench_copy_paste.py --num 64 --size 128 --repeats 3
"""
import argparse
import os.path as osp
import sys
import tempfile
import time

import numpy as np

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from mmseg_ext.datasets.generators import generate_synthetic_imbalance

TAIL = [dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]


def time_dataset(dataset, repeats: int) -> float:
    """Best-of-``repeats`` seconds per sample over the whole dataset."""
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        best = min(best, (time.perf_counter() - start) / len(dataset))
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num', type=int, default=64)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--probs', type=float, nargs='+',
                        default=[0.5, 1.0])
    args = parser.parse_args(argv)
    init_default_scope('mmseg')
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as root:
        generate_synthetic_imbalance(root, args.num, 0, args.size, 0)
        load = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
        inner = dict(
            type='SyntheticImbalanceDataset', data_root=root,
            data_prefix=dict(img_path='img_dir/train',
                             seg_map_path='ann_dir/train'))
        base = DATASETS.build(dict(inner, pipeline=load + TAIL))
        time_dataset(base, 1)  # warm-up: imports, file cache
        t_base = time_dataset(base, args.repeats)
        print(f'{args.num} samples of {args.size}x{args.size}, best of '
              f'{args.repeats}')
        print('| pipeline | ms/sample | ratio vs baseline |')
        print('|---|---:|---:|')
        print(f'| baseline (no copy-paste) | {1e3 * t_base:.2f} | 1.00 |')
        for prob in args.probs:
            mixed = DATASETS.build(dict(
                type='MultiImageMixDataset', dataset=dict(inner,
                                                          pipeline=load),
                pipeline=[dict(type='RareClassCopyPaste', prob=prob,
                               work_dir=root)] + TAIL))
            mixed[0]  # build the bank (counted once, then cached)
            t = time_dataset(mixed, args.repeats)
            print(f'| RareClassCopyPaste(prob={prob:g}) | {1e3 * t:.2f} | '
                  f'{t / t_base:.2f} |')


if __name__ == '__main__':
    main()
