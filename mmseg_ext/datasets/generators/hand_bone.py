# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Deterministic generator of a synthetic hand-bone X-ray dataset.

It writes exactly the layout of the hand-bone segmentation competition
(29 overlapping bone classes per hand X-ray), so the converter
(``tools/dataset_converters/hand_bone.py``), :class:`HandBoneDataset` and the
submission writer can be exercised end to end without the real data::

    {root}/train/DCM/ID001/image1661130828152_R.png          # 8-bit grey
    {root}/train/DCM/ID001/image1661130914565_L.png
    {root}/train/outputs_json/ID001/image1661130828152_R.json
    {root}/train/outputs_json/ID001/image1661130914565_L.json
    {root}/test/DCM/ID00{n+1}/image..._{R,L}.png             # no labels

Each JSON is ``{"annotations": [{"id", "type": "poly_seg", "attributes",
"label": "finger-1", "points": [[x, y], ...]}, ...], "filename",
"metadata": {"height", "width"}}`` with one polygon per class in
:data:`HAND_BONE_CLASSES` order and integer pixel coordinates, as in the
competition's files. One right and one left hand per patient ID (the left
hand is the mirror image of a right hand).

The bones are drawn in a hand frame and posed (scale, shift, a rotation,
about one hand in five rotated by 20-40 degrees): 19 finger bones
(``finger-1..3`` thumb, ``finger-4..7`` index, ..., ``finger-16..19``
little finger; tip to metacarpal), eight small carpals that overlap one
another (the pisiform lies on the triquetrum) and the long radius and ulna,
so class sizes differ by two orders of magnitude and neighbouring bones
overlap at the joints, as in the real labels. The image renders soft tissue,
bone (overlaps brighter), cortical rims, blur, noise and an ``R``/``L``
marker.
"""
import math
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

from mmseg_ext.utils.io import dump_json_atomic, imwrite_atomic
# The class list is the dataset's (HandBoneDataset.METAINFO); re-exported
# here for code that imported it from the generator.
from ..hand_bone import HAND_BONE_CLASSES, HAND_BONE_PALETTE

__all__ = [
    'HAND_BONE_CLASSES', 'HAND_BONE_PALETTE', 'generate_hand_bone',
    'render_hand'
]

MIN_SIZE = 128
_FIRST_TIMESTAMP = 1661130828152  # a real file name's ms timestamp

# Hand frame: x to the little finger, y towards the forearm, in units of
# the image side; origin at the wrist centre. Right hand (the left hand is
# mirrored after rendering the geometry).
# Fingers: (base x, base y, angle from vertical in degrees, lengths from
# metacarpal to tip, widths from metacarpal to tip).
_FINGERS = (
    # thumb: metacarpal, proximal, distal phalanx
    (-0.085, -0.075, -38.0, (0.095, 0.070, 0.052), (0.030, 0.026, 0.021)),
    # index, middle, ring, little: metacarpal, proximal, middle, distal
    (-0.050, -0.112, -13.0, (0.160, 0.105, 0.062, 0.044),
     (0.027, 0.025, 0.021, 0.018)),
    (-0.012, -0.118, -3.5, (0.155, 0.115, 0.072, 0.047),
     (0.028, 0.026, 0.022, 0.018)),
    (0.026, -0.111, 6.5, (0.145, 0.107, 0.067, 0.045),
     (0.026, 0.024, 0.020, 0.017)),
    (0.060, -0.098, 17.0, (0.125, 0.085, 0.050, 0.038),
     (0.024, 0.021, 0.018, 0.016)),
)
# Carpals: name -> (centre x, centre y, semi-axis a, semi-axis b, angle).
_CARPALS = {
    'Trapezium': (-0.070, -0.058, 0.024, 0.018, 30.0),
    'Trapezoid': (-0.040, -0.080, 0.018, 0.014, 10.0),
    'Capitate': (-0.006, -0.070, 0.019, 0.030, -5.0),
    'Hamate': (0.036, -0.064, 0.022, 0.026, -20.0),
    'Scaphoid': (-0.058, -0.012, 0.032, 0.018, 35.0),
    'Lunate': (-0.012, -0.004, 0.021, 0.019, 0.0),
    'Triquetrum': (0.030, -0.014, 0.021, 0.016, -25.0),
    'Pisiform': (0.046, -0.004, 0.013, 0.012, 0.0),
}
_HAND_SCALE = 1.15  # fingers and carpals relative to the forearm
# Long bones: (start (x, y) near the wrist, end (x, y), start width, end
# width).
_LONG_BONES = {
    'Radius': ((-0.036, 0.026), (-0.050, 0.300), 0.080, 0.050),
    'Ulna': ((0.038, 0.034), (0.046, 0.300), 0.042, 0.034),
}


def _capsule(p0: np.ndarray, p1: np.ndarray, w0: float, w1: float,
             rng: np.random.Generator, n: int = 10) -> np.ndarray:
    """A bone-like outline from ``p0`` to ``p1``: rounded ends, waist."""
    axis = p1 - p0
    length = float(np.hypot(*axis))
    u = axis / length
    v = np.array([-u[1], u[0]])
    pts = []
    # One side from p0 to p1 (narrower shaft), end cap, other side back,
    # start cap.
    ts = np.linspace(0.0, 1.0, n)
    for side in (1, -1):
        for t in (ts if side == 1 else ts[::-1]):
            width = (w0 + (w1 - w0) * t) / 2
            width *= 1.0 - 0.18 * math.sin(math.pi * t)  # shaft waist
            width *= 1.0 + rng.uniform(-0.04, 0.04)
            pts.append(p0 + axis * t + side * width * v)
        # rounded cap around the end just passed
        centre, half = (p1, w1 / 2) if side == 1 else (p0, w0 / 2)
        direction = u if side == 1 else -u
        # from this side's normal over the tip to the other side's normal
        for a in np.linspace(0.0, math.pi, 7)[1:-1]:
            pts.append(centre + half * (math.cos(a) * side * v +
                                        math.sin(a) * direction))
    return np.asarray(pts)


def _ellipse(centre, a, b, angle_deg, rng, n=18) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    r = 1.0 + rng.uniform(-0.06, 0.06, n)
    x, y = a * r * np.cos(t), b * r * np.sin(t)
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.stack([centre[0] + c * x - s * y, centre[1] + s * x + c * y], 1)


def _hand_geometry(rng: np.random.Generator,
                   patient_scale: float) -> Dict[str, np.ndarray]:
    """Polygons of the 29 bones in the hand frame (unposed), by class."""
    polys: Dict[str, np.ndarray] = {}
    hand_scale = patient_scale * _HAND_SCALE
    overlap = 0.007  # neighbouring bones overlap at the joints
    for f, (bx, by, angle, lengths, widths) in enumerate(_FINGERS):
        angle += rng.normal(0, 2.0)
        point = np.array([bx, by]) * hand_scale + rng.normal(0, 0.003, 2)
        bones = []
        for length, width in zip(lengths, widths):
            length *= hand_scale * rng.uniform(0.95, 1.05)
            width *= hand_scale
            rad = math.radians(angle)
            end = point + length * np.array([math.sin(rad), -math.cos(rad)])
            bones.append(_capsule(point, end, width, width * 0.8, rng))
            back = (end - point) / length * overlap
            point = end - back
            angle += rng.normal(0, 1.5)  # slight flexion
        # finger-1.. are numbered from the tip to the metacarpal
        first = 1 if f == 0 else 4 + 4 * (f - 1)
        for i, poly in enumerate(reversed(bones)):
            polys[f'finger-{first + i}'] = poly
    for name, (cx, cy, a, b, ang) in _CARPALS.items():
        centre = np.array([cx, cy]) * hand_scale + rng.normal(0, 0.002, 2)
        polys[name] = _ellipse(centre, a * hand_scale, b * hand_scale,
                               ang + rng.normal(0, 8), rng)
    for name, (p0, p1, w0, w1) in _LONG_BONES.items():
        p0 = np.array(p0) * patient_scale
        p1 = np.array(p1) * patient_scale
        p1[0] += rng.normal(0, 0.006)
        polys[name] = _capsule(p0, p1, w0 * patient_scale,
                               w1 * patient_scale, rng, n=14)
    return {name: polys[name] for name in HAND_BONE_CLASSES}


def _pose(polys: Dict[str, np.ndarray], rng: np.random.Generator, size: int,
          mirror: bool) -> Dict[str, np.ndarray]:
    """Rotate, scale and shift the hand into image pixels (int32)."""
    if rng.random() < 0.2:  # a few strongly rotated poses
        angle = rng.choice([-1, 1]) * rng.uniform(20, 40)
    else:
        angle = rng.normal(0, 5)
    scale = rng.uniform(0.9, 1.08)
    wrist = np.array([0.5, 0.62]) + rng.uniform(-0.03, 0.03, 2)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rot = np.array([[c, -s], [s, c]]) * scale
    out = {}
    for name, poly in polys.items():
        pts = (poly @ rot.T + wrist) * size
        if mirror:
            pts[:, 0] = size - 1 - pts[:, 0]
        pts = np.clip(np.round(pts), 0, size - 1).astype(np.int32)
        if cv2.contourArea(pts) < 1:
            raise RuntimeError(f'generated bone {name} is degenerate at size '
                               f'{size}; use a larger `size`')
        out[name] = pts
    return out


def render_hand(polys: Dict[str, np.ndarray], size: int, marker: str,
                rng: np.random.Generator) -> np.ndarray:
    """Render a grey ``(size, size)`` uint8 X-ray-like image of the bones.

    Args:
        polys (dict[str, np.ndarray]): ``(P, 2)`` int32 ``(x, y)`` polygon
            of each bone, in pixels.
        size (int): Image side.
        marker (str): ``'R'`` or ``'L'``, drawn in a corner.
        rng (np.random.Generator): Noise source.

    Returns:
        np.ndarray: ``(size, size)`` uint8.
    """
    img = np.full((size, size), 18.0, np.float32)
    yy = np.linspace(-1, 1, size, dtype=np.float32)[:, None]
    img += 8 * yy  # exposure gradient
    # Soft tissue: thick outlines around the bones, heavily blurred.
    tissue = np.zeros((size, size), np.uint8)
    for name, pts in polys.items():
        thick = max(2, int(size * (0.03 if name.startswith('finger') else
                                   0.05)))
        cv2.fillPoly(tissue, [pts], 1)
        cv2.polylines(tissue, [pts], True, 1, thick)
    hull = cv2.convexHull(np.concatenate(
        [polys[n] for n in ('finger-3', 'finger-7', 'finger-19', 'Radius',
                            'Ulna', 'Trapezium', 'Hamate')]))
    palm = np.zeros_like(tissue)
    cv2.fillPoly(palm, [hull], 1)
    carpals = np.concatenate([polys[n] for n in _CARPALS])
    cv2.fillPoly(palm, [cv2.convexHull(carpals)], 1)
    tissue |= palm & cv2.dilate(tissue, np.ones((3, 3), np.uint8),
                                iterations=max(1, size // 64))
    sigma = max(1.0, size / 128)
    img += 45 * cv2.GaussianBlur(tissue.astype(np.float32), (0, 0), sigma)
    # Bones: add up, so overlaps are brighter; a brighter cortical rim.
    rim = max(1, size // 256)
    for pts in polys.values():
        x, y, w, h = cv2.boundingRect(pts)
        local = np.zeros((h, w), np.uint8)
        cv2.fillPoly(local, [pts - (x, y)], 1)
        edge = np.zeros((h, w), np.uint8)
        cv2.polylines(edge, [pts - (x, y)], True, 1, rim)
        img[y:y + h, x:x + w] += (rng.uniform(60, 85) * local +
                                  35 * (edge & local))
    img = cv2.GaussianBlur(img, (0, 0), max(0.6, size / 1024))
    img += rng.normal(0, 3.5, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    scale = size / 512
    cv2.putText(img, marker, (int(size * 0.06), int(size * 0.12)),
                cv2.FONT_HERSHEY_SIMPLEX, 1.2 * scale, 230,
                max(1, int(3 * scale)))
    return img


def _annotation_json(polys: Dict[str, np.ndarray], filename: str, size: int,
                     rng: np.random.Generator) -> dict:
    annotations = []
    for name in HAND_BONE_CLASSES:
        annotations.append(
            dict(
                id=rng.bytes(16).hex(),
                type='poly_seg',
                attributes={},
                points=polys[name].tolist(),
                label=name))
    return dict(
        annotations=annotations,
        attributes={},
        filename=filename,
        metadata=dict(height=size, width=size))


def generate_hand_bone(root: str,
                       num_train_ids: int = 4,
                       num_test_ids: int = 1,
                       size: int = 256,
                       seed: int = 0) -> Dict[str, object]:
    """Write the synthetic hand-bone dataset under ``root``; same seed, same
    bytes.

    Args:
        root (str): Output folder (created); see the module docstring for
            the layout.
        num_train_ids (int): Labelled patients (``ID001``...), two images
            each. Defaults to 4.
        num_test_ids (int): Unlabelled test patients, numbered after the
            training ones. Defaults to 1.
        size (int): Image side in pixels, ``>= 128`` (the competition's
            images are 2048). Defaults to 256.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: ``train`` and ``test``: lists of image paths relative to
        ``{root}/{split}/DCM``; ``size``.

    Raises:
        ValueError: for a bad argument.

    Examples:
        >>> info = generate_hand_bone('data/hand_bone_synth', 4, 1, 256)
        >>> info['train'][:2]
        ['ID001/image1661130828152_R.png', 'ID001/image1661130914565_L.png']
    """
    for name, value, low in (('num_train_ids', num_train_ids, 0),
                             ('num_test_ids', num_test_ids, 0),
                             ('size', size, MIN_SIZE)):
        if isinstance(value, bool) or not isinstance(
                value, (int, np.integer)) or value < low:
            raise ValueError(f'`{name}` should be an int >= {low}, but got '
                             f'{value!r}')
    if num_train_ids + num_test_ids > 999:
        raise ValueError('`num_train_ids + num_test_ids` should be <= 999 '
                         f'(IDs are ID001..ID999), but got '
                         f'{num_train_ids + num_test_ids}')
    size = int(size)
    rng = np.random.default_rng(seed)
    timestamp = _FIRST_TIMESTAMP
    written: Dict[str, List[str]] = dict(train=[], test=[])
    for i in range(num_train_ids + num_test_ids):
        split = 'train' if i < num_train_ids else 'test'
        pid = f'ID{i + 1:03d}'
        patient_scale = rng.uniform(0.92, 1.06)
        for side in ('R', 'L'):
            name = f'image{timestamp}_{side}'
            timestamp += int(rng.integers(40_000, 120_000))
            polys = _pose(_hand_geometry(rng, patient_scale), rng, size,
                          mirror=side == 'L')
            img = render_hand(polys, size, side, rng)
            rel = f'{pid}/{name}.png'
            imwrite_atomic(img, osp.join(root, split, 'DCM', rel))
            if split == 'train':
                dump_json_atomic(
                    _annotation_json(polys, f'{name}.png', size, rng),
                    osp.join(root, 'train', 'outputs_json', pid,
                             f'{name}.json'))
            written[split].append(rel)
    return dict(train=written['train'], test=written['test'], size=size)


def hand_bone_masks(polys: Dict[str, np.ndarray],
                    size: Tuple[int, int]) -> np.ndarray:
    """``(C, H, W)`` bool masks of the polygons (reference rasteriser)."""
    h, w = size
    masks = np.zeros((len(HAND_BONE_CLASSES), h, w), np.uint8)
    for k, name in enumerate(HAND_BONE_CLASSES):
        if name in polys:
            cv2.fillPoly(masks[k], [np.asarray(polys[name], np.int32)], 1)
    return masks.astype(bool)
