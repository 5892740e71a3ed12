# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Synthetic BraTS cases in the real folder and file layouts.

Deterministic by ``seed`` (each case from ``default_rng([seed, index])``).
Each case: a brain-shaped nonzero mask (an ellipsoid with a smooth noisy
border), nested irregular regions ET ⊂ TC ⊂ WT and per-modality
intensities like the real contrasts (edema bright on FLAIR/T2, enhancing
tumour bright on T1ce, necrosis dark on T1/T1ce and bright on T2). Every
third case has no ET. Spacing is 1 mm; the affine is BraTS's LPS-like
``diag(-1, -1, 1)`` with the offset ``(0, Y - 1, 0)`` (the real 2020 and
2021 files hold ``[[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0]]``).
Images are stored as int16, labels as uint8. Names follow the release:
``BraTS20_Training_001`` (2020; ``.nii`` and ``.nii.gz`` mixed, case 355
optional), ``BraTS2021_00000`` (2021, labels as 2020) or
``BraTS-GLI-00001-000`` (2023).

For the clinical cross-check demo, :func:`brats_atlas` is a toy atlas (the
brain's bounding box cut into hemisphere × lobe-like octants, named like
``'left frontal'``) and :func:`generate_brats_clinical` writes a clinical
CSV whose suspected hemisphere and region are the generated tumour's true
ones, with deliberate disagreements on every ``disagree_every``-th case.
"""
import csv
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from mmseg_ext.datasets.brats.labels import check_label_scheme
from mmseg_ext.datasets.brats.layout import MODALITY_NAMES
from mmseg_ext.datasets.brats.nifti import write_nifti
from mmseg_ext.utils.io import atomic_path

__all__ = [
    'generate_brats', 'CASE_355_SEG', 'RELEASES', 'brats_affine',
    'brats_atlas',
    'generate_brats_atlas', 'generate_brats_clinical'
]

#: Name styles: release → label scheme.
RELEASES = {2020: 'brats2020', 2021: 'brats2020', 2023: 'brats2023'}

#: The label file name of BraTS 2020 training case 355.
CASE_355_SEG = 'W39_1998.09.19_Segm.nii'

# Mean intensity per tissue, physical order FLAIR, T1, T1ce, T2.
_INTENSITY = {
    'brain': (450, 600, 550, 400),
    'ED': (900, 450, 500, 850),
    'NCR': (600, 250, 300, 950),
    'ET': (700, 550, 1000, 600),
}


def brats_affine(size: Sequence[int]) -> np.ndarray:
    """The affine of the generated volumes: BraTS's ``diag(-1, -1, 1)``
    with the offset ``(0, Y - 1, 0)``; 1 mm voxels."""
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[1, 3] = int(size[1]) - 1
    return affine


def _blob(rng, grid, center, radii, roughness):
    """An ellipsoid whose border is moved by smooth noise."""
    r = np.sqrt(sum(((g - c) / max(rd, 1e-3))**2
                    for g, c, rd in zip(grid, center, radii)))
    coarse = rng.standard_normal((4, 4, 4))
    shape = grid[0].shape
    noise = ndimage.zoom(coarse, [s / 4 for s in shape], order=1)
    noise = noise[:shape[0], :shape[1], :shape[2]]
    return r < 1 + roughness * noise


def _case_ids(num_cases, release, split, with_case_355):
    if release == 2021:
        # BraTS 2021 numbers from 00000, the same names for every split.
        ids = list(range(num_cases))
        return [f'BraTS2021_{i:05d}' for i in ids], ids
    ids = list(range(1, num_cases + 1))
    if with_case_355 and ids:
        ids[-1] = 355
    if release == 2020:
        kind = 'Training' if split == 'training' else 'Validation'
        return [f'BraTS20_{kind}_{i:03d}' for i in ids], ids
    return [f'BraTS-GLI-{i:05d}-000' for i in ids], ids


def _make_case(rng, size, with_et, lateral=False):
    grid = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in size],
                       indexing='ij')
    size_a = np.asarray(size, dtype=np.float64)
    center = (size_a - 1) / 2
    brain = _blob(rng, grid, center, 0.42 * size_a, 0.06)
    # Tumour centre inside the brain, away from its border.
    t_center = center + rng.uniform(-0.12, 0.12, 3) * size_a
    wt_r = rng.uniform(0.14, 0.2) * size_a
    if lateral:
        # Off the midline by 0.8 WT radii, on the side drawn above: under
        # 3 % of a sphere's volume crosses it (one hemisphere per case).
        # The same draws as without: other cases' data stays identical.
        side = 1.0 if t_center[0] >= center[0] else -1.0
        t_center[0] = center[0] + side * max(abs(t_center[0] - center[0]),
                                             0.8 * wt_r[0])
    # The voxel at the tumour centre seeds every region, so even tiny
    # volumes get a nonempty WT (its 2-ball), TC (1-ball) and NCR core.
    seed = np.zeros(size, bool)
    seed[tuple(np.round(t_center).astype(int))] = True
    ball = ndimage.generate_binary_structure(3, 1)
    wt = (_blob(rng, grid, t_center, wt_r, 0.15)
          | ndimage.binary_dilation(seed, ball, iterations=2)) & brain
    tc = (_blob(rng, grid, t_center + rng.uniform(-1, 1, 3),
                wt_r * rng.uniform(0.5, 0.65), 0.15)
          | ndimage.binary_dilation(seed, ball)) & wt
    et = np.zeros_like(tc)
    if with_et:
        # Enhancing rim around a necrotic core, as in high-grade gliomas.
        core = ndimage.binary_erosion(tc) | seed
        et = tc & ~core
    seg = np.zeros(size, np.uint8)
    seg[wt] = 2
    seg[tc] = 1
    seg[et] = 3  # scheme-neutral ET; remapped by the caller
    image = np.zeros((4, ) + tuple(size), np.float64)
    for m in range(4):
        vol = np.full(size, float(_INTENSITY['brain'][m]))
        vol[seg == 2] = _INTENSITY['ED'][m]
        vol[seg == 1] = _INTENSITY['NCR'][m]
        vol[seg == 3] = _INTENSITY['ET'][m]
        vol = ndimage.gaussian_filter(vol, 0.7)
        vol += rng.normal(0, 30, size)
        vol = np.clip(np.round(vol), 1, 32000)
        vol[~brain] = 0
        image[m] = vol
    return image.astype(np.int16), seg


def generate_brats(root: str,
                   num_cases: int = 4,
                   size: Sequence[int] = (48, 48, 32),
                   label_scheme: str = 'brats2020',
                   seed: int = 0,
                   split: str = 'training',
                   ext: Optional[str] = None,
                   with_case_355: bool = False,
                   release: Optional[int] = None,
                   lateral: bool = False) -> List[dict]:
    """Write ``num_cases`` synthetic cases under ``root``.

    Args:
        root (str): The folder to hold the case folders.
        num_cases (int): Cases to write. Defaults to 4.
        size (Sequence[int]): ``(X, Y, Z)`` voxels. Defaults to
            ``(48, 48, 32)`` (the real volumes are 240 × 240 × 155).
        label_scheme (str): ``'brats2020'`` (``BraTS20_Training_001``,
            labels 1, 2, 4) or ``'brats2023'`` (``BraTS-GLI-00001-000``,
            labels 1, 2, 3). Defaults to ``'brats2020'``.
        seed (int): Defaults to 0.
        split (str): ``'training'`` or ``'validation'`` (no label files;
            brats2020 names ``BraTS20_Validation_001``). Defaults to
            ``'training'``.
        ext (str, optional): ``'.nii'``, ``'.nii.gz'`` or ``'mixed'``
            (odd cases ``.nii``, even ``.nii.gz``). Defaults to None:
            ``'mixed'`` for brats2020, ``'.nii.gz'`` (as released) for
            brats2023.
        with_case_355 (bool): brats2020 training only: the last case is
            ``BraTS20_Training_355`` with its label in
            :data:`CASE_355_SEG`. Defaults to False.
        release (int, optional): The name style, a key of
            :data:`RELEASES`: 2020, 2021 (``BraTS2021_00000``, numbered
            from 0, labels 1, 2, 4, ``.nii.gz`` as released unless ``ext``
            says otherwise) or 2023; it must match ``label_scheme``.
            Defaults to None (2020 for brats2020, 2023 for brats2023).
        lateral (bool): Move each tumour off the midline so that it lies
            in one hemisphere (the cross-check demo: otherwise many cross
            it and count as bilateral). Defaults to False (the data of
            earlier versions, byte for byte).

    Returns:
        list[dict]: Per case ``case_id``, ``image`` ``(4, X, Y, Z)``
        float32 (physical order FLAIR, T1, T1ce, T2), ``seg`` ``(X, Y, Z)``
        uint8 in the scheme (None for validation), ``affine``, ``paths``
        (the written files, modalities then seg).
    """
    table = check_label_scheme(label_scheme)
    if split not in ('training', 'validation'):
        raise ValueError(f"`split` should be 'training' or 'validation', "
                         f'but got {split!r}')
    if num_cases < 0:
        raise ValueError(f'`num_cases` should be >= 0, but got {num_cases}')
    size = tuple(int(s) for s in size)
    if len(size) != 3 or min(size) < 8:
        raise ValueError(f'`size` should be (X, Y, Z) with each >= 8, but '
                         f'got {size}')
    if release is None:
        release = 2020 if label_scheme == 'brats2020' else 2023
    if RELEASES.get(release) != label_scheme:
        allowed = [r for r, s in RELEASES.items() if s == label_scheme]
        raise ValueError(f'`release` should be one of {allowed} for '
                         f'label_scheme={label_scheme!r}, but got '
                         f'{release!r}')
    if ext is None:
        ext = 'mixed' if release == 2020 else '.nii.gz'
    if ext not in ('.nii', '.nii.gz', 'mixed'):
        raise ValueError(f"`ext` should be '.nii', '.nii.gz' or 'mixed', "
                         f'but got {ext!r}')
    if with_case_355 and (release != 2020 or split != 'training'):
        raise ValueError('`with_case_355` should only be set for '
                         "label_scheme='brats2020', split='training' "
                         '(release 2020)')
    et_label = dict(table['paint'])['ET']
    sep = '_' if label_scheme == 'brats2020' else '-'
    tags = MODALITY_NAMES[label_scheme]
    affine = brats_affine(size)
    case_ids, numbers = _case_ids(num_cases, release, split,
                                  with_case_355)
    out = []
    for index, (case_id, number) in enumerate(zip(case_ids, numbers)):
        rng = np.random.default_rng([seed, number])
        image, seg = _make_case(rng, size, with_et=index % 3 != 2,
                                lateral=lateral)
        seg[seg == 3] = et_label
        suffix = ext if ext != 'mixed' else \
            ('.nii' if index % 2 else '.nii.gz')
        case_dir = osp.join(root, case_id)
        os.makedirs(case_dir, exist_ok=True)
        paths = []
        for m, tag in enumerate(tags):
            path = osp.join(case_dir, f'{case_id}{sep}{tag}{suffix}')
            write_nifti(path, image[m], affine)
            paths.append(path)
        if split == 'training':
            name = CASE_355_SEG if number == 355 and with_case_355 \
                else f'{case_id}{sep}seg{suffix}'
            path = osp.join(case_dir, name)
            write_nifti(path, seg, affine)
            paths.append(path)
        out.append(
            dict(case_id=case_id, image=image.astype(np.float32),
                 seg=seg if split == 'training' else None,
                 affine=affine.copy(), paths=paths))
    return out


# Toy atlas: lobe-like names of the (anterior?, superior?) quadrants.
_LOBES = (('frontal', True, True), ('parietal', False, True),
          ('temporal', True, False), ('occipital', False, False))
_SYMPTOMS = {'frontal': '{side}-sided weakness', 'parietal':
             '{side}-sided numbness', 'temporal': 'seizures, word-finding '
             'difficulty', 'occipital': '{side} visual field loss'}


def brats_atlas(size: Sequence[int],
                affine: np.ndarray) -> Tuple[np.ndarray, dict]:
    """A toy atlas of a generated volume: 8 octants around its centre.

    World axes (RAS, from ``affine``) split the volume at its centre voxel:
    x into the ``left`` (smaller x) and ``right`` hemispheres, y (anterior)
    and z (superior) into ``frontal`` (anterior superior), ``temporal``
    (anterior inferior), ``parietal`` (posterior superior) and
    ``occipital`` (posterior inferior).

    Args:
        size (Sequence[int]): ``(X, Y, Z)``.
        affine (np.ndarray): ``(4, 4)`` voxel → world.

    Returns:
        tuple[np.ndarray, dict]: ``(X, Y, Z)`` uint8 labels 1-8 and
        ``{label: name}`` (``1: 'left frontal'`` ... ``8: 'right
        occipital'``).
    """
    size = tuple(int(s) for s in size)
    affine = np.asarray(affine, dtype=np.float64)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64)
                                  for s in size], indexing='ij'))
    centre = (np.asarray(size, np.float64) - 1) / 2
    # World offsets from the centre voxel (the translation cancels).
    offset = np.tensordot(affine[:3, :3], grid - centre[:, None, None, None],
                          axes=1)
    names, labels = {}, np.zeros(size, np.uint8)
    label = 0
    for side, right in (('left', False), ('right', True)):
        for lobe, anterior, superior in _LOBES:
            label += 1
            names[label] = f'{side} {lobe}'
            mask = ((offset[0] >= 0) == right) & \
                ((offset[1] >= 0) == anterior) & ((offset[2] >= 0) == superior)
            labels[mask] = label
    return labels, names


def generate_brats_atlas(path: str, size: Sequence[int],
                         affine: np.ndarray) -> dict:
    """Write :func:`brats_atlas` as a label NIfTI at ``path`` and its names
    as JSON (``{"1": "left frontal", ...}``) next to it
    (``{stem}_names.json``).

    Returns:
        dict: ``atlas`` (the NIfTI path), ``names_path``, ``names``.
    """
    labels, names = brats_atlas(size, affine)
    write_nifti(path, labels, affine)
    stem = path[:-len('.nii.gz')] if path.endswith('.nii.gz') else \
        osp.splitext(path)[0]
    names_path = f'{stem}_names.json'
    with atomic_path(names_path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump({str(k): v for k, v in names.items()}, f, indent=2)
    return dict(atlas=path, names_path=names_path, names=names)


def generate_brats_clinical(cases: Sequence[dict],
                            path: str,
                            disagree_every: int = 4) -> List[dict]:
    """Write a clinical CSV for generated cases (the cross-check demo).

    Per labelled case: ``case_id``, ``suspected_hemisphere`` and
    ``suspected_region``, the :func:`brats_atlas` octant holding most of
    the whole tumour (its true site), and a ``symptom`` that fits it.
    Every ``disagree_every``-th case (the 4th, 8th, ... by default) names
    the other hemisphere, deliberately. Unlabelled cases are left out.
    Deterministic: a function of the cases only.

    Args:
        cases (Sequence[dict]): :func:`generate_brats` output (``case_id``,
            ``seg``, ``affine``).
        path (str): The CSV to write (atomically).
        disagree_every (int): Period of the deliberate disagreements; 0
            for none. Defaults to 4.

    Returns:
        list[dict]: The rows, plus ``true_hemisphere``, ``true_region`` and
        ``disagrees`` (bool) for tests.
    """
    if not isinstance(disagree_every, int) or disagree_every < 0:
        raise ValueError('`disagree_every` should be an int >= 0, but got '
                         f'{disagree_every!r}')
    rows = []
    labelled = [c for c in cases if c.get('seg') is not None]
    for n, case in enumerate(labelled):
        seg = np.asarray(case['seg'])
        atlas, names = brats_atlas(seg.shape, case['affine'])
        counts = np.bincount(atlas[seg > 0], minlength=len(names) + 1)
        true_region = names[int(np.argmax(counts[1:])) + 1]
        side, lobe = true_region.split(' ', 1)
        disagrees = bool(disagree_every) and \
            n % disagree_every == disagree_every - 1
        if disagrees:
            side = 'right' if side == 'left' else 'left'
        other = 'right' if side == 'left' else 'left'
        rows.append(dict(
            case_id=case['case_id'], suspected_hemisphere=side,
            suspected_region=f'{side} {lobe}',
            symptom=_SYMPTOMS[lobe].format(side=other),
            true_hemisphere=true_region.split(' ', 1)[0],
            true_region=true_region, disagrees=disagrees))
    columns = ('case_id', 'suspected_hemisphere', 'suspected_region',
               'symptom')
    with atomic_path(path) as tmp:
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for r in rows:
                writer.writerow([r[c] for c in columns])
    return rows
