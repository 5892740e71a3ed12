# Copyright (c) mmseg_ext contributors. All rights reserved.
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

import mmseg_ext.evaluation as evaluation
from mmseg_ext.evaluation.brats_metrics import (compute_brats_metrics,
                                                dice_score, hd95,
                                                mean_brats_metrics,
                                                surface_voxels)
from mmseg_ext.utils.errors import InputError


def _brute_surface(mask):
    """A mask voxel with a background (or out-of-volume) 6-neighbour."""
    pad = np.pad(mask, 1)
    inner = np.ones_like(mask)
    for axis in range(3):
        for step in (-1, 1):
            inner &= np.roll(pad, step, axis)[1:-1, 1:-1, 1:-1]
    return mask & ~inner


def _brute_hd95(pred, gt, spacing, mode):
    """Independent HD95: all pairwise surface distances (tiny volumes)."""
    ps = np.argwhere(_brute_surface(pred)) * np.asarray(spacing)
    gs = np.argwhere(_brute_surface(gt)) * np.asarray(spacing)
    d = cdist(ps, gs)
    a, b = d.min(axis=1), d.min(axis=0)
    if mode == 'pooled':
        return np.percentile(np.concatenate([a, b]), 95)
    return max(np.percentile(a, 95), np.percentile(b, 95))


def _ball(shape, center, radius):
    grid = np.indices(shape)
    dist2 = sum((g - c)**2 for g, c in zip(grid, center))
    return dist2 <= radius**2


def _blob(rng, shape=(32, 32, 32), sigma=2.5, level=0.6):
    noise = ndimage.gaussian_filter(rng.random(shape), sigma)
    return noise > np.quantile(noise, level)


def test_exported():
    assert evaluation.compute_brats_metrics is compute_brats_metrics
    assert evaluation.mean_brats_metrics is mean_brats_metrics


def test_surface_matches_6_neighbour_definition():
    rng = np.random.default_rng(0)
    mask = _blob(rng)
    mask[0, :5, :5] = True  # touches the volume edge
    np.testing.assert_array_equal(surface_voxels(mask), _brute_surface(mask))


@pytest.mark.parametrize('spacing,shift,expected', [
    ((1, 1, 1), 3, 3.0),
    ((1, 1, 3), 2, 6.0),  # anisotropic: a 2-voxel z shift is 6 mm
    ((0.5, 2, 1.5), 4, 6.0),
])
@pytest.mark.parametrize('mode', ['max', 'pooled'])
def test_plate_shifted_along_z(spacing, shift, expected, mode):
    # A 1-voxel-thick plate is all surface; every voxel's nearest voxel of
    # the shifted plate is straight across, so every distance is the shift.
    gt = np.zeros((30, 30, 20), bool)
    gt[5:25, 5:25, 5] = True
    pred = np.roll(gt, shift, axis=2)
    assert hd95(pred, gt, spacing, mode) == pytest.approx(expected)


@pytest.mark.parametrize('spacing', [(1, 1, 1), (1, 1, 3)])
@pytest.mark.parametrize('mode', ['max', 'pooled'])
def test_shifted_sphere_against_brute_force(spacing, mode):
    gt = _ball((36, 36, 36), (17, 17, 17), 8)
    pred = np.roll(gt, 3, axis=2)
    value = hd95(pred, gt, spacing, mode)
    assert value == pytest.approx(_brute_hd95(pred, gt, spacing, mode),
                                  rel=1e-12)
    # bounded by the shift in mm (the plain Hausdorff distance here)
    assert 0 < value <= 3 * spacing[2] + 1e-9


def test_pooled_vs_max_hand_computed():
    # gt: one voxel; pred: a 21-voxel line along x starting at it.
    # pred->gt distances 0, 1, ..., 20 (x 2 mm); gt->pred: one 0.
    # max: percentile95(0..20) = 19 -> 38 mm.
    # pooled: percentile95 of [0, 0, 1, ..., 20] (22 values): position
    # 0.95 * 21 = 19.95 -> value 18.95 -> 37.9 mm.
    gt = np.zeros((40, 12, 12), bool)
    gt[10, 5, 5] = True
    pred = np.zeros_like(gt)
    pred[10:31, 5, 5] = True
    spacing = (2, 1, 1)
    assert hd95(pred, gt, spacing, 'max') == pytest.approx(38.0)
    assert hd95(pred, gt, spacing, 'pooled') == pytest.approx(37.9)
    # swapping the arguments does not change either mode
    assert hd95(gt, pred, spacing, 'max') == pytest.approx(38.0)
    assert hd95(gt, pred, spacing, 'pooled') == pytest.approx(37.9)


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('mode', ['max', 'pooled'])
def test_crop_equals_full_volume(seed, mode):
    rng = np.random.default_rng(seed)
    gt = _blob(rng, level=0.85)
    pred = _blob(rng, level=0.85)
    if seed == 1:  # touching the volume edge on both sides of an axis
        gt[0, 3:9, 3:9] = pred[-1, 3:9, 3:9] = True
    spacing = (0.9, 1.1, 2.5)
    assert hd95(pred, gt, spacing, mode, crop=True) == \
        hd95(pred, gt, spacing, mode, crop=False)


def test_edt_backend_close_to_scipy():
    pytest.importorskip('edt')
    rng = np.random.default_rng(3)
    gt, pred = _blob(rng), _blob(rng)
    assert hd95(pred, gt, (1, 1, 3), backend='edt') == pytest.approx(
        hd95(pred, gt, (1, 1, 3)), rel=1e-5)


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_pooled_equals_medpy(seed):
    binary = pytest.importorskip('medpy.metric.binary')
    rng = np.random.default_rng(seed)
    gt, pred = _blob(rng, level=0.7), _blob(rng, level=0.75)
    spacing = (1.0, 0.8, 2.0)
    assert hd95(pred, gt, spacing, 'pooled') == binary.hd95(
        pred, gt, voxelspacing=spacing)


def _case():
    """BraTS 2020 labels: ED shell, NCR, ET core."""
    gt = np.zeros((24, 24, 24), np.uint8)
    gt[_ball(gt.shape, (12, 12, 12), 9)] = 2
    gt[_ball(gt.shape, (12, 12, 12), 6)] = 1
    gt[_ball(gt.shape, (12, 12, 12), 3)] = 4
    return gt


def test_perfect_prediction():
    gt = _case()
    res = compute_brats_metrics(gt, gt)
    assert list(res) == ['WT', 'TC', 'ET']
    for region in res.values():
        assert region == {'dice': 1.0, 'hd95': 0.0}


def test_values_match_region_masks_and_scheme():
    gt = _case()
    pred = np.roll(gt, 2, axis=0)
    res = compute_brats_metrics(pred, gt, spacing=(1, 1, 2),
                                hd95_mode='pooled')
    et_p, et_g = pred == 4, gt == 4
    assert res['ET']['dice'] == pytest.approx(dice_score(et_p, et_g))
    assert res['ET']['hd95'] == hd95(et_p, et_g, (1, 1, 2), 'pooled')
    wt_p, wt_g = pred > 0, gt > 0
    assert res['WT']['hd95'] == hd95(wt_p, wt_g, (1, 1, 2), 'pooled')
    # the same case in BraTS 2023 labels (ET = 3) gives the same values
    to23 = np.array([0, 1, 2, 0, 3], np.uint8)
    assert compute_brats_metrics(to23[pred], to23[gt], spacing=(1, 1, 2),
                                 label_scheme='brats2023',
                                 hd95_mode='pooled') == res


def test_dice_hand_computed():
    gt = np.zeros((10, 10, 10), np.uint8)
    gt[2:6, 2:6, 2:6] = 4  # 64 voxels
    pred = np.zeros_like(gt)
    pred[4:8, 2:6, 2:6] = 4  # 64 voxels, 32 shared
    res = compute_brats_metrics(pred, gt)
    for region in ('WT', 'TC', 'ET'):
        assert res[region]['dice'] == pytest.approx(0.5)


ED_ONLY = np.zeros((12, 12, 12), np.uint8)
ED_ONLY[3:8, 3:8, 3:8] = 2  # WT present; TC and ET empty
EMPTY = np.zeros((12, 12, 12), np.uint8)


@pytest.mark.parametrize('convention,both,one', [
    ('brats2020', (1.0, 0.0), (0.0, 373.13)),
    ('brats2023', (1.0, 0.0), (0.0, 374.0)),
    ('nan', (math.nan, math.nan), (0.0, math.nan)),
])
def test_empty_cases(convention, both, one):

    def check(value, expected):
        if math.isnan(expected):
            assert math.isnan(value)
        else:
            assert value == pytest.approx(expected)

    for pred, gt in [(EMPTY, ED_ONLY), (ED_ONLY, EMPTY)]:
        res = compute_brats_metrics(pred, gt, convention=convention)
        check(res['WT']['dice'], one[0])
        check(res['WT']['hd95'], one[1])
        for region in ('TC', 'ET'):  # empty in both
            check(res[region]['dice'], both[0])
            check(res[region]['hd95'], both[1])
    res = compute_brats_metrics(EMPTY, EMPTY, convention=convention)
    for region in res.values():
        check(region['dice'], both[0])
        check(region['hd95'], both[1])


def test_brats2020_diagonal():
    assert math.sqrt(240**2 + 240**2 + 155**2) == pytest.approx(373.13,
                                                                abs=5e-3)


def test_mean_excludes_nan():
    a = {r: {'dice': 1.0, 'hd95': 2.0} for r in ('WT', 'TC', 'ET')}
    b = {r: {'dice': 0.5, 'hd95': math.nan} for r in ('WT', 'TC', 'ET')}
    c = {r: {'dice': math.nan, 'hd95': math.nan} for r in ('WT', 'TC', 'ET')}
    means = mean_brats_metrics([a, b, c])
    assert means['ET'] == {'dice': 0.75, 'hd95': 2.0, 'n_dice': 2,
                           'n_hd95': 1}
    empty = mean_brats_metrics([c])
    assert math.isnan(empty['WT']['dice']) and empty['WT']['n_dice'] == 0
    with pytest.raises(TypeError, match='list of per-case'):
        mean_brats_metrics(a)


@pytest.mark.parametrize('spacing', [(1, 1), (1, 0, 1), (1, -1, 1),
                                     (1, math.nan, 1), (1, math.inf, 1),
                                     'abc', None])
def test_bad_spacing(spacing):
    with pytest.raises(ValueError, match='`spacing` should be 3 positive'):
        compute_brats_metrics(EMPTY, EMPTY, spacing=spacing)


def test_bad_arguments():
    with pytest.raises(ValueError, match='same shape'):
        compute_brats_metrics(EMPTY, EMPTY[:-1])
    with pytest.raises(ValueError, match=r'\(X, Y, Z\)'):
        compute_brats_metrics(EMPTY[0], EMPTY[0])
    with pytest.raises(ValueError, match='`convention` should be one of'):
        compute_brats_metrics(EMPTY, EMPTY, convention='brats2021')
    with pytest.raises(ValueError, match='`hd95_mode` should be one of'):
        compute_brats_metrics(EMPTY, EMPTY, hd95_mode='mean')
    with pytest.raises(ValueError, match='`label_scheme`'):
        compute_brats_metrics(EMPTY, EMPTY, label_scheme='brats2019')
    with pytest.raises(ValueError, match='`backend` should be one of'):
        hd95(ED_ONLY > 0, ED_ONLY > 0, backend='cuda')
    with pytest.raises(ValueError, match='`mode` should be one of'):
        hd95(ED_ONLY > 0, ED_ONLY > 0, mode='mean')
    bad = ED_ONLY.copy()
    bad[0, 0, 0] = 3  # not a BraTS 2020 label
    with pytest.raises(InputError):
        compute_brats_metrics(bad, ED_ONLY)


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('mode', ['max', 'pooled'])
def test_kdtree_equals_scipy_edt(seed, mode):
    # the k-d tree reproduces the EDT's float64 values exactly, also
    # under anisotropic spacing
    rng = np.random.default_rng(seed)
    gt = _blob(rng, (24, 24, 24), level=rng.uniform(0.5, 0.9))
    pred = _blob(rng, (24, 24, 24), level=rng.uniform(0.5, 0.9))
    spacing = tuple(rng.choice([0.5, 0.8, 0.9375, 1.0, 1.2, 3.0], 3))
    assert hd95(pred, gt, spacing, mode, backend='kdtree') == \
        hd95(pred, gt, spacing, mode, crop=False, backend='scipy')


def test_auto_switches_to_edt_for_speckle(monkeypatch):
    import mmseg_ext.evaluation.brats_metrics as module
    rng = np.random.default_rng(4)
    gt = rng.random((20, 20, 20)) < 0.3  # all surface
    pred = _ball(gt.shape, (10, 10, 10), 6)
    used = []
    real = module._distance_to
    monkeypatch.setattr(module, '_distance_to',
                        lambda *a: used.append(a[2]) or real(*a))
    value = hd95(pred, gt, (1, 1, 1), 'pooled')
    assert used == ['scipy', 'scipy']
    assert value == hd95(pred, gt, (1, 1, 1), 'pooled', backend='kdtree')
    used.clear()
    # a ball of radius 6 has 18 % of its box on the surface: EDT at 15 %,
    # the tree at 50 %
    hd95(pred, np.roll(pred, 2, 0), (1, 1, 1))
    assert used == ['scipy', 'scipy']
    used.clear()
    monkeypatch.setattr(module, 'KDTREE_MAX_SURFACE_FRACTION', 0.5)
    hd95(pred, np.roll(pred, 2, 0), (1, 1, 1))
    assert used == []


def test_region_entry_point_equals_labels():
    gt = _case()
    pred = np.roll(gt, 2, axis=1)
    res = compute_brats_metrics(pred, gt, (1, 1, 2))
    regions = [np.stack([v > 0, (v == 1) | (v == 4), v == 4])
               for v in (pred, gt)]
    assert evaluation.compute_region_metrics(*regions, (1, 1, 2)) == res
    assert evaluation.compute_region_metrics(
        *[r.astype(np.uint8) for r in regions], (1, 1, 2)) == res
    with pytest.raises(ValueError, match=r'\(3, X, Y, Z\)'):
        evaluation.compute_region_metrics(regions[0][:2], regions[1][:2])
