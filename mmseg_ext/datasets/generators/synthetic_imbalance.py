# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Deterministic generator of a small class-imbalanced dataset.

The layout is mmseg's folder layout, read by
:class:`mmseg_ext.datasets.SyntheticImbalanceDataset`::

    {root}/img_dir/{train,val}/{name}.png   # (H, W, 3) uint8 BGR image
    {root}/ann_dir/{train,val}/{name}.png   # (H, W) uint8 label map

Classes: ``background`` (most pixels), ``field`` (large blobs),
``road`` (thin lines, a few percent) and ``car`` (tiny squares, well under
1 % of the pixels). Each class has its own colour and texture so a small
model learns it in a few hundred CPU iterations.
"""
import os.path as osp
from typing import Dict

import cv2
import numpy as np

from mmseg_ext.utils.io import imwrite_atomic

CLASSES = ('background', 'field', 'road', 'car')
PALETTE = [[0, 0, 0], [34, 139, 34], [128, 128, 128], [220, 20, 60]]
# BGR base colours of the rendered classes.
_COLOURS = np.array([[90, 110, 120], [60, 150, 70], [150, 150, 150],
                     [40, 40, 210]], dtype=np.float32)


def _render_sample(rng: np.random.Generator, size: int):
    label = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, 3)):  # large fields
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(size // 6, size // 3, 2))
        cv2.ellipse(label, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    1, -1)
    for _ in range(rng.integers(1, 3)):  # roads: thin lines across
        p0 = tuple(int(v) for v in rng.integers(0, size, 2))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(label, p0, p1, 2, max(1, size // 40))
    car = max(1, size // 32)
    for _ in range(rng.integers(0, 3)):  # tiny cars
        x, y = (int(v) for v in rng.integers(0, size - car, 2))
        label[y:y + car, x:x + car] = 3
    img = _COLOURS[label] + rng.normal(0, 12, (size, size, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, label


def generate_synthetic_imbalance(root: str,
                                 num_train: int = 40,
                                 num_val: int = 10,
                                 size: int = 64,
                                 seed: int = 0) -> Dict[str, int]:
    """Write the dataset under ``root``; same seed, same bytes.

    Args:
        root (str): Output folder (created).
        num_train (int): Training samples. Defaults to 40.
        num_val (int): Validation samples. Defaults to 10.
        size (int): Side of the square images. Defaults to 64.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: Pixel count per class name over the training split.
    """
    if size < 32:
        raise ValueError(f'`size` should be >= 32, but got {size}')
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(CLASSES), np.int64)
    for split, num in (('train', num_train), ('val', num_val)):
        for i in range(num):
            img, label = _render_sample(rng, size)
            name = f'{split}_{i:04d}.png'
            imwrite_atomic(img, osp.join(root, 'img_dir', split, name))
            imwrite_atomic(label, osp.join(root, 'ann_dir', split, name))
            if split == 'train':
                counts += np.bincount(label.ravel(), minlength=len(CLASSES))
    return dict(zip(CLASSES, counts.tolist()))
