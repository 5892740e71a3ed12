# Copyright (c) mmseg_ext contributors. All rights reserved.
"""tools/brats_db.py (export, runs) and tools/brats_crosscheck.py on
SQLite (the PostgreSQL paths are the same API, tested in test_apis)."""
import csv
import importlib.util
import json
import os.path as osp

import pytest
from sqlalchemy import create_engine, text

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load(rel, name):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The report factory of the API tests (a plain module here).
make_report = _load('tests/test_apis/brats_report_factory.py',
                    'brats_report_factory').make_report


@pytest.fixture
def out_dir(tmp_path):
    """A BraTSMetric out_dir with three reports."""
    folder = tmp_path / 'out' / 'reports'
    folder.mkdir(parents=True)
    for case, hemi in (('BraTS20_Training_001', 'left'),
                       ('BraTS20_Training_002', 'right'),
                       ('BraTS20_Training_003', 'bilateral')):
        (folder / f'{case}.json').write_text(
            json.dumps(make_report(case, hemisphere=hemi)))
    return str(tmp_path / 'out')


def test_export_runs_crosscheck(out_dir, tmp_path, capsys):
    db_tool = _load('tools/brats_db.py', 'tool_brats_db')
    check_tool = _load('tools/brats_crosscheck.py', 'tool_brats_crosscheck')
    url = f'sqlite:///{tmp_path / "db" / "brats.sqlite"}'
    argv = ['export', out_dir, '--db', url, '--run', 'unet-f0', '--model',
            'unet', '--label-scheme', 'brats2020', '--convention', 'nan']
    db_tool.main(argv)
    assert "stored run 'unet-f0': 3 cases, 9 region rows" in \
        capsys.readouterr().out
    db_tool.main(argv)
    assert capsys.readouterr().out.startswith("replaced run 'unet-f0'")
    db_tool.main(['runs', '--db', url])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('| name | model | config |')
    assert lines[2].startswith('| unet-f0 | unet |  |  | brats2020 | nan |')
    assert lines[2].endswith('| 3 | 0.8000 | 0.4000 | 1.0000 |')

    clinical = tmp_path / 'clinical.csv'
    clinical.write_text(
        'case_id,suspected_hemisphere,suspected_region\n'
        'BraTS20_Training_001,left,left temporal\n'
        'BraTS20_Training_002,LEFT,left frontal\n'
        'BraTS20_Training_009,right,\n')
    out_csv = tmp_path / 'check.csv'
    check_tool.main(['--db', url, '--run', 'unet-f0', '--clinical',
                     str(clinical), '--out', str(out_csv)])
    printed = capsys.readouterr().out
    assert '| BraTS20_Training_002 | matched | left | right | False |' in \
        printed
    assert 'agrees_hemisphere: 1 agree, 1 disagree, 2 unknown' in printed
    assert 'no_segmentation: 1 (BraTS20_Training_009)' in printed
    assert 'no_clinical: 1 (BraTS20_Training_003)' in printed
    with open(out_csv, newline='') as f:
        rows = list(csv.DictReader(f))
    assert [(r['case_id'], r['agrees_hemisphere'], r['agrees_region'])
            for r in rows] == [('BraTS20_Training_001', 'True', 'True'),
                               ('BraTS20_Training_002', 'False', 'True'),
                               ('BraTS20_Training_003', '', ''),
                               ('BraTS20_Training_009', '', '')]
    # The clinical table may live in the database too; the result table
    # joins with it on case_id.
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text('CREATE TABLE patients (case_id TEXT, '
                          'suspected_hemisphere TEXT, hospital TEXT)'))
        conn.execute(text("INSERT INTO patients VALUES "
                          "('BraTS20_Training_003', 'right', 'H1')"))
    check_tool.main(['--db', url, '--run', 'unet-f0', '--clinical-table',
                     'patients'])
    capsys.readouterr()
    with engine.connect() as conn:
        joined = conn.execute(text(
            'SELECT p.hospital, c.segmented_hemisphere, c.agrees_hemisphere '
            'FROM patients p JOIN crosscheck c ON c.case_id = p.case_id '
            "WHERE c.run = 'unet-f0'")).all()
        total = conn.execute(text('SELECT COUNT(*) FROM crosscheck')).scalar()
    engine.dispose()
    assert [tuple(r) for r in joined] == [('H1', 'bilateral', True)]
    assert total == 3  # the run's earlier cross-check rows were replaced


@pytest.mark.parametrize('argv,match', [
    (['export', '{out}/nope', '--run', 'r'], 'reports: report folder'),
    (['export', '{out}', '--run', 'r', '--db', 'nosuch://x'],
     'unknown database dialect'),
])
def test_db_tool_errors(out_dir, tmp_path, capsys, argv, match):
    db_tool = _load('tools/brats_db.py', 'tool_brats_db')
    argv = [a.replace('{out}', out_dir) for a in argv]
    if '--db' not in argv:
        argv += ['--db', f'sqlite:///{tmp_path / "x.sqlite"}']
    with pytest.raises(SystemExit) as info:
        db_tool.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('tools/brats_db.py: error: ') and match in err
    assert len(err.splitlines()) == 1


def test_crosscheck_tool_bad_csv(out_dir, tmp_path, capsys):
    db_tool = _load('tools/brats_db.py', 'tool_brats_db')
    check_tool = _load('tools/brats_crosscheck.py', 'tool_brats_crosscheck')
    url = f'sqlite:///{tmp_path / "x.sqlite"}'
    db_tool.main(['export', out_dir, '--db', url, '--run', 'r'])
    bad = tmp_path / 'bad.csv'
    bad.write_text('case_id,suspected_hemisphere\na,left\nb,middle\n')
    with pytest.raises(SystemExit):
        check_tool.main(['--db', url, '--run', 'r', '--clinical', str(bad)])
    err = capsys.readouterr().err.strip()
    assert err == (f"tools/brats_crosscheck.py: error: {bad}: line 3, "
                   "column 'suspected_hemisphere': got 'middle'; expected "
                   "one of ['left', 'right', 'bilateral'] (any case) or "
                   'empty')
    with pytest.raises(SystemExit):
        check_tool.main(['--db', url, '--run', 'r'])  # no clinical source
