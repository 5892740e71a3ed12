# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Read and check BraTS tumour reports for the database export.

The format is the report JSON of ``BraTSMetric``
(``{out_dir}/reports/{case_id}.json``; see
``mmseg_ext.evaluation.brats_report``): ``case_id``, ``shape``, ``spacing``,
``affine``, ``label_scheme``, ``source``, ``metrics`` (per region ``dice``
and ``hd95``, or null) and ``regions`` (per region WT, TC, ET: ``voxels``,
``volume_cm3``, ``components``, ``centroid_voxel``, ``centroid_world``,
``bbox_voxel``, ``hemisphere``, ``atlas``). NaN / inf are null in the JSON.

This reader is kept beside the database code so that the export depends on
the format only, not on the evaluation code;
``mmseg_ext.evaluation.brats_report.read_tumour_report`` reads the same
format and may be used in its place. Keys beyond the format are ignored;
a missing or bad field is a :class:`BraTSReportError` naming the file and
the field (``field 'regions.WT.voxels'``).
"""
import glob
import json
import math
import os.path as osp
from typing import Any, List, Optional

from mmseg_ext.utils.errors import InputError

__all__ = [
    'REGIONS', 'REPORT_SOURCES', 'HEMISPHERES', 'BraTSReportError',
    'validate_report', 'read_report', 'load_report_dir'
]

REGIONS = ('WT', 'TC', 'ET')
REPORT_SOURCES = ('prediction', 'ground_truth')
HEMISPHERES = ('left', 'right', 'bilateral')
# Longest run name / case id the tables hold (VARCHAR).
_NAME_LEN = 200


class BraTSReportError(InputError):
    """A report (or run description) that does not follow the format:
    names the file (or report) and the field."""


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
