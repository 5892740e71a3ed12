# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Synthetic BraTS cases in the real folder and file layouts.

Deterministic by ``seed`` (each case from ``default_rng([seed, index])``).
Each case: a brain-shaped nonzero mask (an ellipsoid with a smooth noisy
border), nested irregular regions ET ⊂ TC ⊂ WT and per-modality
intensities like the real contrasts (edema bright on FLAIR/T2, enhancing
tumour bright on T1ce, necrosis dark on T1/T1ce and bright on T2). Every
third case has no ET. Spacing is 1 mm; the affine is BraTS's LPS-like
``diag(-1, -1, 1)`` with the offset ``(0, Y - 1, 0)`` (the real 2020 files
hold ``[[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0]]``). Images are stored
as int16, labels as uint8.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from scipy import ndimage

from mmseg_ext.datasets.brats.labels import check_label_scheme
from mmseg_ext.datasets.brats.layout import MODALITY_NAMES
from mmseg_ext.datasets.brats.nifti import write_nifti

__all__ = ['generate_brats', 'CASE_355_SEG']

#: The label file name of BraTS 2020 training case 355.
CASE_355_SEG = 'W39_1998.09.19_Segm.nii'

# Mean intensity per tissue, physical order FLAIR, T1, T1ce, T2.
_INTENSITY = {
    'brain': (450, 600, 550, 400),
    'ED': (900, 450, 500, 850),
    'NCR': (600, 250, 300, 950),
    'ET': (700, 550, 1000, 600),
}


def _blob(rng, grid, center, radii, roughness):
    """An ellipsoid whose border is moved by smooth noise."""
    r = np.sqrt(sum(((g - c) / max(rd, 1e-3))**2
                    for g, c, rd in zip(grid, center, radii)))
    coarse = rng.standard_normal((4, 4, 4))
    shape = grid[0].shape
    noise = ndimage.zoom(coarse, [s / 4 for s in shape], order=1)
    noise = noise[:shape[0], :shape[1], :shape[2]]
    return r < 1 + roughness * noise


def _case_ids(num_cases, label_scheme, split, with_case_355):
    ids = list(range(1, num_cases + 1))
    if with_case_355 and ids:
        ids[-1] = 355
    if label_scheme == 'brats2020':
        kind = 'Training' if split == 'training' else 'Validation'
        return [f'BraTS20_{kind}_{i:03d}' for i in ids], ids
    return [f'BraTS-GLI-{i:05d}-000' for i in ids], ids


def _make_case(rng, size, with_et):
    grid = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in size],
                       indexing='ij')
    size_a = np.asarray(size, dtype=np.float64)
    center = (size_a - 1) / 2
    brain = _blob(rng, grid, center, 0.42 * size_a, 0.06)
    # Tumour centre inside the brain, away from its border.
    t_center = center + rng.uniform(-0.12, 0.12, 3) * size_a
    wt_r = rng.uniform(0.14, 0.2) * size_a
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
                   with_case_355: bool = False) -> List[dict]:
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
    if ext is None:
        ext = 'mixed' if label_scheme == 'brats2020' else '.nii.gz'
    if ext not in ('.nii', '.nii.gz', 'mixed'):
        raise ValueError(f"`ext` should be '.nii', '.nii.gz' or 'mixed', "
                         f'but got {ext!r}')
    if with_case_355 and (label_scheme != 'brats2020'
                          or split != 'training'):
        raise ValueError('`with_case_355` should only be set for '
                         "label_scheme='brats2020', split='training'")
    et_label = dict(table['paint'])['ET']
    sep = '_' if label_scheme == 'brats2020' else '-'
    tags = MODALITY_NAMES[label_scheme]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[1, 3] = size[1] - 1
    case_ids, numbers = _case_ids(num_cases, label_scheme, split,
                                  with_case_355)
    out = []
    for index, (case_id, number) in enumerate(zip(case_ids, numbers)):
        rng = np.random.default_rng([seed, number])
        image, seg = _make_case(rng, size, with_et=index % 3 != 2)
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
