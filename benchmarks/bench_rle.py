# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Speed of mmseg_ext's RLE codec against the competitions' reference code.

References (verbatim from the competitions' starter code):

- encoder: ``np.concatenate([[0], m.flatten(), [0]])`` ->
  ``np.where(p[1:] != p[:-1])[0] + 1`` -> ``runs[1::2] -= runs[::2]`` ->
  ``' '.join(str(x) for x in runs)``;
- loop decoder: split, ``np.asarray(..., dtype=int)`` for starts and
  lengths, then ``img[lo:hi] = 1`` for each run.

Cases:

1. one 2048 x 2048 hand-bone-like mask (one bone of a 29-class X-ray) and
   one dense noisy mask (50 % random pixels): encode and decode;
2. decoding 7,140 1024 x 1024 building masks (the training set) from RLE;
3. encoding 60,640 224 x 224 masks (test-scale building predictions);
4. counting building pixels straight from the RLE strings
   (:func:`rle_area`, what :class:`RLEPixelCounter` does) against decoding
   then counting;
5. writing a 288 x 29 = 8,352-row submission CSV from 2048 x 2048 masks.

Single masks: the best of ``--repeat`` runs. Bulk cases cycle over a pool
of distinct generated masks; the reference is timed on a fraction
(``--ref-fraction``) of the items and extrapolated linearly (said in the
output), interleaved block by block with ours so that a busy machine slows
both alike. Every result is checked against the reference.

Example::

    python benchmarks/bench_rle.py            # full sizes
    python benchmarks/bench_rle.py --quick    # 10 % of the bulk sizes
"""
import argparse
import csv
import io
import os.path as osp
import sys
import tempfile
import time

import cv2
import numpy as np

try:
    from mmseg_ext.utils.rle import rle_area, rle_decode, rle_encode
except ImportError:
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmseg_ext.utils.rle import rle_area, rle_decode, rle_encode
from mmseg_ext.datasets.generators.building import (_ratio_target,
                                                    _render_scene)
from mmseg_ext.evaluation.metrics.building_dice_metric import \
    write_submission_csv


def ref_encode(mask):
    pixels = np.concatenate([[0], mask.flatten(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return ' '.join(str(x) for x in runs)


def ref_decode(rle, shape):
    s = rle.split()
    starts, lengths = [
        np.asarray(x, dtype=int) for x in (s[0:][::2], s[1:][::2])
    ]
    starts -= 1
    ends = starts + lengths
    img = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for lo, hi in zip(starts, ends):
        img[lo:hi] = 1
    return img.reshape(shape)


def hand_bone_masks(size=2048, seed=0):
    """29 bone-like masks of a hand X-ray: phalanges, metacarpals, carpals,
    radius and ulna as rotated ellipses and polygons at their places."""
    rng = np.random.default_rng(seed)
    s = size / 2048
    masks = []

    def ellipse(cx, cy, ax, ay, angle):
        m = np.zeros((size, size), np.uint8)
        cv2.ellipse(m, (int(cx * s), int(cy * s)),
                    (max(2, int(ax * s)), max(2, int(ay * s))), angle, 0, 360,
                    1, -1)
        return m

    for finger in range(5):  # 14 phalanges + 5 metacarpals = 19
        x = 500 + finger * 250
        angle = (finger - 2) * 8
        bones = 2 if finger == 0 else 3
        y = 300 if finger else 700
        for b in range(bones):
            length = 90 + 30 * (bones - b)
            masks.append(ellipse(x, y, 28 + rng.integers(-4, 5), length,
                                 angle))
            y += 2 * length + 20
        masks.append(ellipse(x - 30 * (finger - 2), 1150, 35, 200, angle))
    for k in range(8):  # carpals
        cx = 650 + (k % 4) * 130
        cy = 1450 + (k // 4) * 130
        m = np.zeros((size, size), np.uint8)
        pts = rng.normal(0, 45, (7, 2)) + [cx, cy]
        hull = cv2.convexHull((pts * s).astype(np.int32))
        cv2.fillPoly(m, [hull], 1)
        masks.append(m)
    masks.append(ellipse(880, 1850, 120, 400, 5))  # radius
    masks.append(ellipse(1200, 1850, 80, 380, -5))  # ulna
    return masks[:29]


def consume(iterable):
    for _ in iterable:
        pass


def best_of(fn, repeat):
    best = float('inf')
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def interleaved(items, ours_fn, ref_fn, frac):
    """Total time of ``ours_fn`` over ``items`` and the extrapolated total
    of ``ref_fn``, timed on one item of every ``1 / frac`` block, each
    block right after ours ran on it."""
    step = max(1, int(round(1 / frac)))
    t_ours = t_ref = 0.0
    n_ref = 0
    for start in range(0, len(items), step):
        block = items[start:start + step]
        t = time.perf_counter()
        for item in block:
            ours_fn(item)
        t_ours += time.perf_counter() - t
        t = time.perf_counter()
        ref_fn(block[0])
        t_ref += time.perf_counter() - t
        n_ref += 1
    return t_ours, t_ref * len(items) / n_ref, n_ref


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def row(name, ours, ref, note=''):
    print(f'{name:<58s}{ref * 1e3:>11.2f} ms{ours * 1e3:>11.2f} ms'
          f'{ref / ours:>8.1f}x  {note}')


def building_pool(size, num, scale=1.0, seed=0):
    """``num`` realistic building masks (the generator's scenes)."""
    masks = []
    scene = int(round(size / scale))
    for i in range(num):
        rng = np.random.default_rng([seed, 7, i])
        _, mask = _render_scene(rng, scene, 1.0, _ratio_target(rng))
        if scene != size:
            mask = (cv2.resize(mask.astype(np.float32), (size, size),
                               interpolation=cv2.INTER_AREA) >= 0.5).astype(
                                   np.uint8)
        masks.append(mask)
    return masks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='10 %% of the bulk sizes')
    parser.add_argument('--repeat', type=int, default=7)
    parser.add_argument('--ref-fraction', type=float, default=0.1,
                        help='fraction of bulk items timed with the slow '
                        'reference (extrapolated)')
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    frac = args.ref_fraction
    print(f'{"case":<58s}{"reference":>14s}{"mmseg_ext":>14s}{"ratio":>9s}')

    # 1. single 2048 x 2048 masks.
    bones = hand_bone_masks()
    bone = bones[-2]  # the radius: a large realistic per-class mask
    small_bone = bones[4]  # a phalanx
    rng = np.random.default_rng(0)
    noise = (rng.random((2048, 2048)) < 0.5).astype(np.uint8)
    for name, mask in (('hand-bone radius', bone),
                       ('hand-bone phalanx', small_bone),
                       ('dense noise 50 %', noise)):
        ref = ref_encode(mask)
        assert rle_encode(mask) == ref
        assert np.array_equal(rle_decode(ref, mask.shape),
                              ref_decode(ref, mask.shape))
        rep = args.repeat if mask is not noise else 3
        runs = len(ref.split()) // 2
        row(f'encode 2048^2 {name} ({runs} runs)',
            best_of(lambda: rle_encode(mask), rep),
            best_of(lambda: ref_encode(mask), rep))
        row(f'decode 2048^2 {name}',
            best_of(lambda: rle_decode(ref, mask.shape), rep),
            best_of(lambda: ref_decode(ref, mask.shape), rep))

    # 2. decode the 7,140 1024 x 1024 training masks.
    num = int(7140 * scale)
    pool = [rle_encode(m) for m in building_pool(1024, 60, seed=1)]
    items = [pool[i % len(pool)] for i in range(num)]
    # Each mask is used and dropped, as in a data loader (keeping 7,140
    # masks of 1 MB alive would time page faults, not decoding).
    for r in pool:
        assert np.array_equal(rle_decode(r, (1024, 1024)),
                              ref_decode(r, (1024, 1024)))
    ours, ref, n_ref = interleaved(items,
                                   lambda r: rle_decode(r, (1024, 1024)),
                                   lambda r: ref_decode(r, (1024, 1024)),
                                   frac)
    runs = np.mean([len(r.split()) // 2 for r in pool])
    row(f'decode {num} x 1024^2 building masks ({runs:.0f} runs avg)', ours,
        ref, f'(reference: {n_ref} timed, extrapolated)')

    # 3. encode 60,640 224 x 224 test-scale masks.
    num = int(60640 * scale)
    masks = building_pool(224, 200, scale=0.5, seed=2)
    items = [masks[i % len(masks)] for i in range(num)]
    for m in masks:
        assert rle_encode(m) == ref_encode(m)
    ours, ref, n_ref = interleaved(items, rle_encode, ref_encode, frac)
    empty = sum(not m.any() for m in masks) / len(masks)
    row(f'encode {num} x 224^2 test-scale masks ({100 * empty:.0f} % '
        'empty)', ours, ref, f'(reference: {n_ref} timed, extrapolated)')

    # 4. count building pixels straight from RLE vs decode-then-count.
    num = int(7140 * scale)
    items = [pool[i % len(pool)] for i in range(num)]
    size = 1024 * 1024
    for r in pool:
        assert rle_area(r, size) == int(ref_decode(r, (1024, 1024)).sum())
    ours, ref, n_ref = interleaved(
        items, lambda r: rle_area(r, size),
        lambda r: int(ref_decode(r, (1024, 1024)).sum()), frac)
    row(f'count fg px of {num} RLEs vs reference decode+count', ours, ref,
        f'(reference: {n_ref} timed, extrapolated)')
    ours, ours_dec, _ = interleaved(
        items, lambda r: rle_area(r, size),
        lambda r: int(rle_decode(r, (1024, 1024)).sum()), 1.0)
    row(f'count fg px of {num} RLEs vs our decode+count', ours, ours_dec)

    # 5. a 288 x 29 = 8,352-row submission CSV from 2048 x 2048 masks.
    num_images = max(1, int(288 * scale))
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'submission.csv')

        def ours_fn():
            rows = [(f'image{i:03d}_bone{c:02d}', rle_encode(m))
                    for i in range(num_images) for c, m in enumerate(bones)]
            write_submission_csv(path, rows, header=('image_class', 'rle'))

        def ref_fn(n):
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(['image_class', 'rle'])
            for i in range(n):
                for c, m in enumerate(bones):
                    writer.writerow([f'image{i:03d}_bone{c:02d}',
                                     ref_encode(m) or '-1'])
            with open(osp.join(tmp, 'ref.csv'), 'w', newline='') as f:
                f.write(buf.getvalue())

        ours, _ = timed(ours_fn)
        n_ref = max(1, int(num_images * frac))
        ref, _ = timed(lambda: ref_fn(n_ref))
        row(f'write {num_images * 29}-row submission from 2048^2 masks', ours,
            ref * num_images / n_ref,
            f'(reference: {n_ref * 29} rows timed, extrapolated)')


if __name__ == '__main__':
    main()
