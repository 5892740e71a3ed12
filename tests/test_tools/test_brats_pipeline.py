# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTS end to end, as the README runs it: generated cases → slice cache →
``tools/train.py`` (2 iterations, ``BraTSMetric`` on the validation fold,
best checkpoint by ``mean_dice``) → ``tools/test.py`` writing NIfTI
predictions, tumour reports, overlays and the per-case CSV → the database
→ the clinical cross-check.

The per-case CSV is checked against :func:`compute_brats_metrics` run
afresh on the written NIfTI prediction and the case's own ``seg`` file, so
the slice reassembly, the label painting of the output and the metric are
tested together on the files a user gets.
"""
import csv
import glob
import os.path as osp

import nibabel as nib
import numpy as np
import pytest

from mmseg_ext.apis.brats_crosscheck import crosscheck, read_clinical_csv
from mmseg_ext.apis.brats_db import export_reports, load_report_dir, read_run
from mmseg_ext.datasets.brats import find_brats_cases, read_brats_index
from mmseg_ext.datasets.brats.convert import convert_brats
from mmseg_ext.datasets.generators.brats import (
    generate_brats, generate_brats_atlas, generate_brats_clinical)
from mmseg_ext.evaluation import compute_brats_metrics
from mmseg_ext.evaluation.brats_report import read_tumour_report

CONFIG = 'tests/test_tools/configs/tiny_unet_brats-32x32.py'
SIZE = (32, 32, 12)


@pytest.fixture(scope='module')
def brats(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('brats_e2e'))
    cases = generate_brats(root, 4, SIZE, 'brats2020', seed=3, lateral=True)
    atlas = generate_brats_atlas(
        osp.join(root, 'atlas.nii.gz'), SIZE, cases[0]['affine'])
    clinical = osp.join(root, 'clinical.csv')
    generate_brats_clinical(cases, clinical)
    convert_brats(root, num_folds=2, show_progress=False)
    return dict(root=root, atlas=atlas, clinical=clinical)


def _read_csv(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def test_generate_convert_train_test_export_crosscheck(brats, tools,
                                                       tmp_path):
    root = brats['root']
    work = str(tmp_path / 'work')
    out = str(tmp_path / 'out')
    data = [f'{k}_dataloader.dataset.data_root={root}'
            for k in ('train', 'val', 'test')]

    proc = tools.run([
        tools.python, 'tools/train.py', CONFIG, '--work-dir', work,
        '--cfg-options', *data
    ], timeout=300)
    assert proc.returncode == 0, tools.describe(proc)
    best = glob.glob(osp.join(work, 'best_mean_dice_iter_2.pth'))
    assert best, tools.describe(proc)

    proc = tools.run([
        tools.python, 'tools/test.py', CONFIG, best[0], '--work-dir', work,
        '--cfg-options', *data, f'test_evaluator.out_dir={out}',
        f"test_evaluator.atlas={brats['atlas']['atlas']}",
        f"test_evaluator.atlas_names={brats['atlas']['names_path']}"
    ], timeout=300)
    assert proc.returncode == 0, tools.describe(proc)

    index = read_brats_index(osp.join(root, 'brats_slices', 'index.json'))
    with open(osp.join(root, 'brats_slices', 'splits',
                       'fold0_val.txt')) as f:
        val_ids = sorted(line.strip() for line in f if line.strip())
    assert len(val_ids) == 2
    sources = {c.case_id: c for c in find_brats_cases(root)}

    rows = _read_csv(osp.join(out, 'per_case.csv'))
    assert [r['case_id'] for r in rows] == val_ids
    assert list(rows[0]) == ['case_id', 'WT_dice', 'TC_dice', 'ET_dice',
                             'WT_hd95', 'TC_hd95', 'ET_hd95']
    for row in rows:
        case_id = row['case_id']
        pred_img = nib.load(osp.join(out, 'nifti', f'{case_id}.nii.gz'))
        seg_img = nib.load(sources[case_id].seg)
        # the input's grid: same shape and affine as the case's seg file
        assert pred_img.shape == seg_img.shape == SIZE
        np.testing.assert_allclose(pred_img.affine, seg_img.affine)
        pred = np.asarray(pred_img.dataobj)
        assert set(np.unique(pred)) <= {0, 1, 2, 4}
        expected = compute_brats_metrics(
            pred, np.asarray(seg_img.dataobj),
            spacing=index['cases'][case_id]['spacing'])
        for region, values in expected.items():
            for key, value in values.items():
                assert float(row[f'{region}_{key}']) == pytest.approx(
                    value, abs=1e-4), (case_id, region, key)

        report = read_tumour_report(
            osp.join(out, 'reports', f'{case_id}.json'))
        assert report['case_id'] == case_id
        assert report['regions']['WT']['voxels'] == int((pred > 0).sum())
        assert report['metrics']['WT']['dice'] == pytest.approx(
            float(row['WT_dice']), abs=1e-4)
        assert glob.glob(osp.join(out, 'overlays', f'{case_id}_z*.png'))
    assert len(_read_csv(osp.join(out, 'reports.csv'))) == 3 * len(val_ids)

    db = f"sqlite:///{tmp_path / 'brats.sqlite'}"
    run = dict(name='tiny-unet', model='UNet', config=CONFIG,
               checkpoint=best[0], label_scheme='brats2020',
               convention='brats2020')
    reports = load_report_dir(out)
    export_reports(db, run, reports)
    export_reports(db, run, reports)  # a re-run replaces, no duplicates
    stored = read_run(db, 'tiny-unet')
    assert sorted(c['case_id'] for c in stored['cases']) == val_ids
    assert len(stored['regions']) == 3 * len(val_ids)

    checks = crosscheck(db, 'tiny-unet', read_clinical_csv(brats['clinical']))
    by_case = {c['case_id']: c for c in checks}
    # the clinical table holds every labelled case; the run scored the
    # validation fold
    assert {c for c, r in by_case.items() if r['status'] == 'matched'} == \
        set(val_ids)
    for case_id in val_ids:
        seg_side = by_case[case_id]['segmented_hemisphere']
        assert seg_side == reports[val_ids.index(case_id)]['regions'][
            'WT']['hemisphere']
