# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Time of the dense-CRF post-processing per 2048x2048 hand-bone image.

:func:`mmseg_ext.utils.dense_crf.dense_crf_probability` (pydensecrf2,
:data:`DEFAULT_CRF_PARAMS`: 5 mean-field iterations, Gaussian + bilateral
kernels) on ``--classes`` class maps of a ``--size`` x ``--size`` image
(smooth random probabilities, a random grey image; the CRF's cost does not
depend on the values), single process. Prints the seconds per class and per
image for 29 classes (measured classes x 29 / ``--classes`` when fewer are
measured), against the baseline of no CRF (0 s).

Example::

    python benchmarks/bench_dense_crf.py --classes 2
"""
import argparse
import os.path as osp
import sys
import time

import cv2
import numpy as np

try:
    import mmseg_ext  # noqa: F401
except ImportError as e:
    if getattr(e, 'name', None) != 'mmseg_ext':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_ext  # noqa: F401

from mmseg_ext.utils.dense_crf import dense_crf_probability  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=2048)
    parser.add_argument('--classes', type=int, default=2,
                        help='classes measured (29 for a whole image)')
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = (rng.random((args.size, args.size)) * 255).astype(np.uint8)
    times = []
    for _ in range(args.classes):
        prob = cv2.GaussianBlur(
            rng.random((args.size, args.size)).astype(np.float32), (0, 0), 8)
        start = time.perf_counter()
        dense_crf_probability(prob, image)
        times.append(time.perf_counter() - start)
    per_class = float(np.median(times))
    print(f'dense CRF on {args.size}x{args.size}: {per_class:.2f} s per '
          f'class (median of {args.classes}); 29 classes: '
          f'{29 * per_class:.0f} s per image'
          + ('' if args.classes == 29 else ' (extrapolated)')
          + '; baseline without CRF: 0 s')


if __name__ == '__main__':
    main()
