# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Deterministic synthetic satellite tiles in the building competition layout.

Written exactly like the competition's data (read by
:class:`mmseg_ext.datasets.BuildingRLEDataset`)::

    {root}/train.csv              img_id,img_path,mask_rle
    {root}/train_img/TRAIN_0000.png   (train_size, train_size, 3) BGR
    {root}/test.csv               img_id,img_path
    {root}/test_img/TEST_00000.png    (test_size, test_size, 3) BGR
    {root}/sample_submission.csv  img_id,mask_rle   (every row -1)

plus one file the competition keeps secret, for end-to-end checks of a
submission: ``{root}/test_gt.csv`` (``img_id,mask_rle`` of the test tiles).
Paths in the CSVs are relative to the CSV's folder (``./train_img/...``);
``mask_rle`` is the competition RLE (see :mod:`mmseg_ext.utils.rle`), ``-1``
for a tile without buildings.

Buildings are rotated rectangles and polygons (L-shapes, convex
polygons) with roof colours and shadows, clustered in blocks over a
textured ground with roads. Foreground ratios follow the competition: most
tiles 5-10 %, about one tile in five under 1 % (some of them empty).
Test tiles are rendered at a coarser scale: a scene of
``test_size / test_scale`` pixels at the training resolution is downscaled
to ``test_size`` (``test_scale=0.5``: one test pixel is two training
pixels).

Each tile has its own random stream (``seed``, split, index), so the same
arguments give the same bytes and adding tiles leaves earlier ones alone.
"""
import csv
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

from mmseg_ext.utils.io import atomic_path, imwrite_atomic
from mmseg_ext.utils.rle import rle_encode

# BGR colours.
_GROUND = np.array([[60, 110, 80], [70, 120, 110], [80, 130, 140],
                    [90, 140, 150], [50, 90, 60]], np.float32)
_ROOFS = np.array([[200, 200, 205], [150, 150, 155], [60, 80, 180],
                   [170, 120, 90], [90, 90, 100], [210, 215, 190]],
                  np.float32)
_ROAD = np.array([115, 115, 120], np.float32)
_SPLIT_IDS = {'train': 0, 'test': 1}


def _ratio_target(rng: np.random.Generator) -> float:
    """Foreground ratio of one tile: 5 % empty, 15 % in (0, 1 %), 10 % in
    1-5 %, 70 % in 5-10 % (some tiles overshoot a little)."""
    u = rng.random()
    if u < 0.05:
        return 0.0
    if u < 0.20:
        return float(rng.uniform(0.0005, 0.008))
    if u < 0.30:
        return float(rng.uniform(0.01, 0.05))
    return float(rng.uniform(0.05, 0.095))


def _ground(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured ground: a low-frequency blend of ground colours + noise."""
    cells = max(2, size // 128)
    weights = rng.random((cells, cells, len(_GROUND))).astype(np.float32)
    weights = cv2.resize(weights, (size, size), interpolation=cv2.INTER_CUBIC)
    weights = np.clip(weights, 1e-3, None)
    weights /= weights.sum(-1, keepdims=True)
    img = weights @ _GROUND
    img += rng.normal(0, 6, (size, size, 1)).astype(np.float32)
    return img


def _building_polygon(rng: np.random.Generator, centre: np.ndarray,
                      side: float) -> np.ndarray:
    """A rotated rectangle, L-shape or convex polygon around ``centre``."""
    kind = rng.random()
    angle = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    if kind < 0.6:  # rectangle
        w, h = side, side * rng.uniform(0.4, 1.0)
        pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    elif kind < 0.8:  # L-shape
        w, h = side, side * rng.uniform(0.6, 1.0)
        t = rng.uniform(0.35, 0.6)
        pts = np.array([[0, 0], [w, 0], [w, t * h], [t * w, t * h],
                        [t * w, h], [0, h]]) - [w / 2, h / 2]
    else:  # convex polygon
        n = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = side / 2 * rng.uniform(0.7, 1.0, n)
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    return np.round(pts @ rot.T + centre).astype(np.int32)


def _render_scene(rng: np.random.Generator, size: int, unit: float,
                  target: float) -> Tuple[np.ndarray, np.ndarray]:
    """One ``size`` x ``size`` scene with foreground ratio about ``target``.

    ``unit`` is the pixel scale (1.0 for a 1024 x 1024 training tile):
    building sides are 12 to 60 units.
    """
    img = _ground(rng, size)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(0, 3))):  # roads, not buildings
        p0 = tuple(int(v) for v in rng.integers(0, size, 2))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(img, p0, p1, _ROAD.tolist(), max(1, int(14 * unit)))
    goal = int(round(target * size * size))
    if goal == 0:
        return _finish(rng, img), mask
    centres = rng.uniform(0, size, (int(rng.integers(1, 5)), 2))
    spread = size / rng.uniform(3, 8)
    shadow = np.array([1, 1]) * max(1, round(3 * unit))
    area = 0
    for _ in range(5000):
        if area >= goal:
            break
        max_side = min(60.0, max(12.0, np.sqrt(goal - area) / unit * 1.2))
        side = max(3.0, rng.uniform(12.0, max_side) * unit)
        centre = centres[rng.integers(len(centres))] + rng.normal(
            0, spread, 2)
        centre = np.clip(centre, 0, size - 1)
        poly = _building_polygon(rng, centre, side)
        cv2.fillPoly(img, [poly + shadow], (35, 40, 40))
        colour = _ROOFS[rng.integers(len(_ROOFS))] * rng.uniform(0.85, 1.1)
        cv2.fillPoly(img, [poly], colour.tolist())
        cv2.fillPoly(mask, [poly], 1)
        area = cv2.countNonZero(mask)
    return _finish(rng, img), mask


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    img = img + rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_csv(path: str, header: List[str], rows: List[List[str]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f, lineterminator='\n')
            writer.writerow(header)
            writer.writerows(rows)


def _summary(ratios: List[float]) -> Dict[str, float]:
    ratios = np.asarray(ratios, np.float64)
    if ratios.size == 0:
        return dict(num=0)
    return dict(
        num=int(ratios.size),
        mean_fg_ratio=float(ratios.mean()),
        median_fg_ratio=float(np.median(ratios)),
        frac_under_1pct=float((ratios < 0.01).mean()),
        frac_5_to_10pct=float(((ratios >= 0.05) & (ratios <= 0.10)).mean()),
        num_empty=int((ratios == 0).sum()))


def generate_buildings(root: str,
                       num_train: int = 40,
                       num_test: int = 20,
                       train_size: int = 1024,
                       test_size: int = 224,
                       test_scale: float = 0.5,
                       seed: int = 0) -> Dict[str, Dict[str, float]]:
    """Write the dataset under ``root``; same arguments, same bytes.

    Args:
        root (str): Output folder (created).
        num_train (int): Training tiles. Defaults to 40.
        num_test (int): Test tiles. Defaults to 20.
        train_size (int): Side of the training tiles; building sizes scale
            with ``train_size / 1024``. Defaults to 1024.
        test_size (int): Side of the test tiles. Defaults to 224.
        test_scale (float): Test pixels per training pixel, in ``(0, 1]``
            (coarser test tiles). Defaults to 0.5.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: ``{'train': stats, 'test': stats}`` with ``num``,
        ``mean_fg_ratio``, ``median_fg_ratio``, ``frac_under_1pct``,
        ``frac_5_to_10pct`` and ``num_empty`` of the written masks.

    Raises:
        ValueError: on sizes below 32, negative counts or a ``test_scale``
            outside ``(0, 1]``.

    Examples:
        >>> stats = generate_buildings('data/building', 200, 60)
        >>> stats['train']['frac_under_1pct']  # about 0.2
    """
    for name, value in (('train_size', train_size), ('test_size',
                                                     test_size)):
        if not isinstance(value, int) or value < 32:
            raise ValueError(f'`{name}` should be an int >= 32, but got '
                             f'{value!r}')
    for name, value in (('num_train', num_train), ('num_test', num_test)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f'`{name}` should be an int >= 0, but got '
                             f'{value!r}')
    if not 0 < test_scale <= 1:
        raise ValueError('`test_scale` should be in (0, 1] (test pixels per '
                         f'training pixel), but got {test_scale!r}')
    unit = train_size / 1024
    stats = {}

    rows, ratios = [], []
    for i in range(num_train):
        rng = np.random.default_rng([seed, _SPLIT_IDS['train'], i])
        img, mask = _render_scene(rng, train_size, unit, _ratio_target(rng))
        img_id = f'TRAIN_{i:04d}'
        rel = f'./train_img/{img_id}.png'
        imwrite_atomic(img, osp.join(root, rel))
        rows.append([img_id, rel, rle_encode(mask) or '-1'])
        ratios.append(float(mask.mean()))
    _write_csv(osp.join(root, 'train.csv'), ['img_id', 'img_path',
                                             'mask_rle'], rows)
    stats['train'] = _summary(ratios)

    rows, gt_rows, ratios = [], [], []
    scene = int(round(test_size / test_scale))
    for i in range(num_test):
        rng = np.random.default_rng([seed, _SPLIT_IDS['test'], i])
        img, mask = _render_scene(rng, scene, unit, _ratio_target(rng))
        if scene != test_size:
            img = cv2.resize(img, (test_size, test_size),
                             interpolation=cv2.INTER_AREA)
            mask = (cv2.resize(mask.astype(np.float32),
                               (test_size, test_size),
                               interpolation=cv2.INTER_AREA) >= 0.5).astype(
                                   np.uint8)
        img_id = f'TEST_{i:05d}'
        rel = f'./test_img/{img_id}.png'
        imwrite_atomic(img, osp.join(root, rel))
        rows.append([img_id, rel])
        gt_rows.append([img_id, rle_encode(mask) or '-1'])
        ratios.append(float(mask.mean()))
    _write_csv(osp.join(root, 'test.csv'), ['img_id', 'img_path'], rows)
    _write_csv(osp.join(root, 'test_gt.csv'), ['img_id', 'mask_rle'],
               gt_rows)
    _write_csv(
        osp.join(root, 'sample_submission.csv'), ['img_id', 'mask_rle'],
        [[r[0], '-1'] for r in rows])
    stats['test'] = _summary(ratios)
    return stats


__all__ = ['generate_buildings']
