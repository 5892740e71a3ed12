# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Per-case tumour reports: where each BraTS region is and how big it is.

One report per case (JSON, the format the database export reads; see
``docs/readme/brats_eval.md``), and one CSV row per case x region for all
cases. Per region (WT, TC, ET):

- ``voxels`` and ``volume_cm3`` (voxels x the product of the spacing,
  mm^3 / 1000);
- ``components``: connected components with 26-connectivity (voxels that
  share a face, an edge or a corner are connected: the usual choice for a
  3D lesion count, and what ``cc3d`` and nnU-Net use), from ``cc3d`` when
  it is installed, else :func:`scipy.ndimage.label` with a 3 x 3 x 3
  structure (the same components);
- ``centroid_voxel`` (mean voxel index ``[i, j, k]``) and
  ``centroid_world`` (``affine @ [i, j, k, 1]``: mm, RAS as NIfTI's affine);
- ``bbox_voxel``: ``[[i0, j0, k0], [i1, j1, k1]]``, inclusive min and
  exclusive max;
- ``hemisphere``: each voxel's world x against the brain midline. In RAS,
  +x points to the patient's **right**, so a voxel with world x above the
  midline is in the right hemisphere, whatever the orientation of the
  array (a flipped affine flips the answer). The midline is the world x of
  the centre of the brain mask's bounding box when a brain mask is given
  (for BraTS: voxels nonzero in any modality, skull-stripped), else of the
  volume's centre voxel. ``'bilateral'`` when each side holds at least
  :data:`BILATERAL_FRACTION` (10 %) of the region's voxels (or the region
  lies on the midline plane), else the side holding more;
- ``atlas``: with an atlas label volume on the same grid (same shape, affine
  within 1e-3 mm) and label names, the atlas labels the region overlaps,
  as fractions of the region's voxels, largest first (label 0, outside the
  atlas, is left out, so the fractions may sum to less than 1).

Atlas label names come as a dict ``{label: name}``, a JSON file (an object
``{"1": "Frontal lobe", ...}``, or a list of names, index = label) or a CSV
file with a header ``label,name``.

NaN / inf floats (e.g. an HD95 under the ``'nan'`` convention) are written
as ``null``. The format's fields, its validator and readers live in
:mod:`mmseg_ext.evaluation.brats_report_format` (re-exported here):
:func:`validate_tumour_report` is the one validator of the
format (the database export, :mod:`mmseg_ext.apis.brats_db`, uses it too):
it names the file, the field (``field 'regions.WT.voxels'``), the value and
what was expected; :func:`read_tumour_report` adds the line and column of
broken JSON, :func:`load_report_dir` reads a metric's whole ``reports/``
folder. :func:`region_row` flattens a region into the columns of
``reports.csv``, which are also those of the database's ``regions`` table.
"""
import csv
import json
import math
from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from mmseg_ext.datasets.brats.labels import LABEL_SCHEMES, REGIONS
from mmseg_ext.utils.io import dump_json_atomic
# The format (fields, validator, readers, CSV) lives in its own module;
# re-exported here, the module users import.
from .brats_report_format import (  # noqa: F401
    CASE_ID_MAX_LEN, HEMISPHERES, METRIC_FIELDS, REGION_FIELDS,
    REPORT_CSV_COLUMNS, REPORT_FIELDS, SOURCES, TumourReportError,
    load_report_dir, read_tumour_report, region_row, report_path,
    validate_tumour_report, write_reports_csv)

try:  # optional, ~5x faster than scipy on a BraTS volume
    import cc3d as _cc3d
except ImportError:  # pragma: no cover - depends on the environment
    _cc3d = None

__all__ = [
    'Atlas', 'BILATERAL_FRACTION', 'CASE_ID_MAX_LEN', 'HEMISPHERES',
    'REGION_FIELDS', 'REPORT_CSV_COLUMNS', 'REPORT_FIELDS', 'SOURCES',
    'TumourReportError', 'load_atlas', 'load_report_dir', 'read_atlas_names',
    'read_tumour_report', 'region_row', 'report_path', 'tumour_report',
    'validate_tumour_report', 'write_reports_csv', 'write_tumour_report'
]

#: Each side must hold at least this fraction of a region's voxels for
#: the region to be ``'bilateral'``.
BILATERAL_FRACTION = 0.1
#: Largest affine difference (mm) between an atlas and the case.
ATLAS_AFFINE_ATOL = 1e-3


class Atlas(NamedTuple):
    """An atlas label volume with its names (see :func:`load_atlas`).

    Attributes:
        data (np.ndarray): ``(X, Y, Z)`` integer labels.
        affine (np.ndarray | None): ``(4, 4)``; None skips the check.
        names (dict[int, str]): Label names.
        path (str | None): The file, for error messages.
    """
    data: np.ndarray
    affine: Optional[np.ndarray]
    names: Dict[int, str]
    path: Optional[str]


def read_atlas_names(names: Union[None, str, Mapping]) -> Dict[int, str]:
    """Atlas label names from a dict, a JSON file or a CSV file.

    Args:
        names (dict | str | None): ``{label: name}``; a ``.json`` file
            holding such an object (keys may be strings) or a list of names
            (index = label); a ``.csv`` file with the header
            ``label,name``. None gives ``{}`` (labels named by number).

    Returns:
        dict[int, str]: The names.

    Raises:
        TumourReportError: naming the file and the entry that is not an
            integer label with a string name.
    """
    if names is None:
        return {}
    path = None
    if isinstance(names, str):
        path = names
        try:
            if names.lower().endswith('.csv'):
                with open(names, newline='', encoding='utf-8') as f:
                    reader = csv.reader(f)
                    header = next(reader, None)
                    if header is None or [h.strip().lower() for h in header
                                          ] != ['label', 'name']:
                        raise TumourReportError(
                            path=path, where='line 1', reason='header',
                            value=header, expected="'label,name'")
                    items = []
                    for line, row in enumerate(reader, 2):
                        if len(row) != 2:
                            raise TumourReportError(
                                path=path, where=f'line {line}', value=row,
                                expected='2 fields: label,name')
                        items.append((row[0], row[1], f'line {line}'))
            else:
                with open(names, encoding='utf-8') as f:
                    data = json.load(f)
                if isinstance(data, list):
                    data = dict(enumerate(data))
                if not isinstance(data, dict):
                    raise TumourReportError(
                        path=path, reason='atlas names', value=type(data),
                        expected='a JSON object {label: name} or a list')
                items = [(k, v, f'key {k!r}') for k, v in data.items()]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError,
                csv.Error, RecursionError) as err:
            raise TumourReportError(path=path, reason='atlas names file',
                                    value=str(err),
                                    expected='a readable JSON or CSV file'
                                    ) from err
    elif isinstance(names, Mapping):
        items = [(k, v, f'key {k!r}') for k, v in names.items()]
    else:
        raise TypeError('`atlas_names` should be a dict, a JSON/CSV path or '
                        f'None, but got {type(names).__name__}')
    out = {}
    for key, value, where in items:
        try:
            label = int(str(key).strip())
        except ValueError:
            label = None
        if label is None or label < 0 or not isinstance(value, str):
            raise TumourReportError(
                path=path, where=where, value=(key, value),
                expected='a non-negative integer label and a string name')
        out[label] = value.strip()
    return out


def load_atlas(atlas, names=None) -> Atlas:
    """An :class:`Atlas` from a NIfTI path, an array or an :class:`Atlas`.

    Args:
        atlas (str | np.ndarray | Atlas): A label NIfTI file (read with
            :func:`mmseg_ext.datasets.brats.read_nifti`), or a ``(X, Y,
            Z)`` label array (no affine check).
        names: See :func:`read_atlas_names`; ignored for an ``Atlas``.

    Returns:
        Atlas: The atlas.

    Raises:
        TumourReportError: for a non-integer or non-3D atlas, or bad names.
        InputError: for an unreadable NIfTI file.
    """
    if isinstance(atlas, Atlas):
        return atlas
    path, affine = None, None
    if isinstance(atlas, str):
        from mmseg_ext.datasets.brats.nifti import read_nifti
        path = atlas
        img = read_nifti(atlas, where='atlas')
        data, affine = np.asanyarray(img.dataobj), np.asarray(img.affine)
    else:
        data = np.asarray(atlas)
    if data.ndim != 3 or not (data.dtype.kind in 'iu' or (
            data.dtype.kind == 'f' and np.array_equal(data, np.round(data)))):
        raise TumourReportError(path=path, reason='atlas',
                                value=f'shape {data.shape}, {data.dtype}',
                                expected='an (X, Y, Z) integer label volume')
    return Atlas(data.astype(np.int64, copy=False), affine,
                 read_atlas_names(names), path)


def _check_atlas_grid(atlas: Atlas, shape, affine) -> None:
    if tuple(atlas.data.shape) != tuple(shape):
        raise TumourReportError(
            path=atlas.path, reason='atlas grid',
            value=f'shape {tuple(atlas.data.shape)}',
            expected=f'the case grid {tuple(shape)}; resample the atlas '
            'to the case (e.g. to SRI24 for BraTS) first')
    if atlas.affine is not None and not np.allclose(
            atlas.affine, affine, rtol=0, atol=ATLAS_AFFINE_ATOL):
        diff = float(np.abs(np.asarray(atlas.affine) - affine).max())
        raise TumourReportError(
            path=atlas.path, reason='atlas grid',
            value=f'affine differs by up to {diff:.4g} mm',
            expected='the affine of the case; resample the atlas first')


def count_components(mask: np.ndarray) -> int:
    """26-connected components of a ``(X, Y, Z)`` mask."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0
    if _cc3d is not None:
        _, num = _cc3d.connected_components(
            mask.view(np.uint8), connectivity=26, return_N=True)
        return int(num)
    from scipy import ndimage  # pragma: no cover - cc3d is installed here
    return int(ndimage.label(mask, np.ones((3, 3, 3), bool))[1])


def _bbox(mask: np.ndarray):
    plane = mask.any(axis=2)
    hits = [plane.any(axis=1), plane.any(axis=0), mask.any(axis=(0, 1))]
    lo = [int(np.flatnonzero(h)[0]) for h in hits]
    hi = [int(np.flatnonzero(h)[-1]) + 1 for h in hits]
    return lo, hi


def _midline_x(affine: np.ndarray, shape, brain_mask) -> float:
    if brain_mask is not None and np.any(brain_mask):
        lo, hi = _bbox(np.asarray(brain_mask, dtype=bool))
        centre = [(a + b - 1) / 2 for a, b in zip(lo, hi)]
    else:
        centre = [(s - 1) / 2 for s in shape]
    return float(affine[0, :3] @ np.asarray(centre) + affine[0, 3])


def _region(mask, affine, voxel_volume, midline, atlas) -> dict:
    voxels = int(np.count_nonzero(mask))
    out = dict(voxels=voxels, volume_cm3=voxels * voxel_volume / 1000.0,
               components=0, centroid_voxel=None, centroid_world=None,
               bbox_voxel=None, hemisphere=None, atlas=None)
    if not voxels:
        if atlas is not None:
            out['atlas'] = []
        return out
    lo, hi = _bbox(mask)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    crop = mask[box]
    idx = np.nonzero(crop)
    ijk = [i.astype(np.float64) + o for i, o in zip(idx, lo)]
    centroid = [float(c.mean()) for c in ijk]
    out['components'] = count_components(crop)
    out['centroid_voxel'] = centroid
    out['centroid_world'] = [
        float(v) for v in (affine @ np.asarray(centroid + [1.0]))[:3]
    ]
    out['bbox_voxel'] = [lo, hi]
    x = affine[0, 0] * ijk[0] + affine[0, 1] * ijk[1] + \
        affine[0, 2] * ijk[2] + affine[0, 3]
    right = np.count_nonzero(x > midline) / voxels
    left = np.count_nonzero(x < midline) / voxels
    if (right >= BILATERAL_FRACTION and left >= BILATERAL_FRACTION) or \
            right == left:  # both sides, or all on the midline plane
        out['hemisphere'] = 'bilateral'
    else:
        out['hemisphere'] = 'right' if right > left else 'left'
    if atlas is not None:
        labels, counts = np.unique(atlas.data[box][crop], return_counts=True)
        entries = [
            dict(label=int(lab), name=atlas.names.get(int(lab), str(lab)),
                 fraction=float(n) / voxels)
            for lab, n in zip(labels, counts) if lab != 0
        ]
        out['atlas'] = sorted(entries,
                              key=lambda e: (-e['fraction'], e['label']))
    return out


def _finite(value):
    """Floats that are NaN / inf as None, recursively (JSON ``null``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def tumour_report(regions: np.ndarray,
                  affine,
                  spacing: Sequence[float],
                  case_id: str,
                  label_scheme: str,
                  metrics: Optional[Mapping] = None,
                  atlas=None,
                  atlas_names=None,
                  source: str = 'prediction',
                  brain_mask: Optional[np.ndarray] = None) -> dict:
    """The report of one case (the JSON of ``docs/readme/brats_eval.md``).

    Args:
        regions (np.ndarray): ``(3, X, Y, Z)`` masks WT, TC, ET.
        affine (array-like): ``(4, 4)`` voxel → world (mm, RAS).
        spacing (Sequence[float]): mm per voxel along X, Y, Z.
        case_id (str): The case.
        label_scheme (str): Recorded in the report.
        metrics (dict, optional): ``{'WT': {'dice': d, 'hd95': h}, ...}``
            (:func:`compute_region_metrics`); None when there is no ground
            truth. Defaults to None.
        atlas (str | np.ndarray | Atlas, optional): Atlas label volume on
            the case grid (see :func:`load_atlas`). Defaults to None.
        atlas_names (dict | str, optional): See :func:`read_atlas_names`.
            Defaults to None.
        source (str): ``'prediction'`` or ``'ground_truth'``.
            Defaults to ``'prediction'``.
        brain_mask (np.ndarray, optional): ``(X, Y, Z)`` brain voxels; its
            bounding-box centre is the midline for ``hemisphere``.
            Defaults to None (the volume centre).

    Returns:
        dict: The report; NaN / inf floats are None.

    Raises:
        ValueError: for shapes or arguments that do not fit.
        TumourReportError: for an atlas on another grid (naming its file).

    Examples:
        >>> regions = np.zeros((3, 10, 10, 10), bool)
        >>> regions[:, 6:8, 4:6, 4:6] = True
        >>> rep = tumour_report(regions, np.eye(4), (1, 1, 1), 'c1',
        ...                     'brats2020')
        >>> rep['regions']['ET']['voxels'], rep['regions']['ET']['hemisphere']
        (8, 'right')
    """
    regions = np.asarray(regions)
    if regions.ndim != 4 or regions.shape[0] != len(REGIONS):
        raise ValueError(f'`regions` should be (3, X, Y, Z) masks in the order'
                         f' {REGIONS}, but got shape {regions.shape}')
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError('`affine` should be a finite (4, 4) matrix, but got '
                         f'shape {affine.shape}')
    spacing = [float(s) for s in spacing]
    if len(spacing) != 3 or not all(s > 0 and math.isfinite(s)
                                    for s in spacing):
        raise ValueError('`spacing` should be 3 positive numbers, but got '
                         f'{spacing!r}')
    if label_scheme not in LABEL_SCHEMES:
        raise ValueError(f'`label_scheme` should be one of '
                         f'{sorted(LABEL_SCHEMES)}, but got {label_scheme!r}')
    if source not in SOURCES:
        raise ValueError(f'`source` should be one of {SOURCES}, but got '
                         f'{source!r}')
    shape = regions.shape[1:]
    if atlas is not None:
        atlas = load_atlas(atlas, atlas_names)
        _check_atlas_grid(atlas, shape, affine)
    midline = _midline_x(affine, shape, brain_mask)
    voxel_volume = float(np.prod(spacing))
    report = dict(
        case_id=str(case_id), shape=[int(s) for s in shape], spacing=spacing,
        affine=affine.tolist(), label_scheme=label_scheme, source=source,
        metrics=None if metrics is None else {
            r: {k: math.nan if metrics[r][k] is None else float(
                metrics[r][k]) for k in METRIC_FIELDS}
            for r in REGIONS
        },
        regions={
            name: _region(mask if mask.dtype == np.bool_ else mask != 0,
                          affine, voxel_volume, midline, atlas)
            for name, mask in zip(REGIONS, regions)
        })
    return _finite(report)


def write_tumour_report(path: str, report: Mapping) -> None:
    """Write a report as JSON atomically (NaN / inf as ``null``)."""
    dump_json_atomic(_finite(dict(report)), path, allow_nan=False)
