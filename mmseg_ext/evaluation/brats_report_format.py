# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The tumour-report format: its fields, the one validator, the readers and
the per-case x region CSV.

A report is the JSON :func:`mmseg_ext.evaluation.brats_report.tumour_report`
writes (fields in ``docs/brats.md``). :func:`validate_tumour_report` is the
one validator of the format (the database export,
:mod:`mmseg_ext.apis.brats_db`, uses it too): it names the file, the field
(``field 'regions.WT.voxels'``), the value and what was expected;
:func:`read_tumour_report` adds the line and column of broken JSON,
:func:`load_report_dir` reads a metric's whole ``reports/`` folder.
:func:`region_row` flattens a region into the columns of ``reports.csv``,
which are also those of the database's ``regions`` table.
"""
import csv
import glob
import json
import math
import os.path as osp
import sys
from typing import Any, List, Mapping, Optional, Sequence

from mmseg_ext.datasets.brats.labels import LABEL_SCHEMES, REGIONS
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.io import atomic_path

__all__ = [
    'CASE_ID_MAX_LEN', 'HEMISPHERES', 'REGION_FIELDS', 'REPORT_CSV_COLUMNS',
    'REPORT_FIELDS', 'SOURCES', 'TumourReportError', 'load_report_dir',
    'read_tumour_report', 'region_row', 'report_path',
    'validate_tumour_report', 'write_reports_csv'
]

#: Values of a report's ``source``.
SOURCES = ('prediction', 'ground_truth')
#: Values of a REGION's ``hemisphere`` (null: no voxels).
HEMISPHERES = ('left', 'right', 'bilateral')
#: Keys of a report, of a REGION, of a metric and of an atlas entry.
REPORT_FIELDS = ('case_id', 'shape', 'spacing', 'affine', 'label_scheme',
                 'source', 'metrics', 'regions')
REGION_FIELDS = ('voxels', 'volume_cm3', 'components', 'centroid_voxel',
                 'centroid_world', 'bbox_voxel', 'hemisphere', 'atlas')
METRIC_FIELDS = ('dice', 'hd95')
ATLAS_FIELDS = ('label', 'name', 'fraction')
#: Longest case id (the ``VARCHAR`` of :mod:`mmseg_ext.apis.brats_db`).
CASE_ID_MAX_LEN = 200
#: Columns of ``reports.csv`` and of the database's ``regions`` table
#: (:func:`region_row`).
REPORT_CSV_COLUMNS = (
    'case_id', 'region', 'voxels', 'volume_cm3', 'components', 'centroid_i',
    'centroid_j', 'centroid_k', 'centroid_x', 'centroid_y', 'centroid_z',
    'bbox_i0', 'bbox_j0', 'bbox_k0', 'bbox_i1', 'bbox_j1', 'bbox_k1',
    'hemisphere', 'atlas_top', 'atlas_top_fraction', 'dice', 'hd95')


class TumourReportError(InputError):
    """A tumour report, atlas or atlas-names file that is not valid (also
    :class:`mmseg_ext.apis.brats_db_reports.BraTSReportError`, the same
    class)."""


# -- reading ----------------------------------------------------------------


def _fail(path, field, value, expected):
    raise TumourReportError(path=path, where=f'field {field!r}', value=value,
                            expected=expected)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    """A finite float, or an int that fits one (JSON ints are unbounded:
    ``float(10**400)`` raises OverflowError)."""
    if _is_int(v):
        return -sys.float_info.max <= v <= sys.float_info.max
    return isinstance(v, float) and math.isfinite(v)


def _numbers(path, field, v, n, ints=False, positive=False, nullable=False):
    """``n`` numbers (a list; a tuple in a dict given in memory) as a list
    of ints / floats; None passes when ``nullable``."""
    if v is None and nullable:
        return None
    check = _is_int if ints else _is_num
    if not isinstance(v, (list, tuple)) or len(v) != n or not all(
            check(x) and (not positive or x > 0) for x in v):
        kind = ('positive ' if positive else '') + (
            'integers' if ints else 'finite numbers')
        _fail(path, field, v,
              f'a list of {n} {kind}' + (' or null' if nullable else ''))
    return [int(x) if ints else float(x) for x in v]


def _opt_num(path, field, v, low, high=None, nullable=True):
    if v is None and nullable:
        return None
    if not _is_num(v) or v < low or (high is not None and v > high):
        rng = f'in [{low}, {high}]' if high is not None else f'>= {low}'
        _fail(path, field, v, f'a finite number {rng}' +
              (' or null (NaN / inf are written as null)'
               if nullable else ''))
    return float(v)


def _keys(path, field, obj, keys, what='an object'):
    """``obj`` is a dict with exactly ``keys``."""
    if not isinstance(obj, dict) or set(obj) != set(keys):
        _fail(path, field, sorted(map(str, obj)) if isinstance(obj, dict)
              else obj, f'{what} with the keys {list(keys)}')


def _validate_region(path, field, reg, shape) -> dict:
    if not isinstance(reg, dict):
        _fail(path, field, type(reg).__name__, 'an object')
    for key in REGION_FIELDS:
        if key not in reg:
            _fail(path, f'{field}.{key}', 'missing',
                  'present (null where the format allows)')
    out = {}
    for key in ('voxels', 'components'):
        if not _is_int(reg[key]) or reg[key] < 0:
            _fail(path, f'{field}.{key}', reg[key], 'an integer >= 0')
        out[key] = int(reg[key])
    out['volume_cm3'] = _opt_num(path, f'{field}.volume_cm3',
                                 reg['volume_cm3'], 0, nullable=False)
    empty = out['voxels'] == 0
    # An empty region has no centroid, box or side; a non-empty one has.
    for key in ('centroid_voxel', 'centroid_world', 'bbox_voxel',
                'hemisphere'):
        if empty and reg[key] is not None:
            _fail(path, f'{field}.{key}', reg[key], 'null (no voxels)')
        out[key] = None
    if not empty:
        for key in ('centroid_voxel', 'centroid_world'):
            out[key] = _numbers(path, f'{field}.{key}', reg[key], 3)
        bbox = reg['bbox_voxel']
        expected = ('[[i0, j0, k0], [i1, j1, k1]] with 0 <= min < max <= '
                    f'shape {list(shape)}')
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 2:
            _fail(path, f'{field}.bbox_voxel', bbox, expected)
        bbox = [
            _numbers(path, f'{field}.bbox_voxel[{e}]', b, 3, ints=True)
            for e, b in enumerate(bbox)
        ]
        if not all(0 <= a < b <= s for a, b, s in zip(*bbox, shape)):
            _fail(path, f'{field}.bbox_voxel', bbox, expected)
        out['bbox_voxel'] = bbox
        hemi = reg['hemisphere']
        if not isinstance(hemi, str) or hemi not in HEMISPHERES:
            _fail(path, f'{field}.hemisphere', hemi,
                  f'one of {list(HEMISPHERES)}')
        out['hemisphere'] = hemi
    atlas = reg['atlas']
    if atlas is not None:
        if not isinstance(atlas, list):
            _fail(path, f'{field}.atlas', type(atlas).__name__,
                  'a list of {"label", "name", "fraction"} or null')
        entries = []
        for n, entry in enumerate(atlas):
            where = f'{field}.atlas[{n}]'
            _keys(path, where, entry, ATLAS_FIELDS)
            if not _is_int(entry['label']):
                _fail(path, f'{where}.label', entry['label'], 'an integer')
            if not isinstance(entry['name'], str):
                _fail(path, f'{where}.name', entry['name'], 'a string')
            entries.append(dict(
                label=int(entry['label']), name=entry['name'],
                fraction=_opt_num(path, f'{where}.fraction',
                                  entry['fraction'], 0, 1, nullable=False)))
        atlas = entries
    out['atlas'] = atlas
    return out


def validate_tumour_report(report: Any, path: Optional[str] = None) -> dict:
    """Check a report dict (the format of :func:`tumour_report`) and return
    a clean copy.

    The one validator of the format (the metric's tests and the database
    export, :mod:`mmseg_ext.apis.brats_db`, use it). Besides types and
    ranges it checks that the parts agree: a region without voxels has
    null ``centroid_*``, ``bbox_voxel`` and ``hemisphere``, a region with
    voxels has them all, and the box lies in ``shape``. ``metrics``,
    ``regions`` and atlas entries must have exactly the format's keys;
    keys beyond the format at the top level or in a REGION are ignored
    and not copied. Numbers must be finite (the JSON has null for NaN /
    inf); ints stay ints, other numbers become floats.

    Args:
        report: The report (a dict parsed from JSON, or built in memory;
            there tuples may stand for lists).
        path (str, optional): Its file or a name (``'report 3 (c3)'``),
            the start of the messages. Defaults to None.

    Returns:
        dict: ``case_id``, ``shape``, ``spacing``, ``affine``,
        ``label_scheme``, ``source``, ``metrics`` (``{region: {'dice',
        'hd95'}}`` or None) and ``regions`` (``{region: REGION}``).

    Raises:
        TumourReportError: For the first missing or bad field, naming
            ``path``, the field (``field 'regions.WT.voxels'``), the value
            and what was expected.

    Examples:
        >>> import numpy as np
        >>> from mmseg_ext.evaluation.brats_report import tumour_report
        >>> regions = np.zeros((3, 4, 4, 4), bool)
        >>> rep = tumour_report(regions, np.eye(4), (1, 1, 1), 'c1',
        ...                     'brats2020')
        >>> validate_tumour_report(rep)['regions']['WT']['voxels']
        0
        >>> try:
        ...     validate_tumour_report(dict(rep, case_id=''), 'c1.json')
        ... except TumourReportError as err:
        ...     print(err.path, err.where)
        c1.json field 'case_id'
    """
    if not isinstance(report, dict):
        _fail(path, '(top level)', type(report).__name__, 'a JSON object')
    for key in REPORT_FIELDS:
        if key not in report:
            _fail(path, key, 'missing', 'present')
    case_id = report['case_id']
    if not isinstance(case_id, str) or not case_id.strip() or \
            case_id != case_id.strip() or len(case_id) > CASE_ID_MAX_LEN:
        _fail(path, 'case_id', case_id,
              'a non-empty string without surrounding spaces, at most '
              f'{CASE_ID_MAX_LEN} characters')
    shape = _numbers(path, 'shape', report['shape'], 3, ints=True,
                     positive=True)
    spacing = _numbers(path, 'spacing', report['spacing'], 3, positive=True)
    affine = report['affine']
    if not isinstance(affine, (list, tuple)) or len(affine) != 4:
        _fail(path, 'affine', affine, 'a 4x4 list of finite numbers')
    affine = [
        _numbers(path, f'affine[{n}]', row, 4) for n, row in enumerate(affine)
    ]
    for key, allowed in (('label_scheme', sorted(LABEL_SCHEMES)),
                         ('source', list(SOURCES))):
        if not isinstance(report[key], str) or report[key] not in allowed:
            _fail(path, key, report[key], f'one of {allowed}')
    metrics = report['metrics']
    if metrics is not None:
        _keys(path, 'metrics', metrics, REGIONS, 'null or an object')
        for r in REGIONS:
            _keys(path, f'metrics.{r}', metrics[r], METRIC_FIELDS)
        metrics = {
            r: dict(dice=_opt_num(path, f'metrics.{r}.dice',
                                  metrics[r]['dice'], 0, 1),
                    hd95=_opt_num(path, f'metrics.{r}.hd95',
                                  metrics[r]['hd95'], 0))
            for r in REGIONS
        }
    _keys(path, 'regions', report['regions'], REGIONS)
    regions = {
        r: _validate_region(path, f'regions.{r}', report['regions'][r], shape)
        for r in REGIONS
    }
    return dict(case_id=case_id, shape=shape, spacing=spacing, affine=affine,
                label_scheme=report['label_scheme'], source=report['source'],
                metrics=metrics, regions=regions)


class _JSONConstant(float):
    """``NaN`` / ``Infinity`` / ``-Infinity`` as parsed from a file (not
    JSON): a float that shows the token, so the field's error says
    ``got NaN``."""

    def __new__(cls, token):
        obj = super().__new__(cls, token)
        obj.token = token
        return obj

    def __repr__(self):
        return self.token


def read_tumour_report(path: str) -> dict:
    """Read a report JSON file and validate it
    (:func:`validate_tumour_report`).

    Args:
        path (str): The JSON file.

    Returns:
        dict: The clean report (``null`` as None).

    Raises:
        TumourReportError: For a file that cannot be read, broken JSON
            (naming the line and column), ``NaN`` / ``Infinity`` anywhere
            (naming the field where the format has one) or a report that
            breaks the format (naming the field).
    """
    constants = []

    def constant(token):
        constants.append(token)
        return _JSONConstant(token)

    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        report = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as err:
        raise TumourReportError(
            path=path, where=f'line {err.lineno}, column {err.colno}',
            reason=f'tumour report is not valid JSON: {err.msg}') from None
    except (OSError, UnicodeDecodeError, RecursionError) as err:
        raise TumourReportError(path=path, reason='tumour report',
                                value=f'{type(err).__name__}: {err}',
                                expected='a readable JSON file') from err
    clean = validate_tumour_report(report, path)
    if constants:  # where the format ignores the key
        raise TumourReportError(
            path=path, where='(JSON)', reason=f'{constants[0]} is not JSON',
            expected='null instead of NaN / Infinity')
    return clean


def _reports_dir(out_dir: str) -> str:
    return osp.join(out_dir, 'reports')


def report_path(out_dir: str, case_id: str) -> str:
    """``{out_dir}/reports/{case_id}.json``."""
    return osp.join(_reports_dir(out_dir), f'{case_id}.json')


def load_report_dir(out_dir: str) -> List[dict]:
    """The reports ``{out_dir}/reports/*.json`` (``out_dir`` of
    ``BraTSMetric``), read with :func:`read_tumour_report`, sorted by case
    id.

    Args:
        out_dir (str): The metric's ``out_dir``.

    Returns:
        list[dict]: The clean reports.

    Raises:
        TumourReportError: The folder is missing or holds no ``*.json``, a
            file is bad, or its name is not ``{case_id}.json``.
    """
    folder = _reports_dir(out_dir)
    if not osp.isdir(folder):
        raise TumourReportError(
            path=folder, reason='report folder', value='not a folder',
            expected="BraTSMetric's out_dir (it holds reports/"
            '{case_id}.json)')
    paths = sorted(glob.glob(osp.join(folder, '*.json')))
    if not paths:
        raise TumourReportError(
            path=folder, reason='report folder', value='no *.json file',
            expected='one {case_id}.json per case')
    reports = []
    for p in paths:
        rep = read_tumour_report(p)
        stem = osp.basename(p)[:-len('.json')]
        if stem != rep['case_id']:
            raise TumourReportError(
                path=p, where="field 'case_id'", value=rep['case_id'],
                expected=f'{stem!r} (the file name)')
        reports.append(rep)
    return sorted(reports, key=lambda r: r['case_id'])


# -- reports.csv ------------------------------------------------------------


def _csv_value(v) -> str:
    if v is None:
        return ''
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ''
    return str(v)


def region_row(report: Mapping, region: str) -> dict:
    """The row of one region of a report in ``reports.csv`` and in the
    database's ``regions`` table: ``{column: value}`` for
    :data:`REPORT_CSV_COLUMNS`, None where the report has null (no voxels,
    no atlas, no ground truth).

    ``atlas_top`` / ``atlas_top_fraction`` are the name and fraction of the
    label the region overlaps most (the first atlas entry).
    """
    reg = report['regions'][region]
    metric = (report.get('metrics') or {}).get(region) or {}
    top = reg['atlas'][0] if reg['atlas'] else None
    row = dict(case_id=report['case_id'], region=region,
               voxels=reg['voxels'], volume_cm3=reg['volume_cm3'],
               components=reg['components'], hemisphere=reg['hemisphere'],
               atlas_top=top['name'] if top else None,
               atlas_top_fraction=top['fraction'] if top else None,
               dice=metric.get('dice'), hd95=metric.get('hd95'))
    for key, axes in (('centroid_voxel', 'ijk'), ('centroid_world', 'xyz')):
        row.update({
            f'centroid_{a}': v
            for a, v in zip(axes, reg[key] or [None] * 3)
        })
    bbox = reg['bbox_voxel'] or [[None] * 3] * 2
    for e in range(2):
        row.update({f'bbox_{a}{e}': v for a, v in zip('ijk', bbox[e])})
    return {c: row[c] for c in REPORT_CSV_COLUMNS}


def write_reports_csv(path: str, reports: Sequence[Mapping]) -> None:
    """One CSV row per case x region (:data:`REPORT_CSV_COLUMNS`, see
    :func:`region_row`), atomically.

    Rows are sorted by case id, regions in the order WT, TC, ET; a missing
    value (no voxels, no atlas, no ground truth) is an empty field.
    """
    with atomic_path(path) as tmp:
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f, lineterminator='\n')
            writer.writerow(REPORT_CSV_COLUMNS)
            for rep in sorted(reports, key=lambda r: r['case_id']):
                for name in REGIONS:
                    row = region_row(rep, name)
                    writer.writerow([_csv_value(v) for v in row.values()])
