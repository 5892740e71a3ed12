# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Cross-check segmented BraTS tumours against a clinical table.

The clinical table (a CSV file, or a table in the same database as the
run) holds one row per case: the case id and the suspected hemisphere
and/or suspected atlas region (from the symptoms). Column names default to
``case_id``, ``suspected_hemisphere`` and ``suspected_region``; at least one
of the two suspected columns must exist. Hemispheres are ``left``,
``right`` or ``bilateral`` (any case; empty = unknown).

Per case (the union of the run's cases and the clinical ones):

``status``
    ``'matched'``, ``'no_segmentation'`` (in the clinical table, not in
    the run) or ``'no_clinical'`` (in the run, not in the clinical table).
``agrees_hemisphere``
    True when the segmented hemisphere of the region (WT by default) is
    the suspected one, or is ``bilateral`` while the suspected one is left
    or right (the tumour reaches the suspected side); False otherwise;
    None when either side is unknown (no row, an empty cell, an empty
    segmentation).
``agrees_region``
    True when the suspected region is among the ``top_k`` atlas regions
    the tumour overlaps (names compared case-insensitively); False when it
    is not; None when either is unknown (no atlas in the report).

:func:`write_crosscheck` stores the result in the ``crosscheck`` table
(:mod:`mmseg_ext.apis.brats_db`), replacing the run's previous rows in one
transaction, so SQL can join it with the clinical table on ``case_id``.
"""
import csv
import datetime
import json
from typing import Any, Dict, List, Optional, Sequence

from sqlalchemy import MetaData, Table, delete, insert, inspect, select
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from .brats_db import (HEMISPHERES, REGIONS, TABLES, BraTSDBError,
                       _create_tables, _db_error, get_engine, read_run,
                       safe_url, with_engine)

__all__ = [
    'DEFAULT_COLUMNS', 'CROSSCHECK_COLUMNS', 'ClinicalTableError',
    'read_clinical_csv', 'read_clinical_table', 'crosscheck',
    'write_crosscheck'
]

#: Default column names of the clinical table.
DEFAULT_COLUMNS = dict(case_id='case_id',
                       hemisphere='suspected_hemisphere',
                       region='suspected_region')

#: Columns of a cross-check row (CSV, Markdown and the database table).
CROSSCHECK_COLUMNS = ('case_id', 'status', 'suspected_hemisphere',
                      'segmented_hemisphere', 'agrees_hemisphere',
                      'suspected_region', 'top_regions', 'agrees_region')


class ClinicalTableError(BraTSDBError):
    """A bad clinical table: names the file (or table), the line (or row)
    and the column."""


def _columns(case_column, hemisphere_column, region_column):
    """Column names, and which of them were given (a given column must
    exist; a default one may be absent if the other suspected one is
    there)."""
    given = dict(case_id=case_column, hemisphere=hemisphere_column,
                 region=region_column)
    cols = {k: v or DEFAULT_COLUMNS[k] for k, v in given.items()}
    cols['given'] = {k for k, v in given.items() if v}
    return cols


def _check_header(source: str, header: Sequence[str], cols: dict,
                  where: str) -> None:
    for key in ('case_id', 'hemisphere', 'region'):
        if (key == 'case_id' or key in cols['given']) and \
                cols[key] not in header:
            raise ClinicalTableError(
                path=source, where=where,
                reason=f'no column {cols[key]!r}', value=list(header),
                expected='a header naming it (or pass the column name)')
    if cols['hemisphere'] not in header and cols['region'] not in header:
        raise ClinicalTableError(
            path=source, where=where,
            reason=f'neither {cols["hemisphere"]!r} nor {cols["region"]!r} '
            'is a column', value=list(header),
            expected='at least one suspected-location column (or pass the '
            'column names)')


def _parse_rows(source: str, rows, cols: dict, unit: str) -> Dict[str, dict]:
    out: Dict[str, dict] = {}
    for place, row in rows:
        where = f'{unit} {place}'
        case_id = row.get(cols['case_id'])
        case_id = '' if case_id is None else str(case_id).strip()
        if not case_id:
            raise ClinicalTableError(
                path=source, where=f'{where}, column {cols["case_id"]!r}',
                value=row.get(cols['case_id']), expected='a case id')
        if case_id in out:
            raise ClinicalTableError(
                path=source, where=f'{where}, column {cols["case_id"]!r}',
                reason='duplicate case id', value=case_id,
                expected=f'one row per case (first at {unit} '
                f'{out[case_id]["place"]})')
        hemi = row.get(cols['hemisphere'])
        hemi = None if hemi is None or not str(hemi).strip() else \
            str(hemi).strip().lower()
        if hemi is not None and hemi not in HEMISPHERES:
            raise ClinicalTableError(
                path=source, where=f'{where}, column {cols["hemisphere"]!r}',
                value=row.get(cols['hemisphere']),
                expected=f'one of {list(HEMISPHERES)} (any case) or empty')
        region = row.get(cols['region'])
        region = None if region is None or not str(region).strip() else \
            str(region).strip()
        out[case_id] = dict(case_id=case_id, suspected_hemisphere=hemi,
                            suspected_region=region, place=place)
    return out


def read_clinical_csv(path: str,
                      case_column: Optional[str] = None,
                      hemisphere_column: Optional[str] = None,
                      region_column: Optional[str] = None
                      ) -> Dict[str, dict]:
    """Read a clinical CSV (header row; UTF-8, a BOM is fine).

    Args:
        path (str): The file.
        case_column, hemisphere_column, region_column (str, optional):
            Column names; default to :data:`DEFAULT_COLUMNS`. A column named
            here must exist; of the two default suspected columns one may
            be absent. Other columns are ignored.

    Returns:
        dict[str, dict]: By case id: ``case_id``, ``suspected_hemisphere``
        (lower case, or None), ``suspected_region`` (or None), ``place``
        (the line number).

    Raises:
        ClinicalTableError: A missing column, an empty or repeated case
            id, a hemisphere that is not left/right/bilateral; the message
            names the line and column.
        FileNotFoundError: No such file.

    Examples:
        >>> read_clinical_csv('clinical.csv')['BraTS20_Training_001']
        {'case_id': 'BraTS20_Training_001', 'suspected_hemisphere': 'left',
         'suspected_region': 'left frontal', 'place': 2}
    """
    cols = _columns(case_column, hemisphere_column, region_column)
    with open(path, encoding='utf-8-sig', newline='') as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ClinicalTableError(path=path, where='line 1',
                                     value='empty file',
                                     expected='a header row') from None
        except csv.Error as err:
            raise ClinicalTableError(path=path, where='line 1',
                                     reason=f'not CSV: {err}') from None
        header = [h.strip() for h in header]
        _check_header(path, header, cols, 'line 1')

        def rows():
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as err:
                    raise ClinicalTableError(
                        path=path, where=f'line {reader.line_num}',
                        reason=f'not CSV: {err}') from None
                if not any(v.strip() for v in values):
                    continue  # blank line
                if len(values) != len(header):
                    raise ClinicalTableError(
                        path=path, where=f'line {reader.line_num}',
                        reason='number of fields', value=len(values),
                        expected=f'{len(header)} (as the header)')
                yield reader.line_num, dict(zip(header, values))

        return _parse_rows(path, rows(), cols, 'line')


@with_engine(must_exist=True)
def read_clinical_table(db: Any,
                        table: str,
                        case_column: Optional[str] = None,
                        hemisphere_column: Optional[str] = None,
                        region_column: Optional[str] = None
                        ) -> Dict[str, dict]:
    """Read a clinical table of a database (``schema.table`` or
    ``table``), with the rules of :func:`read_clinical_csv`; ``place`` is
    the row number in case-id order.

    Raises:
        ClinicalTableError: No such table, a missing column, or a bad row
            (named by its number and case id).
        BraTSDBOperationError: The database refused.
    """
    engine = get_engine(db)
    schema, _, name = table.rpartition('.')
    source = f'{safe_url(engine)} table {table!r}'
    cols = _columns(case_column, hemisphere_column, region_column)
    try:
        if not inspect(engine).has_table(name, schema=schema or None):
            raise ClinicalTableError(
                path=safe_url(engine), where=f'table {table!r}',
                reason='no such table',
                expected='an existing table (schema.table for another '
                'schema)')
        tab = Table(name, MetaData(), schema=schema or None,
                    autoload_with=engine)
        header = [c.name for c in tab.columns]
        _check_header(source, header, cols, 'header')
        chosen = [tab.c[cols[k]] for k in ('case_id', 'hemisphere',
                                           'region') if cols[k] in header]
        with engine.connect() as conn:
            result = conn.execute(
                select(*chosen).order_by(tab.c[cols['case_id']]))
            rows = [(n + 1, dict(r))
                    for n, r in enumerate(result.mappings())]
    except NoSuchTableError as err:
        raise ClinicalTableError(path=safe_url(engine),
                                 where=f'table {table!r}',
                                 reason='no such table') from err
    except SQLAlchemyError as err:
        raise _db_error(err, engine, table, 'reading the clinical table')\
            from err
    return _parse_rows(source, rows, cols, 'row')


def _agrees_hemisphere(suspected, segmented):
    if suspected is None or segmented is None:
        return None
    if suspected == segmented:
        return True
    return segmented == 'bilateral' and suspected in ('left', 'right')


@with_engine(must_exist=True)
def crosscheck(db: Any,
               run: str,
               clinical: Dict[str, dict],
               region: str = 'WT',
               top_k: int = 3) -> List[dict]:
    """Compare a stored run with the clinical rows (see the module
    docstring for the rules).

    Args:
        db (str | sqlalchemy.Engine): The database holding the run.
        run (str): The run name.
        clinical (dict[str, dict]): From :func:`read_clinical_csv` or
            :func:`read_clinical_table`.
        region (str): ``'WT'``, ``'TC'`` or ``'ET'``. Defaults to ``'WT'``.
        top_k (int): Atlas regions compared and listed. Defaults to 3.

    Returns:
        list[dict]: One row per case, sorted by case id, with
        :data:`CROSSCHECK_COLUMNS` (``top_regions``: ``'name (0.75); ...'``
        or None) and ``region``.

    Raises:
        ValueError: A bad ``region`` or ``top_k``.
        BraTSDBOperationError: No such run, or the database refused.
    """
    if region not in REGIONS:
        raise ValueError(f'`region` should be one of {REGIONS}, but got '
                         f'{region!r}')
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f'`top_k` should be an int >= 1, but got {top_k!r}')
    stored = {r['case_id']: r for r in read_run(db, run)['regions']
              if r['region'] == region}
    out = []
    for case_id in sorted(set(stored) | set(clinical)):
        seg, cli = stored.get(case_id), clinical.get(case_id)
        status = 'matched' if seg and cli else \
            ('no_segmentation' if cli else 'no_clinical')
        seg_hemi = seg['hemisphere'] if seg else None
        atlas = json.loads(seg['atlas']) if seg and seg['atlas'] else None
        top = [a for a in (atlas or []) if a['fraction'] > 0][:top_k]
        top_text = '; '.join(f'{a["name"]} ({a["fraction"]:.2f})'
                             for a in top) or None
        sus_hemi = cli['suspected_hemisphere'] if cli else None
        sus_region = cli['suspected_region'] if cli else None
        agrees_region = None
        if sus_region is not None and atlas is not None:
            names = {a['name'].strip().lower() for a in top}
            agrees_region = sus_region.strip().lower() in names
        out.append(dict(
            case_id=case_id, status=status, region=region,
            suspected_hemisphere=sus_hemi, segmented_hemisphere=seg_hemi,
            agrees_hemisphere=_agrees_hemisphere(sus_hemi, seg_hemi),
            suspected_region=sus_region, top_regions=top_text,
            agrees_region=agrees_region))
    return out


@with_engine
def write_crosscheck(db: Any, run: str, rows: Sequence[dict]) -> int:
    """Store :func:`crosscheck` rows in the ``crosscheck`` table, replacing
    the run's previous ones in one transaction.

    Returns:
        int: Rows written.

    Raises:
        BraTSDBOperationError: The database refused.
    """
    engine = get_engine(db)
    _create_tables(engine, ('crosscheck', ))
    table = TABLES['crosscheck']
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    records = [dict(run=run, checked_at=now,
                    **{k: r[k] for k in CROSSCHECK_COLUMNS + ('region', )})
               for r in rows]
    try:
        with engine.begin() as conn:
            conn.execute(delete(table).where(table.c.run == run))
            if records:
                conn.execute(insert(table), records)
    except SQLAlchemyError as err:
        raise _db_error(err, engine, 'crosscheck',
                        f'writing the cross-check of run {run!r}') from err
    return len(records)
