# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Convert BraTS cases once into an axial slice cache; patient-level folds.

Input: a BraTS root (see :mod:`mmseg_ext.datasets.brats.layout`). Output,
by default next to the data in ``{root}/brats_slices`` (every file written
to a temporary name, then renamed)::

    {out}/index.json                   # per-case index (below)
    {out}/cases/{case_id}/image.npy    # float16 (Z, X, Y, C)
    {out}/cases/{case_id}/label.npy    # uint16 (Z, X, Y, 1), labelled only
    {out}/splits/fold{k}_train.txt     # labelled case ids, by patient
    {out}/splits/fold{k}_val.txt
    {out}/splits/all.txt               # every labelled case
    {out}/splits/test.txt              # every unlabelled case

Axes are the NIfTI array's as nibabel gives them, ``(X, Y, Z)``, without
reorientation: an axial slice ``z`` is ``vol[:, :, z]`` (``H = X``,
``W = Y``), so ``image.npy[z, :, :, c] = zscore(modality c)[:, :, z]``.
The slice axis comes first so one slice is one contiguous block of the
file (a memory-mapped read of ``X * Y * C * 2`` bytes).

Intensities: per volume and modality, z-score over the brain voxels (brain
= nonzero in ANY modality; mean and standard deviation in float64), 0
outside the brain, stored as float16 (relative error <= 2**-11, far below
MRI noise). A modality that is constant over the brain (standard deviation
0) becomes 0 there instead of a division by zero.

Labels: the scheme's labels → regions WT, TC, ET
(:func:`~mmseg_ext.datasets.brats.labels.labels_to_regions`) → one packed
multi-label channel (:func:`mmseg_ext.utils.multilabel.pack_multilabel`:
bit 0 WT, bit 1 TC, bit 2 ET, bit 15 valid, set on every voxel).

``index.json``::

    {"version": 1, "label_scheme": "brats2020", "modalities": ["FLAIR",
     "T1", "T1ce", "T2"], "cases": {case_id: ENTRY}}

``ENTRY`` holds ``case_id``, ``shape`` ``[X, Y, Z]``, ``affine`` (4 x 4),
``spacing`` ``[sx, sy, sz]``, ``slice_range`` ``[z0, z1]`` (half open, from
the first to the last slice with brain), ``tumour_slices`` (slices with
WT), ``labelled``, ``label_scheme``, ``sources`` (absolute paths of the
NIfTI files, keys ``flair``, ``t1``, ``t1ce``, ``t2`` (physical names, also
for brats2023 files) and ``seg`` (None if unlabelled)), ``image`` and
``label`` (absolute paths of the ``.npy`` files, ``label`` None if
unlabelled) and ``stamps`` (what a re-run compares: size and mtime of every
source file and of the two outputs, the cached modalities, the scheme).

A re-run converts only the cases whose stamps differ (``force`` converts
every case); a case no longer under the root leaves the index and its
cache folder is removed. Folds: the labelled case ids, shuffled with
``seed`` and dealt round-robin
(:func:`mmseg_ext.datasets.converters.hand_bone.make_group_folds`; a BraTS
case is one patient), so fold sizes differ by at most one case.

Bad input, each an :class:`~mmseg_ext.utils.errors.InputError` naming the
case and the file: a missing modality, a truncated or corrupt NIfTI, a
shape or affine that differs across the case's files, a label value the
scheme lacks (:func:`~mmseg_ext.datasets.brats.nifti.read_brats_case`), and
here in addition a non-finite image voxel (NaN/inf) and a case without any
brain voxel (every modality all zero). As the hand-bone converter: every
good case is converted and the index written, then one
:class:`BraTSConversionError` lists every bad case and no split file is
written; with ``skip_bad`` the bad cases are logged and left out of the
index and the splits.
"""
import json
import logging
import os
import os.path as osp
import shutil
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from mmengine.utils import track_parallel_progress, track_progress

from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.io import atomic_path, dump_json_atomic
from mmseg_ext.utils.multilabel import pack_label_map
from .labels import LABEL_SCHEMES, REGIONS, region_labels
from .layout import (MODALITIES, MODALITY_NAMES, BraTSCase, find_brats_cases,
                     select_modalities)
from .nifti import read_brats_case

__all__ = [
    'BraTSConversionError', 'convert_brats', 'convert_brats_case',
    'zscore_brain', 'read_brats_index', 'BRATS_CACHE_DIR', 'INDEX_VERSION',
    'SOURCE_KEYS'
]

INDEX_VERSION = 1
#: Default cache folder, relative to the BraTS root.
BRATS_CACHE_DIR = 'brats_slices'
#: ``sources`` keys of an index entry: physical modality names, then seg.
SOURCE_KEYS = tuple(m.lower() for m in MODALITIES) + ('seg', )
MAX_LISTED_ERRORS = 20
_ENTRY_KEYS = ('case_id', 'shape', 'affine', 'spacing', 'slice_range',
               'tumour_slices', 'labelled', 'label_scheme', 'sources',
               'image', 'label', 'stamps')


class BraTSConversionError(InputError):
    """One or more BraTS cases cannot be converted (lists them)."""


def _stamp(path: Optional[str]) -> Optional[List[int]]:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def zscore_brain(image: np.ndarray) -> tuple:
    """Z-score each modality over the brain voxels; 0 outside the brain.

    Args:
        image (np.ndarray): ``(M, X, Y, Z)`` intensities.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(M, X, Y, Z)`` float32 z-scores
        and the ``(X, Y, Z)`` bool brain mask (nonzero in any modality).
        Mean and standard deviation are computed in float64; a zero
        standard deviation divides by 1.
    """
    image = np.asarray(image)
    brain = np.any(image != 0, axis=0)
    out = np.zeros(image.shape, np.float32)
    for m in range(image.shape[0]):
        values = image[m][brain].astype(np.float64)
        if values.size == 0:
            continue
        mean, std = values.mean(), values.std()
        out[m][brain] = (values - mean) / (std if std > 0 else 1.0)
    return out, brain


def _zscore_cache(image: np.ndarray) -> tuple:
    """:func:`zscore_brain` written straight into the cache layout.

    Returns ``(Z, X, Y, M)`` float16 (the float32 z-scores of
    :func:`zscore_brain`, rounded once more) and the brain mask. Computed
    per modality on the whole volume, so neither a masked scatter nor a
    separate transposed copy of the float32 volume is made (about 30 %
    less time for a 240 x 240 x 155 case).
    """
    brain = np.any(image != 0, axis=0)
    outside = ~brain
    m, x, y, z = image.shape
    out = np.empty((z, x, y, m), np.float16)
    for k in range(m):
        values = image[k][brain].astype(np.float64)
        if values.size == 0:
            out[..., k] = 0
            continue
        mean, std = values.mean(), values.std()
        vol = ((image[k].astype(np.float64) - mean) /
               (std if std > 0 else 1.0)).astype(np.float32)
        vol[outside] = 0
        out[..., k] = vol.transpose(2, 0, 1)
    return out, brain


def _case_paths(out_dir: str, case_id: str) -> Dict[str, str]:
    case_dir = osp.join(osp.abspath(out_dir), 'cases', case_id)
    return dict(
        dir=case_dir,
        image=osp.join(case_dir, 'image.npy'),
        label=osp.join(case_dir, 'label.npy'))


def _sources(case: BraTSCase) -> Dict[str, Optional[str]]:
    """``{flair, t1, t1ce, t2, seg: absolute path or None}``."""
    out = {}
    for key, path in zip(SOURCE_KEYS[:-1], case.images):
        out[key] = None if path is None else osp.abspath(path)
    out['seg'] = None if case.seg is None else osp.abspath(case.seg)
    return out


def _save_npy(path: str, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            np.save(f, array)


def _source_stamps(case: BraTSCase, tags: Sequence[str],
                   label_scheme: str) -> dict:
    return dict(
        sources={k: _stamp(p) for k, p in _sources(case).items()},
        modalities=list(tags),
        label_scheme=label_scheme)


def _up_to_date(entry: Optional[dict], stamps: dict) -> bool:
    if not isinstance(entry, dict) or not isinstance(
            entry.get('stamps'), dict):
        return False
    old = entry['stamps']
    if any(old.get(k) != v for k, v in stamps.items()):
        return False
    # The outputs must still be the files this entry wrote.
    image = _stamp(entry.get('image'))
    return image is not None and old.get('image') == image and \
        old.get('label') == _stamp(entry.get('label'))


def convert_brats_case(case: BraTSCase,
                       out_dir: str,
                       modalities: Optional[Sequence[str]] = None,
                       label_scheme: Optional[str] = None) -> dict:
    """Convert one case into ``{out_dir}/cases/{case_id}/``.

    Args:
        case (BraTSCase): From :func:`find_brats_cases`.
        out_dir (str): The cache folder.
        modalities (Sequence[str], optional): As :func:`read_brats_case`.
            Defaults to None (all four, physical order).
        label_scheme (str, optional): Defaults to ``case.label_scheme``.

    Returns:
        dict: The index entry of the case (see the module docstring).

    Raises:
        InputError: naming the case and the file, for bad input.
    """
    label_scheme = label_scheme or case.label_scheme
    tags = select_modalities(case.naming, modalities)
    data = read_brats_case(case, tags, label_scheme)
    where = f'case {case.case_id!r}'
    image = data['image']
    for tag, vol in zip(tags, image):
        if not np.all(np.isfinite(vol)):
            path = case.images[case.modalities.index(tag)]
            raise InputError(path=path, where=where, reason='image values',
                             value=f'{int(np.sum(~np.isfinite(vol)))} '
                             'non-finite voxels (NaN/inf)',
                             expected='finite intensities')
    cache, brain = _zscore_cache(image)
    if not brain.any():
        raise InputError(path=case.images[case.modalities.index(tags[0])],
                         where=where, reason='brain mask',
                         value='every modality is all zero',
                         expected='nonzero brain voxels')
    paths = _case_paths(out_dir, case.case_id)
    _save_npy(paths['image'], cache)
    del cache
    brain_z = np.flatnonzero(brain.any(axis=(0, 1)))
    tumour_slices = []
    labelled = data['seg'] is not None
    if labelled:
        # The reader checked the values; one lookup table packs WT, TC, ET
        # (= pack_multilabel(labels_to_regions(seg))), per pixel, so the
        # (X, Y * Z) view packs the whole volume at once.
        x, y, z = data['seg'].shape
        table = region_labels(label_scheme)
        packed = pack_label_map(data['seg'].reshape(x, y * z),
                                [table[r] for r in REGIONS],
                                ignore_index=None)
        packed = np.ascontiguousarray(
            packed.reshape(x, y, z, 1).transpose(2, 0, 1, 3))
        _save_npy(paths['label'], packed)
        tumour_slices = np.flatnonzero(
            (packed[..., 0] & 1).any(axis=(1, 2))).tolist()
    elif osp.exists(paths['label']):
        os.remove(paths['label'])  # the case lost its label file
    stamps = _source_stamps(case, tags, label_scheme)
    stamps['image'] = _stamp(paths['image'])
    stamps['label'] = _stamp(paths['label']) if labelled else None
    return dict(
        case_id=case.case_id,
        shape=[int(s) for s in image.shape[1:]],
        affine=data['affine'].tolist(),
        spacing=[float(s) for s in data['spacing']],
        slice_range=[int(brain_z[0]), int(brain_z[-1]) + 1],
        tumour_slices=[int(z) for z in tumour_slices],
        labelled=labelled,
        label_scheme=label_scheme,
        sources=_sources(case),
        image=paths['image'],
        label=paths['label'] if labelled else None,
        stamps=stamps)


def _convert_task(task: Dict[str, Any]) -> Dict[str, Any]:
    """One case (a worker job; returns, never raises for bad input)."""
    case = task['case']
    result = dict(case_id=case.case_id, status='converted', entry=None,
                  error=None)
    try:
        tags = select_modalities(case.naming, task['modalities'])
        stamps = _source_stamps(case, tags, task['label_scheme'])
        if not task['force'] and _up_to_date(task['entry'], stamps):
            result.update(status='skipped', entry=task['entry'])
            return result
        result['entry'] = convert_brats_case(case, task['out_dir'], tags,
                                             task['label_scheme'])
    except InputError as err:
        message = str(err)
        if case.case_id not in message:
            message = f'case {case.case_id!r}: {message}'
        result.update(status='bad', error=message)
    except Exception as err:  # noqa: BLE001
        # A bug, not bad input: fail, but name the case (a worker's bare
        # error would not say which one).
        raise RuntimeError(f'{case.case_dir}: unexpected '
                           f'{type(err).__name__} while converting case '
                           f'{case.case_id!r}: {err}') from err
    return result


def read_brats_index(path: str) -> dict:
    """Read and check a cache's ``index.json``.

    Returns:
        dict: The index (``version``, ``label_scheme``, ``modalities``,
        ``cases``).

    Raises:
        FileNotFoundError: if the file does not exist.
        InputError: naming the file and the field, for JSON that does not
            parse or lacks a field, or an entry of the wrong form.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'BraTS slice index {path} does not exist')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(path=path, reason='JSON does not parse',
                         value=str(err), expected='the converter\'s '
                         'index.json; re-run the converter') from None
    if not isinstance(data, dict):
        raise InputError(path=path, value=type(data).__name__,
                         expected='a JSON object')
    if data.get('version') != INDEX_VERSION:
        raise InputError(path=path, where='field "version"',
                         value=data.get('version'),
                         expected=f'{INDEX_VERSION}; re-run the converter')
    for key, kind in (('label_scheme', str), ('modalities', list),
                      ('cases', dict)):
        if not isinstance(data.get(key), kind):
            raise InputError(path=path, where=f'field {key!r}',
                             value=data.get(key),
                             expected=f'a JSON {kind.__name__}')
    if data['label_scheme'] not in LABEL_SCHEMES:
        raise InputError(path=path, where='field "label_scheme"',
                         value=data['label_scheme'],
                         expected=f'one of {sorted(LABEL_SCHEMES)}')
    bad = [m for m in data['modalities'] if m not in MODALITIES]
    if bad or not data['modalities'] or \
            len(set(data['modalities'])) != len(data['modalities']):
        raise InputError(path=path, where='field "modalities"',
                         value=data['modalities'],
                         expected=f'distinct names of {MODALITIES}')
    for case_id, entry in data['cases'].items():
        where = f'case {case_id!r}'
        if not isinstance(entry, dict):
            raise InputError(path=path, where=where,
                             value=type(entry).__name__,
                             expected='a JSON object')
        missing = [k for k in _ENTRY_KEYS if k not in entry]
        if missing:
            raise InputError(path=path, where=where, reason='missing fields',
                             value=missing, expected=f'{list(_ENTRY_KEYS)}')
        shape, rng = entry['shape'], entry['slice_range']
        if not (isinstance(shape, list) and len(shape) == 3 and all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0
                for s in shape)):
            raise InputError(path=path, where=f'{where}, field "shape"',
                             value=shape, expected='[X, Y, Z] positive ints')
        if not (isinstance(rng, list) and len(rng) == 2 and all(
                isinstance(s, int) and not isinstance(s, bool)
                for s in rng) and 0 <= rng[0] < rng[1] <= shape[2]):
            raise InputError(path=path, where=f'{where}, field "slice_range"',
                             value=rng,
                             expected=f'[z0, z1] with 0 <= z0 < z1 <= '
                             f'{shape[2]}')
        tumour = entry['tumour_slices']
        if not isinstance(tumour, list) or not all(
                isinstance(z, int) and not isinstance(z, bool) and
                0 <= z < shape[2] for z in tumour):
            raise InputError(path=path,
                             where=f'{where}, field "tumour_slices"',
                             value=tumour,
                             expected=f'slice indices in [0, {shape[2]})')
        if entry['case_id'] != case_id or not isinstance(
                entry['labelled'], bool) or not isinstance(
                    entry['image'], str) or (entry['label'] is None) == \
                entry['labelled']:
            raise InputError(
                path=path, where=where, reason='inconsistent entry',
                value={k: entry[k] for k in ('case_id', 'labelled', 'label')},
                expected='its own case id, and a label path exactly when '
                'labelled')
    return data


def _load_index(path: str, label_scheme: str,
                modalities: Sequence[str]) -> Dict[str, Any]:
    """The case entries of an earlier run, or ``{}`` if unusable."""
    try:
        data = read_brats_index(path)
    except (OSError, ValueError):
        return {}
    if data['label_scheme'] != label_scheme or \
            data['modalities'] != list(modalities):
        return {}
    return dict(data['cases'])


def _write_lines(path: str, lines: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.writelines(f'{line}\n' for line in lines)


def write_brats_splits(out_dir: str, labelled: Sequence[str],
                       unlabelled: Sequence[str], num_folds: int,
                       seed: int) -> Dict[str, str]:
    """Write ``splits/fold{k}_{train,val}.txt``, ``all.txt``, ``test.txt``.

    Without labelled cases no fold file is written (``all.txt`` is empty).

    Returns:
        dict[str, str]: Split name to path.
    """
    # Imported here: the hand-bone converter imports the hand-bone dataset,
    # which imports this package through mmseg_ext.datasets.
    from mmseg_ext.datasets.converters.hand_bone import make_group_folds
    split_dir = osp.join(out_dir, 'splits')
    labelled, written = sorted(labelled), {}
    if labelled:
        folds = make_group_folds(labelled, num_folds, seed,
                                 group_key=lambda case_id: case_id)
        for k in range(num_folds):
            val = [c for c in labelled if folds[c] == k]
            train = [c for c in labelled if folds[c] != k]
            for name, lines in ((f'fold{k}_train', train),
                                (f'fold{k}_val', val)):
                written[name] = osp.join(split_dir, name + '.txt')
                _write_lines(written[name], lines)
    for name, lines in (('all', labelled), ('test', sorted(unlabelled))):
        written[name] = osp.join(split_dir, name + '.txt')
        _write_lines(written[name], lines)
    # Folds of an earlier run with more folds would be stale.
    for name in os.listdir(split_dir):
        stem = osp.splitext(name)[0]
        if name.startswith('fold') and name.endswith('.txt') and \
                stem not in written:
            os.remove(osp.join(split_dir, name))
    return written


def _run(tasks: List[dict], nproc: int, show_progress: bool) -> List[dict]:
    nproc = max(1, min(int(nproc), len(tasks)))
    if show_progress and nproc > 1:
        return track_parallel_progress(
            _convert_task, tasks, nproc, file=sys.stdout)
    if show_progress:
        return track_progress(_convert_task, tasks, file=sys.stdout)
    if nproc > 1:
        import multiprocessing
        with multiprocessing.Pool(nproc) as pool:
            return pool.map(_convert_task, tasks, chunksize=1)
    return [_convert_task(t) for t in tasks]


def convert_brats(root: str,
                  out_dir: Optional[str] = None,
                  modalities: Optional[Sequence[str]] = None,
                  label_scheme: Optional[str] = None,
                  num_folds: int = 5,
                  seed: int = 0,
                  nproc: int = 1,
                  skip_bad: bool = False,
                  force: bool = False,
                  show_progress: bool = True,
                  logger: Any = 'current') -> Dict[str, Any]:
    """Write the slice cache, the index and the split files of ``root``.

    See the module docstring for the layout, the normalisation, the re-run
    rule and the handling of bad input.

    Args:
        root (str): The BraTS root (one folder per case).
        out_dir (str, optional): The cache folder. Defaults to None
            (``{root}/brats_slices``).
        modalities (Sequence[str], optional): Physical names (``'T1ce'``)
            or the file tags (``'t1ce'``, ``'t1c'``), in channel order.
            Defaults to None (FLAIR, T1, T1ce, T2).
        label_scheme (str, optional): ``'brats2020'`` or ``'brats2023'``.
            Defaults to None (from the file names).
        num_folds (int): ``K`` of the patient-level folds. Defaults to 5.
        seed (int): Fold shuffle seed. Defaults to 0.
        nproc (int): Worker processes. Defaults to 1.
        skip_bad (bool): Log bad cases and leave them out instead of
            raising. Defaults to False.
        force (bool): Convert every case, also the up-to-date ones.
            Defaults to False.
        show_progress (bool): Show a progress bar. Defaults to True.
        logger: ``print_log`` logger. Defaults to ``'current'``.

    Returns:
        dict: ``converted``, ``skipped`` (up to date), ``bad`` (case id
        lists), ``errors`` (messages of the bad cases), ``index`` (path),
        ``splits`` (``{name: path}``; empty when bad cases raised).

    Raises:
        InputError: for a root without BraTS cases (from
            :func:`find_brats_cases`).
        BraTSConversionError: if a case is bad and ``skip_bad`` is False
            (after converting the good cases), listing every bad case.
        ValueError: for a bad ``num_folds``, ``modalities`` or
            ``label_scheme``, or fewer labelled cases than folds.

    Examples:
        >>> summary = convert_brats('data/brats', nproc=8)
        >>> sorted(summary['splits'])[:2]
        ['all', 'fold0_train']
    """
    cases = find_brats_cases(root, label_scheme)
    scheme = cases[0].label_scheme
    tags = select_modalities(cases[0].naming, modalities)
    names = [MODALITIES[MODALITY_NAMES[cases[0].naming].index(t)]
             for t in tags]
    out_dir = osp.abspath(out_dir or osp.join(root, BRATS_CACHE_DIR))
    # Validate the fold settings before any work.
    from mmseg_ext.datasets.converters.hand_bone import make_group_folds
    labelled_ids = [c.case_id for c in cases if c.seg is not None]
    if labelled_ids:
        make_group_folds(labelled_ids, num_folds, seed,
                         group_key=lambda case_id: case_id)
    index_path = osp.join(out_dir, 'index.json')
    previous = _load_index(index_path, scheme, names)
    old = {} if force else previous
    tasks = [
        dict(case=c, out_dir=out_dir, modalities=tags, label_scheme=scheme,
             entry=old.get(c.case_id), force=force) for c in cases
    ]
    results = _run(tasks, nproc, show_progress)
    summary: Dict[str, Any] = dict(
        converted=[], skipped=[], bad=[], errors=[], index=index_path,
        splits={})
    entries = {}
    for res in results:
        summary[res['status']].append(res['case_id'])
        if res['status'] == 'bad':
            summary['errors'].append(res['error'])
        else:
            entries[res['case_id']] = res['entry']
    stale = sorted(set(previous) - {c.case_id for c in cases})
    for case_id in stale:  # cases no longer under root
        shutil.rmtree(_case_paths(out_dir, case_id)['dir'],
                      ignore_errors=True)
    dump_json_atomic(
        dict(version=INDEX_VERSION, label_scheme=scheme, modalities=names,
             cases=entries), index_path, indent=1)
    errors = summary['errors']
    if errors and not skip_bad:
        listed = '\n  - '.join(errors[:MAX_LISTED_ERRORS])
        more = len(errors) - MAX_LISTED_ERRORS
        raise BraTSConversionError(
            f'{len(errors)} of {len(cases)} BraTS case(s) cannot be '
            f'converted ({len(summary["converted"])} converted, '
            f'{len(summary["skipped"])} up to date; no split file written):'
            f'\n  - {listed}' + (f'\n  ... and {more} more' if more > 0
                                 else '') +
            '\nFix the files, or pass --skip-bad (skip_bad=True) to leave '
            'those cases out of the index and the splits.')
    for message in errors:
        print_log(f'skipped bad case: {message}', logger=logger,
                  level=logging.WARNING)
    good = [entries[c] for c in sorted(entries)]
    summary['splits'] = write_brats_splits(
        out_dir, [e['case_id'] for e in good if e['labelled']],
        [e['case_id'] for e in good if not e['labelled']], num_folds, seed)
    print_log(
        f'BraTS slices: {len(summary["converted"])} case(s) converted, '
        f'{len(summary["skipped"])} up to date, {len(summary["bad"])} bad '
        f'(left out); index and {num_folds} patient-level folds in '
        f'{out_dir}', logger=logger)
    return summary
