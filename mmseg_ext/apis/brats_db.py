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
(``{out_dir}/reports/{case_id}.json`` of ``BraTSMetric``), read and checked
by the format's one validator in :mod:`mmseg_ext.evaluation.brats_report`
(here under the names of :mod:`mmseg_ext.apis.brats_db_reports`:
:func:`load_report_dir`, :func:`validate_report`; re-exported); a region's
row is :func:`~mmseg_ext.evaluation.brats_report.region_row`, the row of
``reports.csv``.
"""
import datetime
import functools
import json
import os
import os.path as osp
from typing import Any, Dict, Iterable, List, Sequence, Union

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float,
                        ForeignKeyConstraint, Index, Integer, MetaData,
                        String, Table, Text, create_engine, delete, event,
                        func, insert, inspect, select)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from mmseg_ext.evaluation.brats_report import (METRIC_FIELDS,
                                               REPORT_CSV_COLUMNS, region_row)
from mmseg_ext.utils.errors import InputError
from .brats_db_reports import (_NAME_LEN, HEMISPHERES, REGIONS,
                               REPORT_SOURCES, BraTSReportError,
                               load_report_dir, read_report, validate_report)

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


class BraTSDBError(InputError):
    """Base of the database errors (bad URLs, refused operations, bad
    clinical tables); bad reports raise
    :class:`~mmseg_ext.apis.brats_db_reports.BraTSReportError`."""


class BraTSDBURLError(BraTSDBError):
    """A database URL that SQLAlchemy cannot use (syntax, dialect,
    driver)."""


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
        for m in METRIC_FIELDS
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
    # The columns of reports.csv (one list for both: REPORT_CSV_COLUMNS),
    # then the whole atlas list as JSON.
    types = dict(voxels=BigInteger, components=Integer,
                 hemisphere=String(9), atlas_top=Text)
    region_cols = [
        Column(c, types.get(c, Integer if c.startswith('bbox_') else Float),
               nullable=c not in ('voxels', 'volume_cm3', 'components'))
        for c in REPORT_CSV_COLUMNS[2:]
    ]
    regions = Table(
        'regions', meta,
        Column('run', name, primary_key=True),
        Column('case_id', name, primary_key=True),
        Column('region', String(2), primary_key=True),
        *region_cols,
        Column('atlas', Text),
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
    password = engine.url.password
    if password:  # a driver that echoes its connection string
        reason = reason.replace(str(password), '***')
    return BraTSDBOperationError(
        path=safe_url(engine), where=f'table {table!r}',
        reason=f'{action} failed: {type(orig).__name__}: {reason}')


def _create_tables(engine, names: Sequence[str]) -> None:
    try:
        metadata.create_all(engine, tables=[TABLES[n] for n in names])
    except SQLAlchemyError as err:
        raise _db_error(err, engine, ', '.join(names), 'creating tables')\
            from err


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
    atlas = rep['regions'][r]['atlas']
    return dict(region_row(rep, r), run=run_name,
                atlas=None if atlas is None else json.dumps(atlas))


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
