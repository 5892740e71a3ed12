# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTS slice-cache conversion speed: cases per second on 1 and N
processes, against just reading the NIfTI files.

Generates ``--cases`` synthetic cases of the real size (240 x 240 x 155,
``.nii.gz`` as released; :func:`generate_brats`) once, then times:

- baseline: :func:`read_brats_case` on each case (nibabel decoding of the 4
  modalities + seg, with the reader's checks), one process;
- ``convert_brats(force=True)`` on 1 process and on ``--nproc`` processes
  (read + z-score + regions + packing + two ``.npy`` writes + index).

Prints cases/s and the ratios: conversion / reading (1 process; how much
the conversion adds to the unavoidable decoding) and N-process / 1-process
(the parallel speed-up; bounded by the free cores of the machine).

Example::

    python benchmarks/bench_brats_convert.py --cases 6 --nproc 2
"""
import argparse
import os
import os.path as osp
import tempfile
import time

from mmseg_ext.datasets.brats import (convert_brats, find_brats_cases,
                                      read_brats_case)
from mmseg_ext.datasets.generators.brats import generate_brats

SHAPE = (240, 240, 155)


def _best(fn, repeats):
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cases', type=int, default=6)
    parser.add_argument('--nproc', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=2,
                        help='best of this many runs')
    parser.add_argument('--root', default=None,
                        help='folder for the generated cases (default: a '
                        'temporary one)')
    args = parser.parse_args()
    tmp = None
    root = args.root
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix='bench_brats_')
        root = tmp.name
    if not osp.isdir(osp.join(root, 'BraTS20_Training_001')):
        start = time.perf_counter()
        generate_brats(root, args.cases, SHAPE, 'brats2020', seed=0,
                       ext='.nii.gz')
        print(f'generated {args.cases} cases of {SHAPE} in '
              f'{time.perf_counter() - start:.1f} s')
    cases = find_brats_cases(root)
    n = len(cases)
    out = osp.join(root, 'brats_slices')

    def read_all():
        for case in cases:
            read_brats_case(case)

    def convert(nproc):
        convert_brats(root, out, num_folds=2, nproc=nproc, force=True,
                      show_progress=False, logger='silent')

    t_read = _best(read_all, args.repeats)
    t_one = _best(lambda: convert(1), args.repeats)
    t_par = _best(lambda: convert(args.nproc), args.repeats)
    size = sum(os.path.getsize(p) for c in cases for p in c.images + (
        c.seg, ))
    cache = sum(
        os.path.getsize(osp.join(out, 'cases', c.case_id, f))
        for c in cases for f in ('image.npy', 'label.npy'))
    print(f'{n} cases, {SHAPE}, {size / n / 2**20:.1f} MiB of .nii.gz and '
          f'{cache / n / 2**20:.1f} MiB of cache per case; '
          f'{os.cpu_count()} CPUs')
    print('| step | cases/s | ratio |')
    print('|---|---|---|')
    print(f'| read NIfTI only (nibabel, 1 proc; baseline) | {n / t_read:.2f} '
          '| 1.00 |')
    print(f'| convert, 1 process | {n / t_one:.2f} | '
          f'{t_read / t_one:.2f} of reading |')
    print(f'| convert, {args.nproc} processes | {n / t_par:.2f} | '
          f'{t_one / t_par:.2f} x 1 process |')
    if tmp is not None:
        tmp.cleanup()


if __name__ == '__main__':
    main()
