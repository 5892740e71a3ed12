# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Rasterise the hand-bone polygons once into packed labels; K-fold splits.

Input: the competition layout (see
:mod:`mmseg_ext.datasets.generators.hand_bone`)::

    {root}/train/DCM/{ID}/{name}.png            # X-ray
    {root}/train/outputs_json/{ID}/{name}.json  # one polygon per class

Output, next to the data (all files written atomically)::

    {root}/train/packed_labels/{ID}/{name}.png  # 16-bit packed label
    {root}/train/packed_labels/manifest.json    # stamps of the inputs
    {root}/splits/fold{k}_train.txt             # image paths relative to
    {root}/splits/fold{k}_val.txt               #   train/DCM, by patient
    {root}/splits/all.txt                       # every converted image

Every polygon is filled with ``cv2.fillPoly`` in image coordinates (points
rounded to the nearest pixel) into its own class bit of a packed label
(the layout of :func:`mmseg_ext.utils.multilabel.pack_multilabel`: 29
classes in two uint16 channels, valid bit set on every pixel, read back by
:func:`~mmseg_ext.utils.multilabel.read_packed_label`), so overlapping bones
keep all their classes; :func:`~mmseg_ext.utils.multilabel.write_packed_label`
writes the PNG for fast decoding. A label is rebuilt only when its image, its
JSON or the label itself changed (size or mtime differ from the manifest)
or the class list changed.

Folds group by patient ID: both hands of a patient are in the same fold;
the IDs are shuffled with ``seed`` and dealt round-robin, so fold sizes
differ by at most one patient.

Bad input, and what happens:

- error (the file is *bad*): missing JSON, JSON that does not parse or
  lacks an ``annotations`` list, an annotation that is not an object with
  ``label`` and ``points``, a ``label`` that is not a string, an unknown
  label, a class repeated in one JSON, ``points`` that are not a list of
  ``[x, y]`` JSON numbers (strings and booleans are not numbers), fewer
  than 3 points, non-finite points, a point farther than ``MAX_COORD``
  (2**20) pixels from the origin (it would overflow int32), a zero-area
  polygon, a polygon entirely outside the image, an unreadable image. A
  :class:`HandBoneAnnotationError` (an
  :class:`~mmseg_ext.utils.errors.InputError`) whose message names the file
  and, for an annotation, its index and label; ``path`` and ``where``
  (``'annotation 3, field "points"'``) say the same as attributes.
- warning (converted): points outside the image (the polygon keeps its
  shape and the part inside the image is rasterised, which is what
  ``fillPoly`` does, rather than clipping the vertices, which would change
  the shape), a self-intersecting polygon (after rounding to pixels; it is
  rasterised as ``fillPoly`` fills it: annotation tools leave small loops
  that should not cost the whole image, and the warning names the edges to
  fix), classes without a polygon (empty in that label), a JSON without an
  image.

Without ``skip_bad`` every good file is still converted and the manifest
updated, then one :class:`HandBoneAnnotationError` lists every bad file and
no split file is written. With ``skip_bad`` the bad files are logged and
left out of the split files.
"""
import glob
import json
import logging
import os
import os.path as osp
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import track_parallel_progress, track_progress

from mmseg_ext.utils.io import atomic_path, dump_json_atomic
from mmseg_ext.utils.multilabel import (class_bit, num_packed_channels,
                                        write_packed_label)
from ..hand_bone import HAND_BONE_CLASSES
from .hand_bone_json import (MAX_COORD, HandBoneAnnotationError,
                             find_self_intersection, read_hand_bone_json)

__all__ = [
    'HandBoneAnnotationError', 'HAND_BONE_LAYOUT', 'convert_hand_bone',
    'read_hand_bone_json', 'rasterize_polygons', 'find_self_intersection',
    'make_group_folds', 'MAX_COORD',
    'hand_bone_patient_id', 'list_hand_bone_images'
]

MANIFEST_VERSION = 1
# Folders relative to the dataset root (shared with HandBoneDataset).
HAND_BONE_LAYOUT = dict(
    train_images='train/DCM',
    test_images='test/DCM',
    annotations='train/outputs_json',
    labels='train/packed_labels',
    splits='splits')
MAX_LISTED_ERRORS = 20


def hand_bone_patient_id(rel_path: str) -> str:
    """The patient ID of ``'ID001/image..._R.png'``: its first folder."""
    parts = rel_path.replace('\\', '/').split('/')
    if len(parts) < 2:
        raise ValueError(f'image path {rel_path!r} should be ID/name.png '
                         '(one folder per patient)')
    return parts[0]


def list_hand_bone_images(image_dir: str) -> List[str]:
    """Sorted ``.png`` paths under ``image_dir``, relative to it, with '/'.
    """
    paths = glob.glob(osp.join(image_dir, '**', '*.png'), recursive=True)
    rels = [osp.relpath(p, image_dir).replace(os.sep, '/') for p in paths]
    return sorted(r for r in rels if not osp.basename(r).startswith('.'))


def _stamp(path: str) -> Optional[List[int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def rasterize_polygons(polys: Dict[str, np.ndarray],
                       shape: Tuple[int, int],
                       classes: Sequence[str] = HAND_BONE_CLASSES
                       ) -> np.ndarray:
    """Fill each class' polygon into its bit of a packed label.

    Equal to ``pack_multilabel(masks)`` with ``masks[k]`` filled by
    ``cv2.fillPoly`` from ``polys[classes[k]]``, but each polygon is filled
    only over its bounding box (a few tens of ms for a 2048 x 2048 hand).

    Args:
        polys (dict[str, np.ndarray]): ``{label: (P, 2) int32 (x, y)}``.
        shape (tuple[int, int]): ``(H, W)``.
        classes (Sequence[str]): Class order. Defaults to the 29 classes.

    Returns:
        np.ndarray: ``(H, W, K)`` uint16 packed label, every pixel valid.
    """
    h, w = shape
    packed = np.zeros((h, w, num_packed_channels(len(classes))), np.uint16)
    packed[..., -1] = 1 << 15  # valid bit: every pixel is labelled
    for k, name in enumerate(classes):
        if name not in polys:
            continue
        pts = np.asarray(polys[name], dtype=np.int32)
        x0, y0 = np.maximum(pts.min(0), 0)
        x1, y1 = np.minimum(pts.max(0), (w - 1, h - 1))
        if x1 < x0 or y1 < y0:
            continue
        local = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        cv2.fillPoly(local, [pts], 1, offset=(-int(x0), -int(y0)))
        ch, bit = class_bit(k)
        packed[y0:y1 + 1, x0:x1 + 1, ch] |= local.astype(np.uint16) << bit
    return packed


def _convert_one(task: Dict[str, Any]) -> Dict[str, Any]:
    """Convert one image's JSON (a worker job; returns, never raises for
    bad input)."""
    rel, root, classes = task['rel'], task['root'], task['classes']
    stem = osp.splitext(rel)[0]
    img_path = osp.join(root, HAND_BONE_LAYOUT['train_images'], rel)
    json_path = osp.join(root, HAND_BONE_LAYOUT['annotations'],
                         stem + '.json')
    label_path = osp.join(root, HAND_BONE_LAYOUT['labels'], rel)
    result = dict(rel=rel, status='converted', warnings=[], error=None)
    stamps = dict(
        image=_stamp(img_path), json=_stamp(json_path), label=None)
    entry = task.get('entry')
    if not task['force'] and entry is not None and \
            stamps['image'] is not None and stamps['json'] is not None and \
            entry.get('image') == stamps['image'] and \
            entry.get('json') == stamps['json'] and \
            entry.get('label') == _stamp(label_path):
        result.update(status='skipped', stamps=entry)
        return result
    try:
        if stamps['json'] is None:
            raise HandBoneAnnotationError(
                f'{json_path}: annotation file is missing (image {img_path} '
                'has no labels)')
        img = cv2.imread(img_path, cv2.IMREAD_UNCHANGED)
        if img is None or img.ndim not in (2, 3) or img.size == 0:
            raise HandBoneAnnotationError(
                f'{img_path}: image cannot be read (missing, truncated or '
                'not an image)')
        polys, warnings = read_hand_bone_json(json_path, img.shape[:2],
                                              classes)
    except HandBoneAnnotationError as e:
        result.update(status='bad', error=str(e))
        return result
    except Exception as e:  # noqa: BLE001
        # A bug, not bad input: fail, but name the file (a worker's bare
        # TypeError would not say which one).
        raise RuntimeError(
            f'{json_path}: unexpected {type(e).__name__} while converting '
            f'{img_path}: {e}') from e
    packed = rasterize_polygons(polys, img.shape[:2], classes)
    write_packed_label(label_path, packed)
    stamps['label'] = _stamp(label_path)
    result.update(warnings=warnings, stamps=stamps)
    return result


def _init_worker() -> None:
    cv2.setNumThreads(0)  # we parallelise over files already


def make_group_folds(rel_paths: Sequence[str],
                     num_folds: int = 5,
                     seed: int = 0,
                     group_key: Callable[[str], str] = hand_bone_patient_id
                     ) -> Dict[str, int]:
    """Assign each patient ID a fold (group K-fold, deterministic by seed).

    Args:
        rel_paths (Sequence[str]): ``'ID/name.png'`` paths (or any items
            ``group_key`` maps to a patient ID).
        num_folds (int): ``K >= 2``. Defaults to 5.
        seed (int): Shuffle seed. Defaults to 0.
        group_key (Callable[[str], str]): Item → patient ID. Defaults to
            :func:`hand_bone_patient_id` (the first folder); the BraTS
            converter passes the identity (one case = one patient).

    Returns:
        dict[str, int]: ``{patient_id: fold}``; fold sizes (in patients)
        differ by at most one.

    Raises:
        ValueError: if ``num_folds < 2`` or there are fewer patients than
            folds.
    """
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or \
            num_folds < 2:
        raise ValueError('`num_folds` should be an int >= 2, but got '
                         f'{num_folds!r}')
    ids = sorted({group_key(p) for p in rel_paths})
    if len(ids) < num_folds:
        raise ValueError(f'`num_folds` should be <= the number of patients '
                         f'({len(ids)}), but got {num_folds}')
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[j]: pos % num_folds for pos, j in enumerate(order)}


def _write_lines(path: str, lines: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.writelines(f'{line}\n' for line in lines)


def write_split_files(root: str, rel_paths: Sequence[str], num_folds: int,
                      seed: int) -> Dict[str, str]:
    """Write ``splits/fold{k}_{train,val}.txt`` and ``splits/all.txt``.

    Returns:
        dict[str, str]: Split name to path (``'fold0_train'``, ...,
        ``'all'``).
    """
    folds = make_group_folds(rel_paths, num_folds, seed)
    split_dir = osp.join(root, HAND_BONE_LAYOUT['splits'])
    rel_paths = sorted(rel_paths)
    written = {}
    for k in range(num_folds):
        val = [p for p in rel_paths if folds[hand_bone_patient_id(p)] == k]
        train = [p for p in rel_paths if folds[hand_bone_patient_id(p)] != k]
        for name, lines in ((f'fold{k}_train', train), (f'fold{k}_val', val)):
            path = osp.join(split_dir, name + '.txt')
            _write_lines(path, lines)
            written[name] = path
    path = osp.join(split_dir, 'all.txt')
    _write_lines(path, rel_paths)
    written['all'] = path
    # Folds of an earlier run with more folds would be stale.
    for stale in glob.glob(osp.join(split_dir, 'fold*_*.txt')):
        name = osp.splitext(osp.basename(stale))[0]
        if name not in written:
            os.remove(stale)
    return written


def _load_manifest(path: str, classes: Sequence[str]) -> Dict[str, Any]:
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        if data.get('version') != MANIFEST_VERSION or \
                data.get('classes') != list(classes):
            return {}
        return dict(data['labels'])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def convert_hand_bone(root: str,
                      num_folds: int = 5,
                      seed: int = 0,
                      nproc: int = 1,
                      skip_bad: bool = False,
                      force: bool = False,
                      classes: Sequence[str] = HAND_BONE_CLASSES,
                      show_progress: bool = True,
                      logger: Any = 'current') -> Dict[str, Any]:
    """Write packed labels and group K-fold split files for ``root``.

    See the module docstring for the layout, the rasterisation and the
    handling of bad input.

    Args:
        root (str): Dataset root (holds ``train/DCM`` and
            ``train/outputs_json``).
        num_folds (int): ``K`` of the patient-grouped folds. Defaults to 5.
        seed (int): Fold shuffle seed. Defaults to 0.
        nproc (int): Worker processes; ``<= 1`` converts in this process.
            Defaults to 1.
        skip_bad (bool): Log bad files and leave them out instead of
            raising. Defaults to False.
        force (bool): Rebuild every label, even up-to-date ones.
            Defaults to False.
        classes (Sequence[str]): Class order of the bits. Defaults to the 29
            hand-bone classes.
        show_progress (bool): Show a progress bar. Defaults to True.
        logger: ``print_log`` logger. Defaults to ``'current'``.

    Returns:
        dict: ``converted``, ``skipped`` (up to date), ``bad`` (lists of
        relative image paths), ``warnings`` (messages), ``splits``
        (``{name: path}``).

    Raises:
        FileNotFoundError: if ``{root}/train/DCM`` holds no PNG image.
        HandBoneAnnotationError: if a file is bad and ``skip_bad`` is False
            (after converting the good files), listing every bad file.
        ValueError: for a bad ``num_folds``.

    Examples:
        >>> summary = convert_hand_bone('data/hand_bone', num_folds=5,
        ...                             nproc=8)
        >>> len(summary['converted']) + len(summary['skipped'])
        800
    """
    image_dir = osp.join(root, HAND_BONE_LAYOUT['train_images'])
    rels = list_hand_bone_images(image_dir)
    if not rels:
        raise FileNotFoundError(
            f'no PNG image found under {image_dir}; `root` should be the '
            'folder holding train/DCM/ID*/*.png and train/outputs_json')
    # Validate the fold settings before any work.
    make_group_folds(rels, num_folds, seed)
    label_root = osp.join(root, HAND_BONE_LAYOUT['labels'])
    manifest_path = osp.join(label_root, 'manifest.json')
    manifest = {} if force else _load_manifest(manifest_path, classes)
    tasks = [
        dict(rel=rel, root=root, classes=tuple(classes),
             entry=manifest.get(rel), force=force) for rel in rels
    ]
    nproc = max(1, min(int(nproc), len(tasks)))
    if show_progress and nproc > 1:
        results = track_parallel_progress(
            _convert_one, tasks, nproc, initializer=_init_worker,
            file=sys.stdout)
    elif show_progress:
        results = track_progress(_convert_one, tasks, file=sys.stdout)
    elif nproc > 1:
        import multiprocessing
        with multiprocessing.Pool(nproc, _init_worker) as pool:
            results = pool.map(_convert_one, tasks)
    else:
        results = [_convert_one(t) for t in tasks]

    summary: Dict[str, Any] = dict(
        converted=[], skipped=[], bad=[], warnings=[], splits={})
    errors = []
    new_manifest = {}
    for res in results:
        summary[res['status']].append(res['rel'])
        summary['warnings'] += res['warnings']
        if res['status'] == 'bad':
            errors.append(res['error'])
        else:
            new_manifest[res['rel']] = res['stamps']
    # Annotation files without an image are suspicious, not fatal.
    ann_dir = osp.join(root, HAND_BONE_LAYOUT['annotations'])
    image_stems = {osp.splitext(r)[0] for r in rels}
    for path in sorted(glob.glob(osp.join(ann_dir, '**', '*.json'),
                                 recursive=True)):
        stem = osp.splitext(osp.relpath(path, ann_dir))[0].replace(
            os.sep, '/')
        if stem not in image_stems:
            summary['warnings'].append(
                f'{path}: annotation file without an image in {image_dir}; '
                'ignored')
    for message in summary['warnings']:
        print_log(message, logger=logger, level=logging.WARNING)
    dump_json_atomic(
        dict(version=MANIFEST_VERSION, classes=list(classes),
             labels=new_manifest), manifest_path)

    if errors and not skip_bad:
        listed = '\n  - '.join(errors[:MAX_LISTED_ERRORS])
        more = len(errors) - MAX_LISTED_ERRORS
        raise HandBoneAnnotationError(
            f'{len(errors)} of {len(rels)} hand-bone image(s) cannot be '
            f'converted ({len(summary["converted"])} converted, '
            f'{len(summary["skipped"])} up to date; no split file written):'
            f'\n  - {listed}' + (f'\n  ... and {more} more' if more > 0
                                 else '') +
            '\nFix the files, or pass --skip-bad (skip_bad=True) to leave '
            'them out of the splits.')
    for message in errors:
        print_log(f'skipped bad file: {message}', logger=logger,
                  level=logging.WARNING)
    good = sorted(new_manifest)
    summary['splits'] = write_split_files(root, good, num_folds, seed)
    print_log(
        f'hand-bone labels: {len(summary["converted"])} converted, '
        f'{len(summary["skipped"])} up to date, {len(summary["bad"])} bad '
        f'(left out); {num_folds} patient-grouped folds written to '
        f'{osp.join(root, HAND_BONE_LAYOUT["splits"])}', logger=logger)
    return summary
