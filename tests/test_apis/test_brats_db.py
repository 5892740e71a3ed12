# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTS reports in SQL: export / read back on SQLite and PostgreSQL,
re-runs without duplicates, a failure mid-export, the report reader."""
import copy
import datetime
import importlib.util
import json
import os.path as osp

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import IntegrityError

from mmseg_ext.apis.brats_db import (DEFAULT_DB_URL, BraTSDBOperationError,
                                     BraTSDBURLError, BraTSReportError,
                                     export_reports, list_runs,
                                     load_report_dir, markdown_table,
                                     metadata, read_report, read_run,
                                     validate_report)
from mmseg_ext.utils.errors import InputError


def _load_factory():
    path = osp.join(osp.dirname(osp.abspath(__file__)),
                    'brats_report_factory.py')
    spec = importlib.util.spec_from_file_location('brats_report_factory',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_factory = _load_factory()
make_region, make_report = _factory.make_region, _factory.make_report

RUN = dict(name='unet-f0', model='unet', config='configs/brats/unet.py',
           checkpoint='work_dirs/unet/iter_100.pth', label_scheme='brats2020',
           convention='brats2020', created_at='2026-01-02T03:04:05+00:00')


def _count(url, sql):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_default_url_is_sqlite_file():
    assert DEFAULT_DB_URL == 'sqlite:///work_dirs/brats.sqlite'
    assert set(metadata.tables) == {'runs', 'cases', 'regions', 'crosscheck'}


def test_report_reader_is_the_evaluation_one(tmp_path):
    from mmseg_ext.evaluation import brats_report
    assert BraTSReportError is brats_report.TumourReportError
    assert validate_report is brats_report.validate_tumour_report
    assert read_report is brats_report.read_tumour_report
    assert load_report_dir is brats_report.load_report_dir
    # The regions table holds the columns of reports.csv (and the atlas).
    cols = [c.name for c in metadata.tables['regions'].columns]
    assert cols == ['run', *brats_report.REPORT_CSV_COLUMNS, 'atlas']
    with pytest.raises(BraTSReportError, match='nope.json: tumour report'):
        read_report(str(tmp_path / 'nope.json'))
    with pytest.raises(brats_report.TumourReportError, match="field 'sou"):
        validate_report(dict(make_report('c'), source='model'), 'r')


def test_export_round_trip(db_url):
    reports = [make_report('BraTS20_Training_002', dice=0.6, et=False),
               make_report('BraTS20_Training_001', dice=0.9,
                           hemisphere='bilateral', atlas=False),
               make_report('BraTS20_Validation_001', metrics=False)]
    out = export_reports(db_url, RUN, reports)
    assert (out['cases'], out['regions'], out['replaced']) == (3, 9, False)
    got = read_run(db_url, 'unet-f0')
    assert got['run']['created_at'] == datetime.datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert got['run']['checkpoint'] == RUN['checkpoint']
    # Every field comes back exactly (sorted by case id).
    expected = sorted((validate_report(r) for r in reports),
                      key=lambda r: r['case_id'])
    assert got['reports'] == expected
    wt = {r['case_id']: r for r in got['regions'] if r['region'] == 'WT'}
    first = wt['BraTS20_Training_001']
    assert (first['voxels'], first['centroid_k'], first['bbox_k1'],
            first['hemisphere'], first['atlas_top'],
            first['dice']) == (5000, 30.0, 60, 'bilateral', None, 0.9)
    second = wt['BraTS20_Training_002']
    assert (second['atlas_top'], second['atlas_top_fraction']) == \
        ('left frontal', 0.75)
    et = [r for r in got['regions'] if r['region'] == 'ET'
          and r['case_id'] == 'BraTS20_Training_002'][0]
    assert et['voxels'] == 0 and et['centroid_x'] is None
    runs = list_runs(db_url)
    assert len(runs) == 1 and runs[0]['num_cases'] == 3
    # Means over the two cases with metrics (NULLs left out).
    assert runs[0]['wt_dice'] == pytest.approx((0.6 + 0.9) / 2)
    assert runs[0]['tc_dice'] == pytest.approx((0.3 + 0.45) / 2)
    table = markdown_table(runs, ['name', 'num_cases', 'wt_dice'])
    assert table.splitlines()[2] == '| unet-f0 | 3 | 0.7500 |'


def test_rerun_replaces_without_duplicates(db_url):
    export_reports(db_url, RUN, [make_report(f'c{i}') for i in range(3)])
    export_reports(db_url, dict(name='other'), [make_report('c0')])
    out = export_reports(db_url, dict(RUN, model='unet-v2'),
                         [make_report('c1', dice=0.5),
                          make_report('c7', dice=0.25)])
    assert out['replaced'] is True
    assert _count(db_url, "SELECT COUNT(*) FROM cases WHERE run = "
                  "'unet-f0'") == 2
    assert _count(db_url, "SELECT COUNT(*) FROM regions WHERE run = "
                  "'unet-f0'") == 6
    assert _count(db_url, 'SELECT COUNT(*) FROM runs') == 2
    got = read_run(db_url, 'unet-f0')
    assert [c['case_id'] for c in got['cases']] == ['c1', 'c7']
    assert [c['wt_dice'] for c in got['cases']] == [0.5, 0.25]
    assert got['run']['model'] == 'unet-v2'
    # The other run is untouched.
    assert [c['case_id'] for c in read_run(db_url, 'other')['cases']] == \
        ['c0']


def test_failure_mid_export_keeps_previous_rows(db_url):
    before = [make_report('c0', dice=0.7), make_report('c1', dice=0.4)]
    export_reports(db_url, RUN, before)
    with create_engine(db_url).begin() as conn:
        conn.execute(text(
            "INSERT INTO crosscheck (run, case_id, region, status, "
            "checked_at) VALUES ('unet-f0', 'c0', 'WT', 'matched', "
            "'2026-01-01 00:00:00')"))
    engine = create_engine(db_url)
    seen = []

    @event.listens_for(engine, 'before_cursor_execute')
    def fail_on_regions(conn, cursor, statement, params, context, many):
        seen.append(statement.split()[0:3])
        if statement.lstrip().upper().startswith('INSERT INTO REGIONS'):
            raise RuntimeError('disk full (injected)')

    with pytest.raises(RuntimeError, match='injected'):
        export_reports(engine, dict(RUN, model='broken'),
                       [make_report('c0', dice=0.1),
                        make_report('c9', dice=0.2)])
    engine.dispose()
    # The deletes and the runs / cases inserts did run before the failure.
    assert ['INSERT', 'INTO', 'cases'] in seen
    assert ['DELETE', 'FROM', 'regions'] in seen
    got = read_run(db_url, 'unet-f0')
    assert got['run']['model'] == 'unet'
    assert got['reports'] == [validate_report(r) for r in before]
    assert _count(db_url, 'SELECT COUNT(*) FROM crosscheck') == 1


def test_database_error_is_wrapped_and_rolled_back(db_url):
    export_reports(db_url, RUN, [make_report('c0')])
    engine = create_engine(db_url)
    done = []

    @event.listens_for(engine, 'before_cursor_execute')
    def sneak_in_a_row(conn, cursor, statement, params, context, many):
        # Another writer's row with the same key, right before our INSERT:
        # the database refuses ours (a real IntegrityError).
        if statement.lstrip().upper().startswith('INSERT INTO CASES') \
                and not done:
            done.append(True)
            cursor.execute(
                "INSERT INTO cases (run, case_id, label_scheme, source, "
                "shape_x, shape_y, shape_z, spacing_x, spacing_y, "
                "spacing_z, affine, has_metrics) VALUES ('unet-f0', 'c5', "
                "'brats2020', 'prediction', 1, 1, 1, 1, 1, 1, '[]', FALSE)")

    try:
        with pytest.raises(BraTSDBOperationError) as info:
            export_reports(engine, dict(RUN, model='x'),
                           [make_report('c5')])
    finally:
        engine.dispose()
    assert info.value.where == "table 'cases'"
    assert "exporting run 'unet-f0' failed: " in str(info.value)
    assert isinstance(info.value.__cause__, IntegrityError)
    got = read_run(db_url, 'unet-f0')
    assert got['run']['model'] == 'unet'
    assert [c['case_id'] for c in got['cases']] == ['c0']


def test_connection_error_hides_password():
    with pytest.raises(BraTSDBOperationError) as info:
        export_reports('postgresql+psycopg://me:s3cret@127.0.0.1:1/db',
                       'r', [make_report('c0')])
    msg = str(info.value)
    assert 's3cret' not in msg and 'me:***@127.0.0.1:1/db' in msg
    assert isinstance(info.value, InputError)


@pytest.mark.parametrize('url,match', [
    ('not a url', 'does not parse'),
    ('nosuchdb://x/y', 'unknown database dialect'),
    ('', 'database URL'),
])
def test_bad_urls(url, match):
    with pytest.raises(BraTSDBURLError, match=match):
        list_runs(url)


def test_read_missing_run_and_empty_db(db_url):
    create_engine(db_url).connect().close()  # an empty database
    assert list_runs(db_url) == []
    with pytest.raises(BraTSDBOperationError, match='nothing was exported'):
        read_run(db_url, 'x')
    export_reports(db_url, 'a', [make_report('c0')])
    with pytest.raises(BraTSDBOperationError, match=r"one of \['a'\]"):
        read_run(db_url, 'b')


def test_readers_need_an_existing_sqlite_file(tmp_path):
    url = f'sqlite:///{tmp_path / "typo" / "brats.sqlite"}'
    with pytest.raises(BraTSDBURLError, match='no such SQLite file'):
        list_runs(url)
    with pytest.raises(BraTSDBURLError, match='no such SQLite file'):
        read_run(url, 'r')
    assert not (tmp_path / 'typo').exists()
    export_reports(url, 'r', [make_report('c0')])  # the writer creates it
    assert [r['name'] for r in list_runs(url)] == ['r']


def _broken(mutate):
    rep = make_report('c0')
    mutate(rep)
    return rep


@pytest.mark.parametrize('mutate,field', [
    (lambda r: r.pop('spacing'), 'spacing'),
    (lambda r: r.update(shape=[240, 240]), 'shape'),
    (lambda r: r.update(source='model'), 'source'),
    (lambda r: r.update(label_scheme='brats2019'), 'label_scheme'),
    (lambda r: r['metrics']['WT'].update(dice=1.5), 'metrics.WT.dice'),
    (lambda r: r['metrics'].pop('ET'), 'metrics'),
    (lambda r: r['regions']['TC'].update(voxels=-1), 'regions.TC.voxels'),
    (lambda r: r['regions']['TC'].update(voxels=True), 'regions.TC.voxels'),
    (lambda r: r['regions']['WT'].update(hemisphere='Left'),
     'regions.WT.hemisphere'),
    (lambda r: r['regions']['WT']['atlas'][0].update(fraction=None),
     'regions.WT.atlas[0].fraction'),
    (lambda r: r['regions']['ET'].update(bbox_voxel=[[0, 0, 0]]),
     'regions.ET.bbox_voxel'),
    (lambda r: r['regions']['ET'].pop('centroid_world'),
     'regions.ET.centroid_world'),
])
def test_bad_report_is_named_and_nothing_written(tmp_path, mutate, field):
    url = f'sqlite:///{tmp_path / "x.sqlite"}'
    with pytest.raises(BraTSReportError) as info:
        export_reports(url, RUN, [make_report('ok'), _broken(mutate)])
    assert info.value.where == f'field {field!r}'
    assert info.value.path == 'report 1 (c0)'
    # Validation comes first: the database was never touched.
    assert not (tmp_path / 'x.sqlite').exists()


def test_bad_run_and_duplicate_cases(tmp_path):
    url = f'sqlite:///{tmp_path / "x.sqlite"}'
    with pytest.raises(BraTSReportError, match='unique case ids'):
        export_reports(url, RUN, [make_report('c0'), make_report('c0')])
    with pytest.raises(BraTSReportError, match="field 'convention'"):
        export_reports(url, dict(RUN, convention='monai'), [])
    with pytest.raises(BraTSReportError, match="field 'name'"):
        export_reports(url, dict(name=' x'), [])
    with pytest.raises(BraTSReportError, match='keys'):
        export_reports(url, dict(name='x', time='now'), [])


def test_load_report_dir(tmp_path):
    folder = tmp_path / 'reports'
    with pytest.raises(BraTSReportError, match='not a folder'):
        load_report_dir(str(tmp_path))
    folder.mkdir()
    with pytest.raises(BraTSReportError, match='no'):
        load_report_dir(str(tmp_path))
    for case in ('c2', 'c1'):
        (folder / f'{case}.json').write_text(json.dumps(make_report(case)))
    assert [r['case_id'] for r in load_report_dir(str(tmp_path))] == \
        ['c1', 'c2']
    (folder / 'c3.json').write_text(json.dumps(make_report('c4')))
    with pytest.raises(BraTSReportError, match="'c3' \\(the file name\\)"):
        load_report_dir(str(tmp_path))
    (folder / 'c3.json').write_text('{"case_id": "c3",\n "shape": [1,}')
    with pytest.raises(BraTSReportError) as info:
        load_report_dir(str(tmp_path))
    assert info.value.path.endswith('c3.json')
    assert info.value.where.startswith('line 2,')


_finite = st.floats(-1e6, 1e6, allow_nan=False)
_region = st.one_of(
    st.just(make_region(0)),
    st.builds(
        lambda v, c, hemi, frac, name: dict(
            make_region(v, hemi), components=c,
            atlas=[dict(label=7, name=name, fraction=frac)]),
        st.integers(1, 10**9), st.integers(0, 1000),
        st.sampled_from(['left', 'right', 'bilateral']),
        st.floats(0, 1), st.text(max_size=20)))


@settings(max_examples=40, deadline=None)
@given(regions=st.fixed_dictionaries(
    dict(WT=_region, TC=_region, ET=_region)),
       dice=st.one_of(st.none(), st.floats(0, 1)),
       hd95=st.one_of(st.none(), st.floats(0, 400)),
       spacing=st.lists(st.floats(0.1, 5), min_size=3, max_size=3),
       drop=st.sampled_from([None, 'case_id', 'affine', 'metrics',
                             'regions']))
def test_report_json_reader_property(tmp_path_factory, regions, dice, hd95,
                                     spacing, drop):
    rep = make_report('case', dice=0.5)
    rep.update(regions=regions, spacing=spacing)
    rep['metrics']['WT'] = dict(dice=dice, hd95=hd95)
    path = tmp_path_factory.mktemp('rep') / 'case.json'
    if drop:
        rep.pop(drop)
    path.write_text(json.dumps(rep))
    if drop:
        with pytest.raises(BraTSReportError, match=f"field '{drop}'"):
            read_report(str(path))
        return
    got = read_report(str(path))
    want = copy.deepcopy(rep)
    assert got == want


def test_sample_join_query(db_url):
    """The README's join of the clinical table with the segmented sites."""
    export_reports(db_url, RUN, [make_report('c0'), make_report(
        'c1', hemisphere='right')])
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text('CREATE TABLE patients (case_id VARCHAR(200) '
                          'PRIMARY KEY, hospital TEXT, '
                          'suspected_hemisphere TEXT)'))
        conn.execute(text("INSERT INTO patients VALUES ('c0', 'A', 'left'),"
                          " ('c1', 'B', 'left')"))
        rows = conn.execute(text(
            'SELECT p.case_id, p.hospital, r.hemisphere, r.volume_cm3 '
            'FROM patients p JOIN regions r ON r.case_id = p.case_id '
            "WHERE r.run = 'unet-f0' AND r.region = 'WT' "
            'AND r.hemisphere <> p.suspected_hemisphere '
            'ORDER BY p.case_id')).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [('c1', 'B', 'right', 5.0)]
