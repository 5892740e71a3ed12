# Copyright (c) mmseg_ext contributors. All rights reserved.
"""BraTS tumour reports in a SQL database (SQLAlchemy 2 Core, no ORM).

One evaluation run (a model on a set of cases) becomes rows of three
tables, so that results live where clinical data lives and a clinician's
SQL can join on the case id:

===========  ==============================================================
table        rows
===========  ==============================================================
runs         one per run: ``name`` (primary key), ``model``, ``config``,
             ``checkpoint``, ``label_scheme``, ``convention``,
             ``created_at`` (UTC)
cases        one per run × case: ``run``, ``case_id`` (primary key
             together), ``label_scheme``, ``source``, ``shape_x/y/z``,
             ``spacing_x/y/z``, ``affine`` (JSON), ``has_metrics``,
             ``wt_dice``, ``wt_hd95``, ``tc_dice``, ..., ``et_hd95``
regions      one per run × case × region (WT, TC, ET): the report's REGION
             fields as the columns of ``reports.csv`` (``voxels``,
             ``volume_cm3``, ``components``, ``centroid_i/j/k``,
             ``centroid_x/y/z``, ``bbox_i0 ... bbox_k1``, ``hemisphere``,
             ``atlas_top``, ``atlas_top_fraction``, ``dice``, ``hd95``) and
             ``atlas`` (the whole overlap list as JSON text)
crosscheck   written by :mod:`mmseg_ext.apis.brats_crosscheck`
===========  ==============================================================

``cases.run`` references ``runs.name``, ``regions.(run, case_id)``
references ``cases``; ``case_id`` is indexed in every table. Column names
are lower case so they need no quoting in PostgreSQL. Metric columns hold
NULL where the report has null (no ground truth, or NaN / inf under the
``nan`` convention).

:func:`export_reports` validates everything first, then in ONE
transaction deletes the run's previous rows (its ``crosscheck`` rows too:
they were derived from the old ones) and inserts the new ones: a re-run
never duplicates, and a failure part-way leaves the previous rows as they
were. Tables are created when missing. Any SQLAlchemy URL works; tested on
SQLite and on PostgreSQL through ``postgresql+psycopg://`` (``pip install
mmseg_ext[postgres]``).

Reports are the dicts of the BraTS report JSON
(``{out_dir}/reports/{case_id}.json`` of ``BraTSMetric``);
:func:`load_report_dir` reads them with :func:`validate_report`, a reader
of that format kept here so the database has no dependency on the
evaluation code; ``mmseg_ext.evaluation.brats_report.read_tumour_report``
reads the same format and may be used in its place.
"""
import datetime
import functools
import glob
import json
import math
import os
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float,
                        ForeignKeyConstraint, Index, Integer, MetaData,
                        String, Table, Text, create_engine, delete, event,
                        func, insert, inspect, select)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from mmseg_ext.utils.errors import InputError

__all__ = [
    'DEFAULT_DB_URL', 'REPORT_SOURCES', 'HEMISPHERES', 'metadata',
    'define_tables', 'BraTSDBError', 'BraTSDBURLError', 'BraTSReportError',
    'BraTSDBOperationError', 'get_engine', 'with_engine',
    'safe_url', 'validate_report',
    'read_report', 'load_report_dir', 'export_reports', 'read_run',
    'list_runs', 'markdown_table'
]

#: Where results go without ``--db``: a SQLite file relative to the working
#: directory, next to the other outputs (its folder is created).
DEFAULT_DB_URL = 'sqlite:///work_dirs/brats.sqlite'

REGIONS = ('WT', 'TC', 'ET')
REPORT_SOURCES = ('prediction', 'ground_truth')
HEMISPHERES = ('left', 'right', 'bilateral')
_NAME_LEN = 200


class BraTSDBError(InputError):
    """Base of the errors of the BraTS database code."""


class BraTSDBURLError(BraTSDBError):
    """A database URL that SQLAlchemy cannot use (syntax, dialect,
    driver)."""


class BraTSReportError(BraTSDBError):
    """A report (or run description) that does not follow the format:
    names the file (or report) and the field."""


class BraTSDBOperationError(BraTSDBError):
    """The database refused an operation: names the URL (without its
    password) and the table."""


# --------------------------------------------------------------------------
# Schema


def define_tables(meta) -> Dict[str, Any]:
    """Add the tables ``runs``, ``cases``, ``regions`` and ``crosscheck`` to
    ``meta``.

    Args:
        meta (sqlalchemy.MetaData): The metadata to hold them.

    Returns:
        dict[str, sqlalchemy.Table]: By name.
    """
    name = String(_NAME_LEN)
    runs = Table(
        'runs', meta,
        Column('name', name, primary_key=True),
        Column('model', Text),
        Column('config', Text),
        Column('checkpoint', Text),
        Column('label_scheme', String(16)),
        Column('convention', String(16)),
        Column('created_at', DateTime(timezone=True), nullable=False))
    metric_cols = [
        Column(f'{r.lower()}_{m}', Float) for r in REGIONS
        for m in ('dice', 'hd95')
    ]
    cases = Table(
        'cases', meta,
        Column('run', name, primary_key=True),
        Column('case_id', name, primary_key=True),
        Column('label_scheme', String(16), nullable=False),
        Column('source', String(16), nullable=False),
        *[Column(f'shape_{a}', Integer, nullable=False) for a in 'xyz'],
        *[Column(f'spacing_{a}', Float, nullable=False) for a in 'xyz'],
        Column('affine', Text, nullable=False),
        Column('has_metrics', Boolean, nullable=False),
        *metric_cols,
        ForeignKeyConstraint(['run'], ['runs.name'], ondelete='CASCADE'),
        Index('ix_cases_case_id', 'case_id'))
    regions = Table(
        'regions', meta,
        Column('run', name, primary_key=True),
        Column('case_id', name, primary_key=True),
        Column('region', String(2), primary_key=True),
        Column('voxels', BigInteger, nullable=False),
        Column('volume_cm3', Float, nullable=False),
        Column('components', Integer, nullable=False),
        *[Column(f'centroid_{a}', Float) for a in 'ijkxyz'],
        *[Column(f'bbox_{a}{e}', Integer) for e in '01' for a in 'ijk'],
        Column('hemisphere', String(9)),
        Column('atlas_top', Text),
        Column('atlas_top_fraction', Float),
        Column('atlas', Text),
        Column('dice', Float),
        Column('hd95', Float),
        ForeignKeyConstraint(['run', 'case_id'],
                             ['cases.run', 'cases.case_id'],
                             ondelete='CASCADE'),
        Index('ix_regions_case_id', 'case_id'))
    crosscheck = Table(
        'crosscheck', meta,
        Column('run', name, primary_key=True),
        Column('case_id', name, primary_key=True),
        Column('region', String(2), nullable=False),
        Column('status', String(16), nullable=False),
        Column('suspected_hemisphere', String(9)),
        Column('segmented_hemisphere', String(9)),
        Column('agrees_hemisphere', Boolean),
        Column('suspected_region', Text),
        Column('top_regions', Text),
        Column('agrees_region', Boolean),
        Column('checked_at', DateTime(timezone=True), nullable=False),
        Index('ix_crosscheck_case_id', 'case_id'))
    return dict(runs=runs, cases=cases, regions=regions,
                crosscheck=crosscheck)


def _make_metadata():
    meta = MetaData()
    return meta, define_tables(meta)


#: The module's schema: ``metadata.tables['runs']`` ...
metadata, TABLES = _make_metadata()

# --------------------------------------------------------------------------
# Engines and errors


def safe_url(db: Any) -> str:
    """The URL of ``db`` (a URL string or an Engine) with its password
    hidden (``***``), for messages."""
    try:
        url = db.url if isinstance(db, Engine) else make_url(db)
        return url.render_as_string(hide_password=True)
    except Exception:  # noqa: B902 (unparsable: never echo it whole)
        text = str(db)
        if '@' in text and '://' in text:
            scheme, rest = text.split('://', 1)
            text = f'{scheme}://***@{rest.rsplit("@", 1)[1]}'
        return text


def get_engine(db: Any, must_exist: bool = False):
    """An Engine for ``db``: a SQLAlchemy URL string (``sqlite:///x.db``,
    ``postgresql+psycopg://user:pw@host/db``) or an Engine (returned as is).

    With ``must_exist`` (the readers), a SQLite file that does not exist is
    an error instead of a new empty database (a typo in the path).

    A SQLite file's folder is created; SQLite connections enforce foreign
    keys.

    Raises:
        BraTSDBURLError: The URL does not parse, names an unknown dialect
            or a driver that is not installed.
    """
    if isinstance(db, Engine):
        return db
    if not isinstance(db, str) or not db.strip():
        raise BraTSDBURLError(
            path=None, reason='database URL', value=db,
            expected="a SQLAlchemy URL such as 'sqlite:///brats.sqlite' or "
            "'postgresql+psycopg://user@host/db'")
    shown = safe_url(db)
    try:
        url = make_url(db)
    except ArgumentError as err:
        raise BraTSDBURLError(
            path=shown, reason='database URL does not parse',
            expected="'dialect[+driver]://user:password@host/db' or "
            "'sqlite:///file.sqlite'") from err
    if url.get_backend_name() == 'sqlite' and url.database and \
            url.database != ':memory:' and not url.database.startswith(
                'file:'):
        if must_exist and not osp.isfile(url.database):
            raise BraTSDBURLError(
                path=shown, reason='no such SQLite file',
                value=url.database,
                expected='the file of an earlier export (check the path)')
        folder = osp.dirname(osp.abspath(url.database))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise BraTSDBURLError(
                path=shown, reason=f'cannot create the folder {folder!r} '
                f'of the SQLite file: {err.strerror or err}') from err
    try:
        engine = create_engine(url)
    except NoSuchModuleError as err:
        raise BraTSDBURLError(
            path=shown, reason='unknown database dialect or driver',
            value=url.drivername,
            expected="e.g. 'sqlite' or 'postgresql+psycopg'") from err
    except ImportError as err:
        raise BraTSDBURLError(
            path=shown, reason=f'the driver is not installed ({err.name})',
            expected='pip install "mmseg_ext[postgres]" for '
            'postgresql+psycopg') from err
    except ArgumentError as err:
        raise BraTSDBURLError(path=shown, reason=str(err).splitlines()[0]
                              ) from err
    if engine.dialect.name == 'sqlite':

        @event.listens_for(engine, 'connect')
        def _fk_on(dbapi_conn, _record):
            cursor = dbapi_conn.cursor()
            cursor.execute('PRAGMA foreign_keys=ON')
            cursor.close()

    return engine


def with_engine(fn=None, *, must_exist: bool = False):
    """Decorator: the first argument (``db``, a URL or an Engine) becomes an
    Engine (:func:`get_engine` with ``must_exist``); one made here from a
    URL is disposed of on return, so no connection outlives the call.
    ``@with_engine`` or ``@with_engine(must_exist=True)``."""

    def decorate(fn):

        @functools.wraps(fn)
        def wrapper(db, *args, **kwargs):
            if isinstance(db, Engine):
                return fn(db, *args, **kwargs)
            engine = get_engine(db, must_exist=must_exist)
            try:
                return fn(engine, *args, **kwargs)
            finally:
                engine.dispose()

        return wrapper

    return decorate if fn is None else decorate(fn)


def _db_error(err: Exception, engine, table: str,
              action: str) -> BraTSDBOperationError:
    orig = getattr(err, 'orig', None) or err
    reason = ' '.join(str(orig).split()) or type(orig).__name__
    return BraTSDBOperationError(
        path=safe_url(engine), where=f'table {table!r}',
        reason=f'{action} failed: {type(orig).__name__}: {reason}')


def _create_tables(engine, names: Sequence[str]) -> None:
    try:
        metadata.create_all(engine, tables=[TABLES[n] for n in names])
    except SQLAlchemyError as err:
        raise _db_error(err, engine, ', '.join(names), 'creating tables')\
            from err


# --------------------------------------------------------------------------
# Report format


def _fail(path, field, value, expected):
    raise BraTSReportError(path=path, where=f'field {field!r}', value=value,
                           expected=expected)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _num_list(path, field, v, n, ints=False, nullable=True):
    if v is None and nullable:
        return None
    check = _is_int if ints else _is_num
    if not isinstance(v, (list, tuple)) or len(v) != n or \
            not all(check(x) for x in v):
        kind = 'integers' if ints else 'finite numbers'
        _fail(path, field, v, f'a list of {n} {kind}' +
              (' or null' if nullable else ''))
    return [int(x) if ints else float(x) for x in v]


def _opt_num(path, field, v, low=None, high=None):
    if v is None:
        return None
    if not _is_num(v) or (low is not None and v < low) or \
            (high is not None and v > high):
        rng = f' in [{low}, {high}]' if high is not None else \
            (f' >= {low}' if low is not None else '')
        _fail(path, field, v, f'a finite number{rng} or null')
    return float(v)


def _validate_region(path, prefix, reg) -> dict:
    if not isinstance(reg, dict):
        _fail(path, prefix, type(reg).__name__, 'an object')
    for key in ('voxels', 'volume_cm3', 'components', 'centroid_voxel',
                'centroid_world', 'bbox_voxel', 'hemisphere', 'atlas'):
        if key not in reg:
            _fail(path, f'{prefix}.{key}', 'missing', 'present (may be '
                  'null where the format allows)')
    out = {}
    for key in ('voxels', 'components'):
        v = reg[key]
        if not _is_int(v) or v < 0:
            _fail(path, f'{prefix}.{key}', v, 'an integer >= 0')
        out[key] = int(v)
    v = reg['volume_cm3']
    if not _is_num(v) or v < 0:
        _fail(path, f'{prefix}.volume_cm3', v, 'a finite number >= 0')
    out['volume_cm3'] = float(v)
    out['centroid_voxel'] = _num_list(path, f'{prefix}.centroid_voxel',
                                      reg['centroid_voxel'], 3)
    out['centroid_world'] = _num_list(path, f'{prefix}.centroid_world',
                                      reg['centroid_world'], 3)
    bbox = reg['bbox_voxel']
    if bbox is not None:
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 2:
            _fail(path, f'{prefix}.bbox_voxel', bbox,
                  '[[i0, j0, k0], [i1, j1, k1]] or null')
        bbox = [
            _num_list(path, f'{prefix}.bbox_voxel[{e}]', b, 3, ints=True,
                      nullable=False) for e, b in enumerate(bbox)
        ]
    out['bbox_voxel'] = bbox
    hemi = reg['hemisphere']
    if hemi is not None and hemi not in HEMISPHERES:
        _fail(path, f'{prefix}.hemisphere', hemi,
              f'one of {list(HEMISPHERES)} or null')
    out['hemisphere'] = hemi
    atlas = reg['atlas']
    if atlas is not None:
        if not isinstance(atlas, list):
            _fail(path, f'{prefix}.atlas', type(atlas).__name__,
                  'a list of {label, name, fraction} or null')
        entries = []
        for n, entry in enumerate(atlas):
            f = f'{prefix}.atlas[{n}]'
            if not isinstance(entry, dict) or \
                    not {'label', 'name', 'fraction'} <= set(entry):
                _fail(path, f, entry, 'an object with label, name, fraction')
            if not _is_int(entry['label']):
                _fail(path, f'{f}.label', entry['label'], 'an integer')
            if not isinstance(entry['name'], str):
                _fail(path, f'{f}.name', entry['name'], 'a string')
            frac = _opt_num(path, f'{f}.fraction', entry['fraction'], 0, 1)
            if frac is None:
                _fail(path, f'{f}.fraction', None, 'a number in [0, 1]')
            entries.append(dict(label=int(entry['label']),
                                name=entry['name'], fraction=frac))
        atlas = entries
    out['atlas'] = atlas
    return out


def validate_report(report: Any, path: Optional[str] = None) -> dict:
    """Check one report dict (the BraTS report JSON) and return a clean copy.

    Keys beyond the format (at any level, e.g. a ``'mean'`` beside the
    regions) are ignored and not copied; ints stay ints, other numbers
    become floats.

    Args:
        report (dict): The report.
        path (str, optional): Its file (or a name), for the messages.

    Returns:
        dict: ``case_id``, ``shape``, ``spacing``, ``affine``,
        ``label_scheme``, ``source``, ``metrics`` (``{region: {'dice',
        'hd95'}}`` or None), ``regions`` (``{region: REGION}``).

    Raises:
        BraTSReportError: A missing or bad field, named like
            ``field 'regions.WT.voxels'``.
    """
    from mmseg_ext.datasets.brats.labels import LABEL_SCHEMES
    if not isinstance(report, dict):
        _fail(path, '(top level)', type(report).__name__, 'a JSON object')
    for key in ('case_id', 'shape', 'spacing', 'affine', 'label_scheme',
                'source', 'metrics', 'regions'):
        if key not in report:
            _fail(path, key, 'missing', 'present')
    case_id = report['case_id']
    if not isinstance(case_id, str) or not case_id.strip() or \
            len(case_id) > _NAME_LEN or case_id != case_id.strip():
        _fail(path, 'case_id', case_id,
              f'a non-empty string without surrounding spaces, at most '
              f'{_NAME_LEN} characters')
    shape = _num_list(path, 'shape', report['shape'], 3, ints=True,
                      nullable=False)
    if min(shape) < 1:
        _fail(path, 'shape', shape, 'three positive integers')
    spacing = _num_list(path, 'spacing', report['spacing'], 3,
                        nullable=False)
    if min(spacing) <= 0:
        _fail(path, 'spacing', spacing, 'three positive numbers (mm)')
    affine = report['affine']
    if not isinstance(affine, (list, tuple)) or len(affine) != 4:
        _fail(path, 'affine', affine, 'a 4x4 list of numbers')
    affine = [
        _num_list(path, f'affine[{n}]', row, 4, nullable=False)
        for n, row in enumerate(affine)
    ]
    if report['label_scheme'] not in LABEL_SCHEMES:
        _fail(path, 'label_scheme', report['label_scheme'],
              f'one of {sorted(LABEL_SCHEMES)}')
    if report['source'] not in REPORT_SOURCES:
        _fail(path, 'source', report['source'],
              f'one of {list(REPORT_SOURCES)}')
    metrics = report['metrics']
    if metrics is not None:
        if not isinstance(metrics, dict) or not set(REGIONS) <= set(metrics):
            _fail(path, 'metrics', metrics if not isinstance(metrics, dict)
                  else sorted(metrics), f'null or an object with keys '
                  f'{list(REGIONS)}')
        clean = {}
        for r in REGIONS:
            m = metrics[r]
            if not isinstance(m, dict) or not {'dice', 'hd95'} <= set(m):
                _fail(path, f'metrics.{r}', m, 'an object with dice, hd95')
            clean[r] = dict(
                dice=_opt_num(path, f'metrics.{r}.dice', m['dice'], 0, 1),
                hd95=_opt_num(path, f'metrics.{r}.hd95', m['hd95'], 0))
        metrics = clean
    regions = report['regions']
    if not isinstance(regions, dict) or not set(REGIONS) <= set(regions):
        _fail(path, 'regions', regions if not isinstance(regions, dict)
              else sorted(regions), f'an object with keys {list(REGIONS)}')
    regions = {r: _validate_region(path, f'regions.{r}', regions[r])
               for r in REGIONS}
    return dict(case_id=case_id, shape=shape, spacing=spacing,
                affine=affine, label_scheme=report['label_scheme'],
                source=report['source'], metrics=metrics, regions=regions)


def read_report(path: str) -> dict:
    """Read and validate one report JSON file (:func:`validate_report`).

    Raises:
        BraTSReportError: The file is not JSON (names the line) or breaks
            the format.
        FileNotFoundError: No such file.
    """
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise BraTSReportError(
            path=path, where=f'line {err.lineno}, column {err.colno}',
            reason=f'not valid JSON: {err.msg}') from None
    return validate_report(obj, path)


def load_report_dir(out_dir: str) -> List[dict]:
    """The reports ``{out_dir}/reports/*.json`` (``out_dir`` of
    ``BraTSMetric``), validated, sorted by case id.

    Raises:
        BraTSReportError: The folder is missing or empty, a file is bad,
            or its name is not ``{case_id}.json``.
    """
    folder = osp.join(out_dir, 'reports')
    if not osp.isdir(folder):
        raise BraTSReportError(
            path=folder, reason='report folder', value='not a folder',
            expected="BraTSMetric's out_dir (it holds reports/"
            '{case_id}.json)')
    paths = sorted(glob.glob(osp.join(folder, '*.json')))
    if not paths:
        raise BraTSReportError(
            path=folder, reason='report folder', value='no *.json file',
            expected='one {case_id}.json per case')
    reports = []
    for p in paths:
        rep = read_report(p)
        stem = osp.basename(p)[:-len('.json')]
        if stem != rep['case_id']:
            raise BraTSReportError(
                path=p, where="field 'case_id'", value=rep['case_id'],
                expected=f'{stem!r} (the file name)')
        reports.append(rep)
    return sorted(reports, key=lambda r: r['case_id'])


def _validate_run(run: Any) -> dict:
    from mmseg_ext.datasets.brats.labels import LABEL_SCHEMES
    from mmseg_ext.evaluation.brats_metrics import CONVENTIONS
    where = 'run'
    if isinstance(run, str):
        run = dict(name=run)
    if not isinstance(run, dict):
        raise BraTSReportError(path=where, value=type(run).__name__,
                               expected='a dict with at least name')
    unknown = set(run) - {'name', 'model', 'config', 'checkpoint',
                          'label_scheme', 'convention', 'created_at'}
    if unknown:
        raise BraTSReportError(
            path=where, where='keys', value=sorted(unknown),
            expected='name, model, config, checkpoint, label_scheme, '
            'convention, created_at')
    name = run.get('name')
    if not isinstance(name, str) or not name.strip() or \
            name != name.strip() or len(name) > _NAME_LEN:
        raise BraTSReportError(
            path=where, where="field 'name'", value=name,
            expected='a non-empty string without surrounding spaces, at '
            f'most {_NAME_LEN} characters')
    out = dict(name=name)
    for key in ('model', 'config', 'checkpoint'):
        v = run.get(key)
        if v is not None and not isinstance(v, str):
            raise BraTSReportError(path=where, where=f'field {key!r}',
                                   value=v, expected='a string or None')
        out[key] = v
    for key, allowed in (('label_scheme', sorted(LABEL_SCHEMES)),
                         ('convention', sorted(CONVENTIONS))):
        v = run.get(key)
        if v is not None and v not in allowed:
            raise BraTSReportError(path=where, where=f'field {key!r}',
                                   value=v, expected=f'one of {allowed}')
        out[key] = v
    created = run.get('created_at')
    if created is None:
        created = datetime.datetime.now(datetime.timezone.utc)
    elif isinstance(created, str):
        try:
            created = datetime.datetime.fromisoformat(created)
        except ValueError:
            raise BraTSReportError(
                path=where, where="field 'created_at'", value=created,
                expected='an ISO 8601 time') from None
    if not isinstance(created, datetime.datetime):
        raise BraTSReportError(path=where, where="field 'created_at'",
                               value=created,
                               expected='a datetime or an ISO 8601 string')
    if created.tzinfo is None:
        created = created.replace(tzinfo=datetime.timezone.utc)
    out['created_at'] = created.astimezone(datetime.timezone.utc).replace(
        microsecond=0)
    return out


# --------------------------------------------------------------------------
# Rows


def _case_row(run_name: str, rep: dict) -> dict:
    row = dict(run=run_name, case_id=rep['case_id'],
               label_scheme=rep['label_scheme'], source=rep['source'],
               affine=json.dumps(rep['affine']),
               has_metrics=rep['metrics'] is not None)
    for a, s, sp in zip('xyz', rep['shape'], rep['spacing']):
        row[f'shape_{a}'] = s
        row[f'spacing_{a}'] = sp
    for r in REGIONS:
        m = (rep['metrics'] or {}).get(r) or {}
        row[f'{r.lower()}_dice'] = m.get('dice')
        row[f'{r.lower()}_hd95'] = m.get('hd95')
    return row


def _region_row(run_name: str, rep: dict, r: str) -> dict:
    reg = rep['regions'][r]
    m = (rep['metrics'] or {}).get(r) or {}
    row = dict(run=run_name, case_id=rep['case_id'], region=r,
               voxels=reg['voxels'], volume_cm3=reg['volume_cm3'],
               components=reg['components'], hemisphere=reg['hemisphere'],
               dice=m.get('dice'), hd95=m.get('hd95'))
    for key, axes in (('centroid_voxel', 'ijk'), ('centroid_world', 'xyz')):
        vals = reg[key] or [None] * 3
        row.update({f'centroid_{a}': v for a, v in zip(axes, vals)})
    bbox = reg['bbox_voxel'] or [[None] * 3] * 2
    for e in range(2):
        row.update({f'bbox_{a}{e}': v for a, v in zip('ijk', bbox[e])})
    atlas = reg['atlas']
    row['atlas'] = None if atlas is None else json.dumps(atlas)
    top = atlas[0] if atlas else None
    row['atlas_top'] = top['name'] if top else None
    row['atlas_top_fraction'] = top['fraction'] if top else None
    return row


def _report_from_rows(case: dict, regions: Dict[str, dict]) -> dict:
    metrics = None
    if case['has_metrics']:
        metrics = {r: dict(dice=case[f'{r.lower()}_dice'],
                           hd95=case[f'{r.lower()}_hd95'])
                   for r in REGIONS}
    out_regions = {}
    for r in REGIONS:
        row = regions.get(r)
        if row is None:
            continue

        def triple(keys):
            vals = [row[k] for k in keys]
            return None if all(v is None for v in vals) else vals

        bbox = None
        if row['bbox_i0'] is not None:
            bbox = [[row[f'bbox_{a}{e}'] for a in 'ijk'] for e in '01']
        out_regions[r] = dict(
            voxels=row['voxels'], volume_cm3=row['volume_cm3'],
            components=row['components'],
            centroid_voxel=triple(['centroid_i', 'centroid_j',
                                   'centroid_k']),
            centroid_world=triple(['centroid_x', 'centroid_y',
                                   'centroid_z']),
            bbox_voxel=bbox, hemisphere=row['hemisphere'],
            atlas=None if row['atlas'] is None else json.loads(row['atlas']))
    return dict(case_id=case['case_id'],
                shape=[case[f'shape_{a}'] for a in 'xyz'],
                spacing=[case[f'spacing_{a}'] for a in 'xyz'],
                affine=json.loads(case['affine']),
                label_scheme=case['label_scheme'], source=case['source'],
                metrics=metrics, regions=out_regions)


# --------------------------------------------------------------------------
# Export and read back


@with_engine
def export_reports(db: Any,
                   run: Union[dict, str],
                   reports: Iterable[dict],
                   chunk_size: int = 500) -> dict:
    """Write one run's reports, replacing the run's previous rows.

    Everything is validated before the database is touched; then ONE
    transaction deletes the run's rows of ``crosscheck``, ``regions``,
    ``cases`` and ``runs`` and inserts the new ones. A failure rolls it all
    back: the previous rows stay as they were.

    Args:
        db (str | sqlalchemy.Engine): URL (see :data:`DEFAULT_DB_URL`) or
            Engine. Missing tables are created.
        run (dict | str): ``name`` (required), ``model``, ``config``,
            ``checkpoint``, ``label_scheme``, ``convention`` (optional
            strings) and ``created_at`` (datetime or ISO string; defaults
            to now, UTC). A plain string is the name.
        reports (Iterable[dict]): Report dicts (the BraTS report JSON);
            case ids must be unique.
        chunk_size (int): Rows per INSERT statement. Defaults to 500.

    Returns:
        dict: ``run`` (the stored run dict), ``cases`` and ``regions``
        (rows written), ``replaced`` (whether the run existed).

    Raises:
        BraTSReportError: A bad run dict or report, or a repeated case id.
        BraTSDBURLError: A bad URL.
        BraTSDBOperationError: The database refused (connection, SQL).

    Examples:
        >>> export_reports('sqlite:///work_dirs/brats.sqlite',
        ...                dict(name='unet-fold0', model='unet'),
        ...                load_report_dir('work_dirs/unet/brats_out'))
        {'run': {...}, 'cases': 125, 'regions': 375, 'replaced': False}
    """
    run = _validate_run(run)
    clean, seen = [], {}
    for n, rep in enumerate(reports):
        where = f'report {n}'
        if isinstance(rep, dict) and isinstance(rep.get('case_id'), str):
            where = f'report {n} ({rep["case_id"]})'
        rep = validate_report(rep, where)
        if rep['case_id'] in seen:
            raise BraTSReportError(
                path=where, where="field 'case_id'", value=rep['case_id'],
                expected=f'unique case ids (also in report '
                f'{seen[rep["case_id"]]})')
        seen[rep['case_id']] = n
        clean.append(rep)
    case_rows = [_case_row(run['name'], r) for r in clean]
    region_rows = [
        _region_row(run['name'], rep, r) for rep in clean for r in REGIONS
    ]
    engine = get_engine(db)
    _create_tables(engine, ('runs', 'cases', 'regions', 'crosscheck'))
    t = TABLES
    table = 'runs'
    try:
        with engine.begin() as conn:
            replaced = conn.execute(
                select(t['runs'].c.name).where(
                    t['runs'].c.name == run['name'])).first() is not None
            for table in ('crosscheck', 'regions', 'cases', 'runs'):
                col = t[table].c.name if table == 'runs' else \
                    t[table].c.run
                conn.execute(delete(t[table]).where(col == run['name']))
            table = 'runs'
            conn.execute(insert(t['runs']), [run])
            for table, rows in (('cases', case_rows),
                                ('regions', region_rows)):
                for i in range(0, len(rows), chunk_size):
                    conn.execute(insert(t[table]), rows[i:i + chunk_size])
    except SQLAlchemyError as err:
        raise _db_error(err, engine, table,
                        f'exporting run {run["name"]!r}') from err
    return dict(run=run, cases=len(case_rows), regions=len(region_rows),
                replaced=replaced)


def _utc(value):
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value


@with_engine(must_exist=True)
def read_run(db: Any, run: str) -> dict:
    """One run as stored.

    Returns:
        dict: ``run`` (the runs row), ``cases`` and ``regions`` (rows as
        dicts, sorted by case id and region order WT, TC, ET) and
        ``reports`` (the report dicts rebuilt from the rows: equal to the
        exported ones, keys beyond the format aside).

    Raises:
        BraTSDBOperationError: No such run, or the database refused.
    """
    engine = get_engine(db)
    t = TABLES
    table = 'runs'
    try:
        if not inspect(engine).has_table('runs'):
            raise BraTSDBOperationError(
                path=safe_url(engine), where="table 'runs'",
                reason='no such table: nothing was exported to this '
                'database')
        with engine.connect() as conn:
            row = conn.execute(select(t['runs']).where(
                t['runs'].c.name == run)).mappings().first()
            if row is None:
                names = [r.name for r in conn.execute(
                    select(t['runs'].c.name).order_by(t['runs'].c.name))]
                raise BraTSDBOperationError(
                    path=safe_url(engine), where="table 'runs'",
                    reason='no such run', value=run,
                    expected=f'one of {names}' if names else 'an exported '
                    'run (the table is empty)')
            table = 'cases'
            cases = [dict(r) for r in conn.execute(
                select(t['cases']).where(t['cases'].c.run == run).order_by(
                    t['cases'].c.case_id)).mappings()]
            table = 'regions'
            regions = [dict(r) for r in conn.execute(
                select(t['regions']).where(
                    t['regions'].c.run == run)).mappings()]
    except SQLAlchemyError as err:
        raise _db_error(err, engine, table, f'reading run {run!r}') from err
    run_row = dict(row)
    run_row['created_at'] = _utc(run_row['created_at'])
    regions.sort(key=lambda r: (r['case_id'], REGIONS.index(r['region'])))
    by_case: Dict[str, Dict[str, dict]] = {}
    for r in regions:
        by_case.setdefault(r['case_id'], {})[r['region']] = r
    reports = [_report_from_rows(c, by_case.get(c['case_id'], {}))
               for c in cases]
    return dict(run=run_row, cases=cases, regions=regions, reports=reports)


@with_engine(must_exist=True)
def list_runs(db: Any) -> List[dict]:
    """The stored runs, oldest first, each with ``num_cases`` and the mean
    Dice per region over its cases (NULLs left out; None when none).

    Returns:
        list[dict]: ``name``, ``model``, ``config``, ``checkpoint``,
        ``label_scheme``, ``convention``, ``created_at``, ``num_cases``,
        ``wt_dice``, ``tc_dice``, ``et_dice``. Empty when nothing was
        exported (no tables).

    Raises:
        BraTSDBURLError: A bad URL, or a SQLite file that does not exist.
    """
    engine = get_engine(db)
    runs, cases = TABLES['runs'], TABLES['cases']
    try:
        if not inspect(engine).has_table('runs'):
            return []
        stats = select(
            cases.c.run, func.count().label('num_cases'),
            *[func.avg(cases.c[f'{r.lower()}_dice']).label(
                f'{r.lower()}_dice') for r in REGIONS]).group_by(
                    cases.c.run).subquery()
        query = select(
            runs, func.coalesce(stats.c.num_cases, 0).label('num_cases'),
            *[stats.c[f'{r.lower()}_dice'] for r in REGIONS]).outerjoin(
                stats, stats.c.run == runs.c.name).order_by(
                    runs.c.created_at, runs.c.name)
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
    except SQLAlchemyError as err:
        raise _db_error(err, engine, 'runs', 'listing runs') from err
    for r in rows:
        r['created_at'] = _utc(r['created_at'])
        for k in ('wt_dice', 'tc_dice', 'et_dice'):
            r[k] = None if r[k] is None else float(r[k])
    return rows


def markdown_table(rows: Sequence[dict],
                   columns: Sequence[str],
                   floats: str = '.4f') -> str:
    """A Markdown table of ``rows`` (dicts) with ``columns``; None is
    shown as empty, floats with ``floats``, datetimes as ISO seconds."""

    def cell(v):
        if v is None:
            return ''
        if isinstance(v, float):
            return format(v, floats)
        if isinstance(v, datetime.datetime):
            return v.isoformat(timespec='seconds')
        return str(v).replace('|', '\\|').replace('\n', ' ')

    lines = ['| ' + ' | '.join(columns) + ' |',
             '|' + '|'.join('---' for _ in columns) + '|']
    lines += ['| ' + ' | '.join(cell(r.get(c)) for c in columns) + ' |'
              for r in rows]
    return '\n'.join(lines)
