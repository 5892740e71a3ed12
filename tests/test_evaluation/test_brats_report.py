# Copyright (c) mmseg_ext contributors. All rights reserved.
import copy
import csv
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from mmseg_ext.datasets.brats.nifti import write_nifti
from mmseg_ext.evaluation.brats_report import (REPORT_CSV_COLUMNS,
                                               TumourReportError,
                                               count_components, load_atlas,
                                               read_atlas_names,
                                               read_tumour_report,
                                               region_row, tumour_report,
                                               validate_tumour_report,
                                               write_reports_csv,
                                               write_tumour_report)
from mmseg_ext.utils.errors import InputError


def _regions(shape, *boxes):
    reg = np.zeros((3, ) + shape, bool)
    for k, box in enumerate(boxes):
        reg[k][box] = True
    return reg


def _report(regions, affine=np.eye(4), spacing=(1, 1, 1), **kwargs):
    return tumour_report(regions, affine, spacing, 'case_1', 'brats2020',
                         **kwargs)


def test_ellipsoid_volume_anisotropic_spacing():
    spacing = (0.8, 1.1, 1.9)
    a, b, c = 21.0, 15.0, 27.0  # semi-axes in mm
    shape = (60, 32, 32)
    grid = np.indices(shape).astype(float)
    centre = [(s - 1) / 2 for s in shape]
    r2 = sum(((g - m) * s / ax)**2 for g, m, s, ax in zip(
        grid, centre, spacing, (a, b, c)))
    mask = r2 <= 1
    rep = _report(np.stack([mask] * 3), spacing=spacing)
    expected = 4 / 3 * math.pi * a * b * c / 1000
    wt = rep['regions']['WT']
    assert wt['volume_cm3'] == pytest.approx(expected, rel=0.01)
    assert wt['voxels'] == int(mask.sum())
    assert wt['components'] == 1
    assert wt['centroid_voxel'] == pytest.approx(centre)


def test_components_26_connectivity():
    mask = np.zeros((12, 12, 12), bool)
    mask[1:3, 1:3, 1:3] = True
    mask[3, 3, 3] = True  # touches the first blob by a corner only
    mask[8:10, 8:10, 8:10] = True
    mask[6, 0, 11] = True
    assert count_components(mask) == 3
    assert count_components(mask) == ndimage.label(
        mask, np.ones((3, 3, 3)))[1]
    assert count_components(np.zeros_like(mask)) == 0
    rep = _report(np.stack([mask, mask, np.zeros_like(mask)]))
    assert rep['regions']['WT']['components'] == 3
    assert rep['regions']['ET'] == dict(
        voxels=0, volume_cm3=0.0, components=0, centroid_voxel=None,
        centroid_world=None, bbox_voxel=None, hemisphere=None, atlas=None)


def test_centroid_world_bbox_through_affine():
    # rotation about z by 90 degrees, anisotropic scaling, translation
    affine = np.array([[0.0, -1.2, 0, 50], [0.9, 0, 0, -20],
                       [0, 0, 2.5, 7], [0, 0, 0, 1]])
    reg = _regions((20, 16, 10), np.s_[2:6, 4:10, 1:4], np.s_[3, 5, 2],
                   np.s_[0:0])
    rep = _report(reg, affine=affine, spacing=(0.9, 1.2, 2.5))
    wt = rep['regions']['WT']
    assert wt['centroid_voxel'] == pytest.approx([3.5, 6.5, 2.0])
    assert wt['centroid_world'] == pytest.approx(
        [50 - 1.2 * 6.5, -20 + 0.9 * 3.5, 7 + 2.5 * 2])
    assert wt['bbox_voxel'] == [[2, 4, 1], [6, 10, 4]]
    assert wt['volume_cm3'] == pytest.approx(4 * 6 * 3 * 0.9 * 1.2 * 2.5 /
                                             1000)
    assert rep['regions']['TC']['bbox_voxel'] == [[3, 5, 2], [4, 6, 3]]
    assert rep['affine'] == affine.tolist()


def test_hemisphere_flips_with_affine():
    shape = (20, 10, 10)
    high_i = _regions(shape, np.s_[14:18, 2:5, 2:5], np.s_[14:18, 2:5, 2:5],
                      np.s_[2:18, 2:5, 2:5])
    ras = np.eye(4)  # +i is +x: the patient's right
    las = np.diag([-1.0, 1, 1, 1])  # BraTS-like: +i is the patient's left
    las[0, 3] = 19
    assert _report(high_i, ras)['regions']['WT']['hemisphere'] == 'right'
    assert _report(high_i, las)['regions']['WT']['hemisphere'] == 'left'
    # spans both sides: bilateral either way
    assert _report(high_i, ras)['regions']['ET']['hemisphere'] == 'bilateral'
    assert _report(high_i, las)['regions']['ET']['hemisphere'] == 'bilateral'
    # a brain mask moves the midline: brain in i 10..20 -> midline 14.5
    brain = np.zeros(shape, bool)
    brain[10:20] = True
    rep = _report(high_i, ras, brain_mask=brain)
    assert rep['regions']['WT']['hemisphere'] == 'bilateral'  # 14,15 | 16,17


def test_atlas_fractions_and_names(tmp_path):
    shape = (10, 10, 10)
    atlas = np.zeros(shape, np.int16)
    atlas[:5] = 3
    atlas[5:, :5] = 7
    reg = _regions(shape, np.s_[3:7, 2:8, 0:1], np.s_[0:2, 0:1, 0:1],
                   np.s_[9, 9, 9])
    names = {3: 'Frontal', 7: 'Temporal'}
    rep = _report(reg, atlas=atlas, atlas_names=names)
    # WT: 24 voxels; i 3,4 -> 3 (12); i 5,6 & j 2..4 -> 7 (6); rest 0
    assert rep['regions']['WT']['atlas'] == [
        dict(label=3, name='Frontal', fraction=0.5),
        dict(label=7, name='Temporal', fraction=0.25)]
    assert rep['regions']['ET']['atlas'] == []  # on label 0 only
    # names from JSON (object or list) and CSV; atlas from a NIfTI
    (tmp_path / 'n.json').write_text(json.dumps({'3': 'Frontal',
                                                 '7': 'Temporal'}))
    (tmp_path / 'l.json').write_text(json.dumps(['bg', 'a', 'b', 'Frontal']))
    (tmp_path / 'n.csv').write_text('label,name\n3,Frontal\n7,Temporal\n')
    assert read_atlas_names(str(tmp_path / 'n.json')) == names
    assert read_atlas_names(str(tmp_path / 'n.csv')) == names
    assert read_atlas_names(str(tmp_path / 'l.json'))[3] == 'Frontal'
    path = str(tmp_path / 'atlas.nii.gz')
    write_nifti(path, atlas, np.eye(4))
    assert _report(reg, atlas=path, atlas_names=str(
        tmp_path / 'n.csv'))['regions'] == rep['regions']
    # unnamed labels are named by their number
    assert _report(reg, atlas=atlas)['regions']['WT']['atlas'][1][
        'name'] == '7'


def test_atlas_grid_mismatch_names_file(tmp_path):
    path = str(tmp_path / 'atlas.nii.gz')
    write_nifti(path, np.zeros((10, 10, 10), np.uint8), np.eye(4))
    reg = _regions((10, 10, 10), np.s_[1:3, 1:3, 1:3], np.s_[0:0],
                   np.s_[0:0])
    shifted = np.eye(4)
    shifted[0, 3] = 1
    with pytest.raises(TumourReportError, match='atlas.nii.gz.*affine'):
        _report(reg, shifted, atlas=path)
    with pytest.raises(TumourReportError, match=r'atlas.nii.gz.*\(10, 10, 9'):
        _report(reg[..., :9], atlas=path)
    with pytest.raises(TumourReportError, match='integer label volume'):
        load_atlas(np.zeros((4, 4, 4)) + 0.5)


@pytest.mark.parametrize('content,match', [
    ('label,title\n1,a\n', 'line 1'),
    ('label,name\nx,a\n', 'line 2'),
    ('label,name\n1,a,b\n', 'line 2'),
])
def test_atlas_names_errors(tmp_path, content, match):
    path = tmp_path / 'names.csv'
    path.write_text(content)
    with pytest.raises(TumourReportError, match=f'names.csv: {match}'):
        read_atlas_names(str(path))
    with pytest.raises(TumourReportError, match=r"key '-1'"):
        read_atlas_names({'-1': 'x'})


def _sample_report():
    reg = _regions((12, 10, 8), np.s_[2:8, 2:6, 1:5], np.s_[3:6, 3:5, 2:4],
                   np.s_[0:0])
    metrics = {'WT': {'dice': 0.9, 'hd95': 2.0},
               'TC': {'dice': 0.5, 'hd95': math.nan},
               'ET': {'dice': 1.0, 'hd95': 0.0}}
    atlas = np.zeros((12, 10, 8), np.uint8)
    atlas[5:] = 2
    return _report(reg, spacing=(1, 1, 1), metrics=metrics, atlas=atlas,
                   atlas_names={2: 'Occipital'})


def test_json_round_trip_and_reports_csv(tmp_path):
    rep = _sample_report()
    assert rep['metrics']['TC']['hd95'] is None  # NaN -> null
    path = str(tmp_path / 'reports' / 'case_1.json')
    write_tumour_report(path, rep)
    assert read_tumour_report(path) == rep
    other = copy.deepcopy(rep)
    other['case_id'] = 'case_0'
    write_reports_csv(str(tmp_path / 'reports.csv'), [rep, other])
    with open(tmp_path / 'reports.csv') as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == REPORT_CSV_COLUMNS
    assert [(r['case_id'], r['region']) for r in rows] == [
        (c, r) for c in ('case_0', 'case_1') for r in ('WT', 'TC', 'ET')]
    wt = rows[3]
    assert int(wt['voxels']) == 96 and float(wt['dice']) == 0.9
    assert (wt['bbox_i0'], wt['bbox_k1'], wt['hemisphere']) == ('2', '5',
                                                                'bilateral')
    assert (wt['atlas_top'], float(wt['atlas_top_fraction'])) == (
        'Occipital', 0.5)
    assert rows[4]['hd95'] == '' and rows[5]['centroid_x'] == ''


@pytest.mark.parametrize('mutate,field', [
    (lambda r: r.pop('regions'), "'regions'"),
    (lambda r: r.update(case_id=3), "'case_id'"),
    (lambda r: r.update(shape=[1, 2]), "'shape'"),
    (lambda r: r.update(source='model'), "'source'"),
    (lambda r: r['metrics']['WT'].update(dice=1.5), "'metrics.WT.dice'"),
    (lambda r: r['regions']['TC'].update(voxels=-1), "'regions.TC.voxels'"),
    (lambda r: r['regions']['WT'].update(bbox_voxel=[[0, 0, 0], [99, 1, 1]]),
     "'regions.WT.bbox_voxel'"),
    (lambda r: r['regions']['WT'].update(hemisphere='up'),
     "'regions.WT.hemisphere'"),
    (lambda r: r['regions']['ET'].update(centroid_voxel=[1, 2, 3]),
     "'regions.ET.centroid_voxel'"),
    (lambda r: r['regions']['WT']['atlas'][0].update(fraction=2),
     r"'regions.WT.atlas\[0\].fraction'"),
])
def test_read_tumour_report_errors(tmp_path, mutate, field):
    rep = _sample_report()
    mutate(rep)
    path = tmp_path / 'r.json'
    path.write_text(json.dumps(rep))
    with pytest.raises(TumourReportError, match=f'r.json: field {field}'):
        read_tumour_report(str(path))


def test_read_tumour_report_bad_files(tmp_path):
    with pytest.raises(TumourReportError, match='missing.json'):
        read_tumour_report(str(tmp_path / 'missing.json'))
    (tmp_path / 'a.json').write_text('{"case_id": ')
    with pytest.raises(TumourReportError,
                       match=r'a.json: line 1, column 13: tumour report'):
        read_tumour_report(str(tmp_path / 'a.json'))
    (tmp_path / 'b.json').write_text(json.dumps(_sample_report()).replace(
        '2.0', 'NaN', 1))
    with pytest.raises(TumourReportError, match='b.json.*NaN'):
        read_tumour_report(str(tmp_path / 'b.json'))
    assert issubclass(TumourReportError, InputError)


@pytest.mark.parametrize('mutate,field', [
    # the parts must agree: a region with voxels has a centroid and a side
    (lambda r: r['regions']['WT'].update(centroid_world=None),
     'regions.WT.centroid_world'),
    (lambda r: r['regions']['TC'].update(hemisphere=None),
     'regions.TC.hemisphere'),
    (lambda r: r['regions']['ET'].update(hemisphere='left'),
     'regions.ET.hemisphere'),
    (lambda r: r['regions']['WT'].update(bbox_voxel=[[0, 0, 0], [1, 1]]),
     'regions.WT.bbox_voxel[1]'),
    # exactly the format's keys in metrics, regions and atlas entries
    (lambda r: r['metrics'].update(mean={'dice': 0.5, 'hd95': 1.0}),
     'metrics'),
    (lambda r: r['metrics']['ET'].pop('hd95'), 'metrics.ET'),
    (lambda r: r['regions'].update(NCR=r['regions']['ET']), 'regions'),
    (lambda r: r['regions']['WT']['atlas'][0].update(side='L'),
     'regions.WT.atlas[0]'),
    (lambda r: r['regions']['WT']['atlas'][0].update(label='2'),
     'regions.WT.atlas[0].label'),
    (lambda r: r['regions']['WT'].update(atlas={}), 'regions.WT.atlas'),
    # case ids the database can hold (no surrounding spaces, <= 200)
    (lambda r: r.update(case_id=' case_1'), 'case_id'),
    (lambda r: r.update(case_id='c' * 201), 'case_id'),
    (lambda r: r.update(label_scheme=['brats2020']), 'label_scheme'),
    (lambda r: r['affine'][2].append(1), 'affine[2]'),
    (lambda r: r.update(spacing=[1, 1, 10**400]), 'spacing'),
    (lambda r: r.update(spacing=[1, 0, 1]), 'spacing'),
    (lambda r: r['regions']['TC'].update(volume_cm3=True),
     'regions.TC.volume_cm3'),
    (lambda r: r['regions']['TC'].pop('components'),
     'regions.TC.components'),
])
def test_validate_tumour_report_errors(mutate, field):
    rep = _sample_report()
    mutate(rep)
    with pytest.raises(TumourReportError) as info:
        validate_tumour_report(rep, 'report 3 (case_1)')
    assert (info.value.path, info.value.where) == ('report 3 (case_1)',
                                                   f'field {field!r}')


def test_validate_tumour_report_clean_copy():
    rep = _sample_report()
    assert validate_tumour_report(rep) == rep
    given = copy.deepcopy(rep)
    given.update(spacing=(1, 2, 3), extra='ignored')
    given['regions']['WT']['note'] = 'ignored'
    out = validate_tumour_report(given)
    assert out['spacing'] == [1.0, 2.0, 3.0]
    assert all(isinstance(v, float) for v in out['spacing'])
    assert 'extra' not in out and 'note' not in out['regions']['WT']
    assert out['regions']['WT']['bbox_voxel'] == [[2, 2, 1], [8, 6, 5]]
    out['regions']['WT']['atlas'][0]['name'] = 'changed'
    assert given['regions']['WT']['atlas'][0]['name'] == 'Occipital'
    with pytest.raises(TumourReportError, match=r'^x.json: field \'\(top'):
        validate_tumour_report([rep], 'x.json')


def test_read_tumour_report_non_finite(tmp_path):
    rep = _sample_report()
    path = tmp_path / 'n.json'
    path.write_text(json.dumps(rep).replace('0.9', 'Infinity', 1))
    with pytest.raises(TumourReportError) as info:
        read_tumour_report(str(path))
    assert info.value.where == "field 'metrics.WT.dice'"
    assert 'got Infinity' in str(info.value)
    # NaN where the format ignores the key is still not JSON
    path.write_text(json.dumps(dict(rep, extra=math.nan)))
    with pytest.raises(TumourReportError, match=r'n.json: \(JSON\): NaN'):
        read_tumour_report(str(path))


def test_region_row_is_the_csv_row():
    rep = _sample_report()
    row = region_row(rep, 'WT')
    assert tuple(row) == REPORT_CSV_COLUMNS
    assert (row['case_id'], row['region'], row['bbox_i1'], row['centroid_x'],
            row['atlas_top'], row['dice']) == ('case_1', 'WT', 8, 4.5,
                                               'Occipital', 0.9)
    empty = region_row(rep, 'ET')
    assert empty['voxels'] == 0 and empty['hd95'] == 0.0
    assert all(empty[c] is None for c in REPORT_CSV_COLUMNS[5:-4])


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 500) |
    st.floats(-10, 1e3, allow_nan=False) | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.text(max_size=5), kids, max_size=4), max_leaves=8)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k, ))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i, ))


_SAMPLE = _sample_report()
_ALL_PATHS = [p for p in _paths(_SAMPLE) if p]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(_ALL_PATHS), _JSON), min_size=1,
                max_size=3))
def test_reader_accepts_or_names_the_problem(tmp_path, edits):
    rep = copy.deepcopy(_SAMPLE)
    for path, value in edits:
        node = rep
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    file = tmp_path / 'h.json'
    file.write_text(json.dumps(rep))
    try:
        out = read_tumour_report(str(file))
    except TumourReportError as err:
        assert str(err).startswith(str(file))
    else:
        assert out == rep


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.text(max_size=4), st.text(max_size=6)),
                     max_size=4),
       as_json=st.booleans())
def test_atlas_names_reader_property(tmp_path, rows, as_json):
    if as_json:
        path = tmp_path / 'names.json'
        path.write_text(json.dumps(dict(rows)))
    else:
        path = tmp_path / 'names.csv'
        with open(path, 'w', newline='') as f:
            csv.writer(f).writerows([('label', 'name')] + rows)
    try:
        names = read_atlas_names(str(path))
    except TumourReportError as err:
        assert str(err).startswith(str(path))
    else:
        assert all(isinstance(k, int) and k >= 0 for k in names)
        assert all(isinstance(v, str) for v in names.values())
        assert len(names) <= len(rows)


def test_atlas_names_csv_with_nul_byte(tmp_path):
    path = tmp_path / 'names.csv'
    path.write_text('label,name\n1,a\x00b\n')
    # Python >= 3.11's csv reads NUL; older ones raise csv.Error, which
    # becomes the named error
    assert read_atlas_names(str(path)) == {1: 'a\x00b'}
