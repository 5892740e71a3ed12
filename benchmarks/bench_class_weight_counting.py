# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Speed of per-class pixel counting: naive loader vs LabelMapPixelCounter.

- naive: each label through mmseg's ``LoadAnnotations`` transform, then
  ``np.bincount`` of the labels ``< C``, one process;
- ours: :func:`mmseg_ext.datasets.pixel_counters.count_dataset_pixels` with
  ``LabelMapPixelCounter`` (OpenCV decode, 256-bin histogram, lookup table)
  in ``--num-workers`` processes;
- cached: the same call again with the count cache (fingerprint only).

Checks that the counts are identical and prints Mpx/s and the speed ratio.

Example::

    python benchmarks/bench_class_weight_counting.py --num 200 --size 512
"""
import argparse
import os
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

import cv2
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations

from mmseg_ext.datasets.pixel_counters import count_dataset_pixels
from mmseg_ext.utils.io import imwrite_atomic

CLASSES = ('background', 'building', 'road', 'water', 'tree', 'car')


def generate_labels(folder: str, num: int, size: int, seed: int) -> None:
    """``num`` (size, size) uint8 PNG label maps of blobs, lines and 255."""
    rng = np.random.default_rng(seed)
    for i in range(num):
        label = np.zeros((size, size), np.uint8)
        for _ in range(int(rng.integers(5, 15))):
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            radius = int(rng.integers(size // 40, size // 6))
            cv2.circle(label, centre, radius, int(rng.integers(1, 5)), -1)
        for _ in range(int(rng.integers(1, 4))):
            p0 = tuple(int(v) for v in rng.integers(0, size, 2))
            p1 = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(label, p0, p1, 2, max(1, size // 64))
        for _ in range(int(rng.integers(0, 10))):  # small cars
            x, y = (int(v) for v in rng.integers(0, size - 8, 2))
            label[y:y + 6, x:x + 6] = 5
        label[:, :2] = 255  # an ignored border
        imwrite_atomic(label, osp.join(folder, f'{i:05d}.png'))


def build_dataset(ann_dir: str, reduce_zero_label: bool) -> BaseSegDataset:
    """A label-only mmseg dataset over ``ann_dir`` (images not needed)."""
    return BaseSegDataset(
        metainfo=dict(classes=CLASSES),
        data_root=ann_dir,
        data_prefix=dict(img_path='', seg_map_path=''),
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=reduce_zero_label,
        pipeline=[],
        serialize_data=False)


def naive_count(dataset) -> np.ndarray:
    load = LoadAnnotations()
    num_classes = len(dataset.metainfo['classes'])
    counts = np.zeros(num_classes, np.int64)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        info['seg_fields'] = []
        seg = load(info)['gt_seg_map']
        counts += np.bincount(seg[seg < num_classes], minlength=num_classes)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', help='folder of PNG label maps '
                        '(default: generate --num of them in a temp dir)')
    parser.add_argument('--num', type=int, default=200)
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--reduce-zero-label', action='store_true')
    parser.add_argument('--repeat', type=int, default=5,
                        help='best of N interleaved timings (default: 5)')
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        ann_dir = args.data_root
        if ann_dir is None:
            ann_dir = osp.join(tmp, 'labels')
            t = time.perf_counter()
            generate_labels(ann_dir, args.num, args.size, args.seed)
            print(f'generated {args.num} label maps of {args.size}x'
                  f'{args.size} in {time.perf_counter() - t:.1f} s')
        dataset = build_dataset(ann_dir, args.reduce_zero_label)
        dataset.full_init()
        mpx = sum(
            cv2.imread(dataset.get_data_info(i)['seg_map_path'],
                       cv2.IMREAD_UNCHANGED).size
            for i in range(len(dataset))) / 1e6
        for i in range(min(len(dataset), 50)):  # warm the page cache
            with open(dataset.get_data_info(i)['seg_map_path'], 'rb') as f:
                f.read()

        naive_t, ours_t, seq_t = [], [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            count_dataset_pixels(dataset, num_workers=1,
                                 show_progress=False, logger='silent')
            seq_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            naive = naive_count(dataset)
            naive_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            ours, _ = count_dataset_pixels(
                dataset, num_workers=args.num_workers, show_progress=False,
                logger='silent')
            ours_t.append(time.perf_counter() - t)
        if naive.tolist() != ours.tolist():
            raise AssertionError(f'counts differ: naive {naive.tolist()} vs '
                                 f'ours {ours.tolist()}')

        cache_dir = osp.join(tmp, 'cache')
        count_dataset_pixels(dataset, num_workers=args.num_workers,
                             cache_dir=cache_dir, show_progress=False,
                             logger='silent')
        t = time.perf_counter()
        cached, info = count_dataset_pixels(
            dataset, num_workers=args.num_workers, cache_dir=cache_dir,
            show_progress=False, logger='silent')
        cached_t = time.perf_counter() - t
        assert info['cache_hit'] and cached.tolist() == naive.tolist()

    n, o = min(naive_t), min(ours_t)
    print(f'{len(dataset)} label maps, {mpx:.1f} Mpx, cpus={os.cpu_count()}'
          f', load average {os.getloadavg()[0]:.2f} (other processes skew '
          f'the timings), reduce_zero_label={args.reduce_zero_label}; '
          'counts identical: '
          f'{naive.tolist()}')
    print(f'naive  (LoadAnnotations + np.bincount, 1 process): {n:7.3f} s  '
          f'{mpx / n:8.1f} Mpx/s')
    print(f'ours   (LabelMapPixelCounter, {args.num_workers} workers):      '
          f'{o:7.3f} s  {mpx / o:8.1f} Mpx/s')
    s = min(seq_t)
    print(f'ours   (LabelMapPixelCounter, 1 worker):       '
          f'{s:7.3f} s  {mpx / s:8.1f} Mpx/s')
    print(f'speed-up: {n / o:.2f}x   cached re-run: {cached_t * 1e3:.1f} ms')
    return dict(naive_s=n, ours_s=o, ours_1_worker_s=s, cached_s=cached_t,
                mpx=mpx)


if __name__ == '__main__':
    main()
