# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Cross-check of stored BraTS tumour sites against a clinical table."""
import csv
import importlib.util
import os.path as osp

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from mmseg_ext.apis.brats_crosscheck import (ClinicalTableError, crosscheck,
                                             read_clinical_csv,
                                             read_clinical_table,
                                             write_crosscheck)
from mmseg_ext.apis.brats_db import export_reports


def _load_factory():
    path = osp.join(osp.dirname(osp.abspath(__file__)),
                    'brats_report_factory.py')
    spec = importlib.util.spec_from_file_location('brats_report_factory',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_factory = _load_factory()
make_report = _factory.make_report


def _write(path, text_):
    path.write_text(text_, encoding='utf-8')
    return str(path)


def test_read_clinical_csv(tmp_path):
    path = _write(tmp_path / 'c.csv',
                  '\ufeffcase_id,hospital,suspected_hemisphere,'
                  'suspected_region\n'
                  'a, X ,Left,left frontal\n'
                  '\n'
                  'b,Y,,\n'
                  'c,Z,BILATERAL, right parietal \n')
    got = read_clinical_csv(path)
    assert got == {
        'a': dict(case_id='a', suspected_hemisphere='left',
                  suspected_region='left frontal', place=2),
        'b': dict(case_id='b', suspected_hemisphere=None,
                  suspected_region=None, place=4),
        'c': dict(case_id='c', suspected_hemisphere='bilateral',
                  suspected_region='right parietal', place=5),
    }
    # Only one suspected column, under another name.
    path = _write(tmp_path / 'd.csv', 'patient,side\np1,right\n')
    assert read_clinical_csv(path, case_column='patient',
                             hemisphere_column='side')['p1'][
                                 'suspected_hemisphere'] == 'right'
    # A column named explicitly must exist.
    with pytest.raises(ClinicalTableError, match="no column 'lobe'"):
        read_clinical_csv(path, case_column='patient',
                          hemisphere_column='side', region_column='lobe')


@pytest.mark.parametrize('body,where,match', [
    ('id,suspected_hemisphere\na,left\n', 'line 1', "no column 'case_id'"),
    ('case_id,side\na,left\n', 'line 1', 'neither'),
    ('case_id,suspected_hemisphere\na,left\nb,up\n',
     "line 3, column 'suspected_hemisphere'", "got 'up'"),
    ('case_id,suspected_hemisphere\na,left\nb,left\na,right\n',
     "line 4, column 'case_id'", 'first at line 2'),
    ('case_id,suspected_hemisphere\n,left\n', "line 2, column 'case_id'",
     'expected a case id'),
    ('case_id,suspected_hemisphere\na,left,extra\n', 'line 2',
     'number of fields'),
    ('', 'line 1', 'empty file'),
])
def test_bad_clinical_csv(tmp_path, body, where, match):
    path = _write(tmp_path / 'bad.csv', body)
    with pytest.raises(ClinicalTableError, match=match) as info:
        read_clinical_csv(path)
    assert info.value.path == path and info.value.where == where


_chars = st.characters(codec='utf-8',
                       exclude_categories=['Cs', 'Cc', 'Zs', 'Zl', 'Zp'])
_ids = st.text(_chars, min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(
    _ids, st.sampled_from(['left', 'RIGHT', 'Bilateral', '']),
    st.text(max_size=15)), unique_by=lambda r: r[0].strip(), max_size=8),
       duplicate=st.booleans())
def test_clinical_csv_property(tmp_path_factory, rows, duplicate):
    rows = [r for r in rows if r[0].strip()]
    path = tmp_path_factory.mktemp('cli') / 'c.csv'
    body = list(rows) + ([rows[0]] if duplicate and rows else [])
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['case_id', 'suspected_hemisphere',
                         'suspected_region'])
        writer.writerows(body)
    if duplicate and rows:
        with pytest.raises(ClinicalTableError, match='duplicate case id'):
            read_clinical_csv(str(path))
        return
    got = read_clinical_csv(str(path))
    assert list(got) == [r[0].strip() for r in rows]
    for case, hemi, region in rows:
        entry = got[case.strip()]
        assert entry['suspected_hemisphere'] == (hemi.lower() or None)
        assert entry['suspected_region'] == (region.strip() or None)


def test_crosscheck_rules(db_url):
    export_reports(db_url, 'r', [
        make_report('agree', hemisphere='left'),
        make_report('wrong_side', hemisphere='right'),
        make_report('bilateral', hemisphere='bilateral'),
        make_report('no_atlas', hemisphere='left', atlas=False),
        make_report('not_in_clinic'),
    ])
    clinical = {
        'agree': dict(suspected_hemisphere='left',
                      suspected_region='LEFT TEMPORAL'),
        'wrong_side': dict(suspected_hemisphere='left',
                           suspected_region='right frontal'),
        'bilateral': dict(suspected_hemisphere='right',
                          suspected_region=None),
        'no_atlas': dict(suspected_hemisphere=None,
                         suspected_region='left frontal'),
        'no_scan': dict(suspected_hemisphere='left', suspected_region='x'),
    }
    rows = {r['case_id']: r for r in crosscheck(db_url, 'r', clinical)}
    table = {k: (r['status'], r['agrees_hemisphere'], r['agrees_region'])
             for k, r in rows.items()}
    assert table == {
        'agree': ('matched', True, True),
        'wrong_side': ('matched', False, False),
        'bilateral': ('matched', True, None),
        'no_atlas': ('matched', None, None),
        'not_in_clinic': ('no_clinical', None, None),
        'no_scan': ('no_segmentation', None, None),
    }
    assert rows['agree']['top_regions'] == \
        'left frontal (0.75); left temporal (0.25)'
    # top_k=1: only the first atlas region counts.
    one = {r['case_id']: r for r in crosscheck(db_url, 'r', clinical,
                                               top_k=1)}
    assert one['agree']['agrees_region'] is False
    assert write_crosscheck(db_url, 'r', list(rows.values())) == 6
    # The README's query (docs/readme/brats_db.md), on both databases.
    engine = create_engine(db_url)
    with engine.connect() as conn:
        found = conn.execute(text(
            'SELECT x.case_id, x.suspected_hemisphere, '
            'x.segmented_hemisphere, r.volume_cm3, r.atlas_top, k.wt_dice '
            'FROM crosscheck x '
            'JOIN regions r ON r.run = x.run AND r.case_id = x.case_id '
            "AND r.region = 'WT' "
            'JOIN cases k ON k.run = x.run AND k.case_id = x.case_id '
            "WHERE x.run = 'r' AND NOT x.agrees_hemisphere "
            'ORDER BY r.volume_cm3 DESC')).all()
    engine.dispose()
    assert [tuple(f) for f in found] == [
        ('wrong_side', 'left', 'right', 5.0, 'left frontal', 0.8)]
    assert write_crosscheck(db_url, 'r', list(rows.values())[:2]) == 2
    engine = create_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(text(
            'SELECT case_id, agrees_hemisphere FROM crosscheck '
            "WHERE run = 'r' ORDER BY case_id")).all()
    engine.dispose()
    assert [tuple(s) for s in stored] == [('agree', True),
                                          ('bilateral', True)]
    with pytest.raises(ValueError, match='region'):
        crosscheck(db_url, 'r', clinical, region='ED')


def test_read_clinical_table(db_url):
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text('CREATE TABLE patients (pid VARCHAR(20), '
                          'side VARCHAR(10), hospital TEXT)'))
        conn.execute(text("INSERT INTO patients VALUES ('b', 'Right', 'H'),"
                          " ('a', NULL, 'H')"))
    got = read_clinical_table(engine, 'patients', case_column='pid',
                              hemisphere_column='side')
    assert got == {
        'a': dict(case_id='a', suspected_hemisphere=None,
                  suspected_region=None, place=1),
        'b': dict(case_id='b', suspected_hemisphere='right',
                  suspected_region=None, place=2),
    }
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO patients VALUES ('c', 'up', 'H')"))
    with pytest.raises(ClinicalTableError, match="row 3, column 'side'"):
        read_clinical_table(engine, 'patients', case_column='pid',
                            hemisphere_column='side')
    with pytest.raises(ClinicalTableError, match="no column 'case_id'"):
        read_clinical_table(engine, 'patients')
    with pytest.raises(ClinicalTableError, match='no such table'):
        read_clinical_table(engine, 'nope')
    engine.dispose()
