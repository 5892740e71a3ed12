# Copyright (c) mmseg_ext contributors. All rights reserved.
import csv
import json
import math
import os
import os.path as osp
from itertools import chain, zip_longest

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from brats_cache_helper import make_entry, samples
from mmseg.registry import METRICS

import mmseg_ext.evaluation.metrics.brats_metric as module
from mmseg_ext.datasets.brats.labels import (labels_to_regions,
                                             regions_to_labels)
from mmseg_ext.evaluation.brats_metrics import compute_region_metrics
from mmseg_ext.evaluation.brats_report import read_tumour_report
from mmseg_ext.utils.errors import InputError

SHAPE = (20, 18, 12)


def _labels(center, r_wt=5, r_tc=3, r_et=1.5, et=True):
    grid = np.indices(SHAPE)
    d = np.sqrt(sum((g - c)**2 for g, c in zip(grid, center)))
    lab = np.zeros(SHAPE, np.uint8)
    lab[d <= r_wt] = 2
    lab[d <= r_tc] = 1
    if et:
        lab[(d <= r_tc) & (d > r_et)] = 4
    return lab


def _metric(**kwargs):
    kwargs.setdefault('overlays', None)
    metric = METRICS.build(dict(type='BraTSMetric', **kwargs))
    metric.dataset_meta = {}
    return metric


@pytest.fixture
def two_cases(tmp_path):
    """Case a (tumour reaching outside the brain slices), case b."""
    gt_a = _labels((9, 8, 6))
    gt_b = _labels((10, 9, 5), et=True)
    brain = np.zeros(SHAPE, bool)
    brain[1:-1, 1:-1, 2:10] = True  # slice_range [2, 10)
    ea = make_entry(str(tmp_path), 'case_a', gt_a, spacing=(1, 1, 2),
                    brain=brain, slice_range=[2, 10])
    eb = make_entry(str(tmp_path), 'case_b', gt_b, seed=1)
    pred_a = labels_to_regions(np.roll(gt_a, 1, axis=0))
    pred_b = labels_to_regions(np.roll(gt_b, -1, axis=1))
    return tmp_path, (ea, eb), (gt_a, gt_b), (pred_a, pred_b)


def _expected(entry, gt, pred):
    z0, z1 = entry['slice_range']
    kept = np.zeros_like(pred)
    kept[..., z0:z1] = pred[..., z0:z1]
    return kept, compute_region_metrics(kept, labels_to_regions(gt),
                                        entry['spacing'])


def test_reassembly_metrics_and_outputs(two_cases):
    tmp, entries, gts, preds = two_cases
    out = str(tmp / 'out')
    metric = _metric(out_dir=out, per_case_csv=str(tmp / 'pc.csv'),
                     overlays=dict(num_largest=2, slices=[0]))
    held = []
    for entry, pred in zip(entries, preds):
        for s in samples(entry, pred):
            metric.process({}, [s])
            held.append(len(metric._cases))
    assert max(held) == 1 and metric._cases == {}  # one case at a time
    assert sum(isinstance(r, dict) for r in metric.results) == 2
    res = metric.evaluate(len(metric.results))

    expected = [_expected(e, g, p) for e, g, p in zip(entries, gts, preds)]
    a, b = expected[0][1], expected[1][1]
    assert entries[0]['slice_range'] == [2, 10]
    assert not np.array_equal(expected[0][0], preds[0])  # slices cut
    assert res['ET_dice'] == pytest.approx(
        (a['ET']['dice'] + b['ET']['dice']) / 2)
    assert res['WT_hd95'] == pytest.approx(
        (a['WT']['hd95'] + b['WT']['hd95']) / 2)
    assert res['mean_dice'] == pytest.approx(
        np.mean([res[f'{r}_dice'] for r in ('WT', 'TC', 'ET')]))
    assert list(res) == ['WT_dice', 'TC_dice', 'ET_dice', 'mean_dice',
                         'WT_hd95', 'TC_hd95', 'ET_hd95', 'mean_hd95']

    # NIfTI: labels of the reassembled volume, the entry's affine and the
    # source's header
    for entry, (kept, _) in zip(entries, expected):
        img = nib.load(osp.join(out, 'nifti', f'{entry["case_id"]}.nii.gz'))
        np.testing.assert_array_equal(np.asarray(img.dataobj),
                                      regions_to_labels(kept))
        assert np.asarray(img.dataobj).dtype == np.uint8
        np.testing.assert_allclose(img.affine, entry['affine'])
        src = nib.load(entry['sources']['flair']).header
        assert img.header.get_zooms() == src.get_zooms()
        assert img.header['qform_code'] == src['qform_code']
        np.testing.assert_array_equal(
            labels_to_regions(np.asarray(img.dataobj)), kept)

    # per-case CSV (both copies), wide, sorted, nothing else
    for path in (tmp / 'pc.csv', osp.join(out, 'per_case.csv')):
        with open(path) as f:
            rows = list(csv.reader(f))
        assert rows[0] == ['case_id', 'WT_dice', 'TC_dice', 'ET_dice',
                           'WT_hd95', 'TC_hd95', 'ET_hd95']
        assert [r[0] for r in rows[1:]] == ['case_a', 'case_b']
        assert [float(v) for v in rows[1][1:]] == [
            a[r][k] for k in ('dice', 'hd95') for r in ('WT', 'TC', 'ET')]

    # reports, CSV of all cases, overlays of the chosen slices
    rep = read_tumour_report(osp.join(out, 'reports', 'case_a.json'))
    assert rep['metrics']['ET']['dice'] == pytest.approx(a['ET']['dice'])
    assert rep['regions']['WT']['voxels'] == int(expected[0][0][0].sum())
    assert rep['source'] == 'prediction' and rep['spacing'] == [1, 1, 2]
    with open(osp.join(out, 'reports.csv')) as f:
        assert len(list(csv.reader(f))) == 1 + 2 * 3
    for i, entry in enumerate(entries):
        area = expected[i][0][0].sum((0, 1)) + labels_to_regions(
            gts[i])[0].sum((0, 1))
        top2 = np.argsort(-area, kind='stable')[:2].tolist()
        cid = entry['case_id']
        names = sorted(n for n in os.listdir(osp.join(out, 'overlays'))
                       if n.startswith(cid))
        assert names == [f'{cid}_z{z:03d}.png' for z in sorted({0, *top2})]
    import cv2
    png = cv2.imread(osp.join(out, 'overlays', names[-1]))
    assert png.shape == (18 + 2 * SHAPE[0], 2 * 2 * SHAPE[1], 3)  # gt|pred


def _interleave(*parts):
    """mmengine's collect_results order."""
    return [r for r in chain.from_iterable(zip_longest(*parts))
            if r is not None]


def test_ddp_interleaved_halves_merge(two_cases, monkeypatch):
    tmp, entries, gts, preds = two_cases
    all_samples = [s for e, p in zip(entries, preds) for s in samples(e, p)]
    single = _metric()
    single.process({}, all_samples)
    expected = single.compute_metrics(single.results)

    monkeypatch.setattr(module, 'get_world_size', lambda: 2)
    ranks = [_metric(out_dir=str(tmp / 'ddp')), _metric()]
    padded = all_samples + all_samples[:len(all_samples) % 2]
    for rank, metric in enumerate(ranks):
        for s in padded[rank::2]:
            metric.process({}, [s])
        assert len(metric._cases) == 2  # nothing finished on a rank
        metric.flush_partial()
        assert len(metric.results) == len(padded) // 2
        assert all(isinstance(r, dict) and 'bits' in r
                   for r in metric.results)
    merged = _interleave(ranks[0].results, ranks[1].results)
    assert ranks[0].compute_metrics(merged[:len(all_samples)]) == expected
    # de-duplicated by z even if the padding is not cut
    assert ranks[0].compute_metrics(merged) == expected
    assert osp.isfile(str(tmp / 'ddp' / 'nifti' / 'case_b.nii.gz'))


def test_incomplete_case_skipped_with_warning(two_cases, monkeypatch):
    _, entries, _, preds = two_cases
    monkeypatch.setattr(module, 'get_world_size', lambda: 2)
    metric = _metric()
    ss = samples(entries[1], preds[1])
    metric.process({}, samples(entries[0], preds[0]) + ss[:-1])
    metric.flush_partial()
    res = metric.compute_metrics(metric.results)
    _, only_a = _expected(entries[0], two_cases[2][0], preds[0])
    assert res['ET_dice'] == pytest.approx(only_a['ET']['dice'])


def test_ground_truth_from_seg_nifti(tmp_path):
    gt = _labels((9, 8, 6))
    pred = labels_to_regions(np.roll(gt, 2, axis=2))
    e1 = make_entry(str(tmp_path / 'a'), 'c', gt)
    e2 = make_entry(str(tmp_path / 'b'), 'c', gt, label_npy=False)
    assert e2['label'] is None
    res = []
    for entry in (e1, e2):
        metric = _metric()
        metric.process({}, samples(entry, pred))
        res.append(metric.compute_metrics(metric.results))
    assert res[0] == res[1]
    assert res[0]['ET_dice'] == pytest.approx(
        compute_region_metrics(pred, labels_to_regions(gt))['ET']['dice'])


def test_unlabelled_case_outputs_only(tmp_path):
    gt = _labels((9, 8, 6))
    entry = make_entry(str(tmp_path), 'val_1', gt, labelled=False)
    out = str(tmp_path / 'out')
    metric = _metric(out_dir=out, overlays=dict(num_largest=1))
    metric.process({}, samples(entry, labels_to_regions(gt)))
    assert metric.compute_metrics(metric.results) == {}
    rep = read_tumour_report(osp.join(out, 'reports', 'val_1.json'))
    assert rep['metrics'] is None
    assert rep['regions']['ET']['voxels'] == int((gt == 4).sum())
    assert osp.isfile(osp.join(out, 'nifti', 'val_1.nii.gz'))
    with open(osp.join(out, 'per_case.csv')) as f:
        assert f.read().splitlines() == [
            'case_id,WT_dice,TC_dice,ET_dice,WT_hd95,TC_hd95,ET_hd95']
    # prediction only: one panel
    (name, ) = os.listdir(osp.join(out, 'overlays'))
    assert name == f'val_1_z{int(np.argmax((gt > 0).sum((0, 1)))):03d}.png'


def _block(x0, n):
    """Regions with an ET of exactly ``n`` voxels in a row at x0."""
    reg = np.zeros((3, ) + SHAPE, bool)
    reg[:2, 2:18, 2:16, 3:9] = True  # TC and WT
    reg[2, x0:x0 + n, 5, 5] = True
    return reg


def _et_cases(tmp_path, with_small_fp=True):
    """(entry, pred) pairs with known ET voxel counts and Dice."""
    cases = []
    base = regions_to_labels(_block(0, 0))
    # a: no ET in the ground truth, predicted ET of 3 voxels (a false
    # positive: Dice 0 kept, 1 removed)
    if with_small_fp:
        cases.append(('a', base, _block(4, 3)))
    # b: ET of 12 voxels, predicted 12 (10 right): Dice 10/12 kept
    gt_b = regions_to_labels(_block(4, 12))
    cases.append(('b', gt_b, _block(6, 12)))
    # c: ET of 6, predicted exactly: Dice 1 kept, 0 removed
    gt_c = regions_to_labels(_block(4, 6))
    cases.append(('c', gt_c, _block(4, 6)))
    return [(make_entry(str(tmp_path), cid, gt, slice_range=[0, SHAPE[2]]),
             pred) for cid, gt, pred in cases]


def _run(metric, cases):
    for entry, pred in cases:
        metric.process({}, samples(entry, pred))
    return metric.compute_metrics(metric.results)


def test_et_threshold_search_and_read_back(tmp_path):
    cases = _et_cases(tmp_path)
    out = str(tmp_path / 'val')
    res = _run(_metric(out_dir=out, search_et_threshold=True,
                       et_candidates=(2, 4, 8, 16)), cases)
    assert res['ET_dice'] == pytest.approx((0 + 10 / 12 + 1) / 3)
    with open(osp.join(out, 'brats_postprocess.json')) as f:
        chosen = json.load(f)
    # T=4 removes a's 3 voxels only (the best); T=8 also c's 6 voxels
    assert chosen['et_min_voxels'] == 4
    assert chosen['mean_et_dice'] == pytest.approx(
        {'none': (10 / 12 + 1) / 3, '2': (10 / 12 + 1) / 3,
         '4': (1 + 10 / 12 + 1) / 3, '8': (1 + 10 / 12) / 3,
         '16': 1 / 3})
    chosen_json = osp.join(out, 'brats_postprocess.json')
    post = _run(_metric(et_min_voxels=chosen_json), cases)
    assert post['ET_dice'] == pytest.approx((1 + 10 / 12 + 1) / 3)
    # TC and WT keep the removed ET voxels (ET became necrosis)
    assert post['TC_dice'] == res['TC_dice']
    assert post['WT_dice'] == res['WT_dice']


def test_et_threshold_kept_only_if_it_helps(tmp_path):
    out = str(tmp_path / 'val')
    _run(_metric(search_et_threshold=True, postprocess_json=osp.join(
        out, 'pp.json'), et_candidates=(4, 8)),
         _et_cases(tmp_path, with_small_fp=False))
    with open(osp.join(out, 'pp.json')) as f:
        assert json.load(f)['et_min_voxels'] is None
    metric = _metric(et_min_voxels=osp.join(out, 'pp.json'))
    assert metric.et_min_voxels is None


def test_missing_metainfo_key_names_it(two_cases):
    _, entries, _, preds = two_cases
    sample = samples(entries[0], preds[0])[0]
    del sample['case_slices']
    with pytest.raises(ValueError, match=r"'case_slices'.*PackMultiLabel"):
        _metric().process({}, [sample])


def test_bad_prediction_shape_and_arguments(two_cases, tmp_path):
    _, entries, _, preds = two_cases
    sample = samples(entries[0], preds[0])[0]
    sample['pred_sem_seg']['data'] = sample['pred_sem_seg']['data'][:, :-1]
    with pytest.raises(ValueError, match=r'\(3, 20, 18\)'):
        _metric().process({}, [sample])
    with pytest.raises(ValueError, match='`convention`'):
        _metric(convention='x')
    with pytest.raises(ValueError, match='`overlays`'):
        _metric(overlays=dict(modality='DWI'))
    with pytest.raises(ValueError, match='`et_min_voxels`'):
        _metric(et_min_voxels=-1)
    bad = tmp_path / 'pp.json'
    bad.write_text('{"et_min_voxels": "ten"}')
    with pytest.raises(InputError, match="pp.json: field 'et_min_voxels'"):
        _metric(et_min_voxels=str(bad))


def test_nan_convention_means_skip_nan(tmp_path):
    # ET empty in both: NaN under 'nan', left out of the mean
    gt = _labels((9, 8, 6), et=False)
    entry = make_entry(str(tmp_path), 'c', gt)
    metric = _metric(convention='nan')
    metric.process({}, samples(entry, labels_to_regions(gt)))
    res = metric.compute_metrics(metric.results)
    assert math.isnan(res['ET_dice']) and res['WT_dice'] == 1.0
    assert res['mean_dice'] == 1.0


@pytest.mark.parametrize('channels', [1, 2, 3, 4])
def test_brain_mask_bit_trick(channels):
    rng = np.random.default_rng(channels)
    image = rng.standard_normal((5, 6, 7, channels)).astype(np.float16)
    image[rng.random(image.shape) < 0.7] = 0
    image[0, 0, 0] = -0.0
    image[1, 1, 1, 0] = np.float16(6e-8)  # subnormal: nonzero
    expected = np.moveaxis(np.any(image != 0, axis=-1), 0, -1)
    np.testing.assert_array_equal(module._brain_mask(image), expected)


def test_through_mmengine_evaluator_with_seg_data_samples(two_cases):
    # what the Runner's test loop passes: SegDataSample with metainfo
    from mmengine.evaluator import Evaluator
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    _, entries, gts, preds = two_cases
    evaluator = Evaluator([dict(type='BraTSMetric', overlays=None)])
    size = 0
    for entry, pred in zip(entries, preds):
        for s in samples(entry, pred):
            ds = SegDataSample(metainfo=dict(
                case_id=s['case_id'], slice_index=s['slice_index'],
                case_slices=s['case_slices'], brats_case=s['brats_case']))
            ds.pred_sem_seg = PixelData(data=s['pred_sem_seg']['data'])
            evaluator.process([ds], {})
            size += 1
    res = evaluator.evaluate(size)
    (_, a), (_, b) = (_expected(e, g, p)
                      for e, g, p in zip(entries, gts, preds))
    assert res['TC_dice'] == pytest.approx(
        (a['TC']['dice'] + b['TC']['dice']) / 2)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=30), st.dictionaries(
    st.sampled_from(['et_min_voxels', 'x']),
    st.none() | st.booleans() | st.integers(-3, 3000) | st.floats(0, 9) |
    st.text(max_size=3)).map(json.dumps)))
def test_read_et_min_voxels_property(tmp_path, content):
    path = tmp_path / 'pp.json'
    path.write_text(content)
    try:
        value = module.read_et_min_voxels(str(path))
    except InputError as err:
        assert str(err).startswith(str(path))
    else:
        assert value is None or (type(value) is int and value >= 0)


def test_unnested_predictions_measured_as_written(two_cases):
    """Independent sigmoids: TC and ET fire where WT does not. The metric
    and the report describe the label volume written (TC and ET voxels
    count in WT), not the raw WT channel."""
    tmp, entries, gts, _ = two_cases
    entry, gt = entries[1], gts[1]
    pred = labels_to_regions(gt)
    pred[0] = False  # WT channel silent everywhere
    out = str(tmp / 'unnested')
    metric = _metric(out_dir=out)
    for s in samples(entry, pred):
        metric.process({}, [s])
    res = metric.evaluate(len(metric.results))
    written = np.asarray(nib.load(
        osp.join(out, 'nifti', 'case_b.nii.gz')).dataobj)
    nested = labels_to_regions(written)
    np.testing.assert_array_equal(nested[0], pred[1] | pred[2])
    expected = compute_region_metrics(nested, labels_to_regions(gt),
                                      entry['spacing'])
    assert res['WT_dice'] == pytest.approx(expected['WT']['dice'])
    assert 0 < res['WT_dice'] < 1  # TC ⊂ WT: partial overlap, not 0
    rep = read_tumour_report(osp.join(out, 'reports', 'case_b.json'))
    assert rep['regions']['WT']['voxels'] == int(nested[0].sum())
