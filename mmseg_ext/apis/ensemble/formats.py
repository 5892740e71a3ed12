# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The ensemble's file formats: probabilities, weights, scores, thresholds.

- probabilities: one ``{image_stem}.npy`` per image, a uint8 ``(C, H, W)``
  array from :func:`~mmseg_ext.utils.ensemble.quantize_probs`
  (``round(255 p)``): :func:`save_probs` / :func:`load_probs`;
- soft-vote weights: ``E`` numbers, or a JSON / CSV ``(E,)`` or ``(E, C)``
  table: :func:`load_weights`, finite and non-negative;
- classwise scores: one per-class JSON per member
  (:func:`~mmseg_ext.evaluation.metrics.per_class_json.read_per_class_json`):
  :func:`load_scores`, finite or ``null``;
- thresholds: a number or the ``thresholds.json`` of ``ensemble_val``:
  :func:`load_thresholds`, finite and in ``[0, 1]``.

A bad file raises a ``ValueError`` subclass of
:class:`~mmseg_ext.utils.errors.InputError` naming the file and the field
(and the class).
"""
import csv
import json
import math
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from mmseg_ext.utils.ensemble import quantize_probs
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.io import atomic_path

__all__ = [
    'PROB_SUFFIX', 'WeightsError', 'ScoresError', 'ThresholdsError',
    'save_probs', 'load_probs', 'load_weights', 'check_member_weights',
    'load_scores', 'load_thresholds'
]

PROB_SUFFIX = '.npy'


class WeightsError(InputError):
    """Bad soft-vote weights (``--weights``): names the source and field."""


class ScoresError(InputError):
    """Bad classwise scores (``--scores``): names the file and class."""


class ThresholdsError(InputError):
    """Bad thresholds (``--thresholds``): names the file and class."""


def _load_json(path: str, error: type):
    """The content of a JSON file; ``error`` (naming it) if invalid."""
    with open(path, encoding='utf-8') as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise error(f'{path}: not valid JSON: {err}', path=path) from err


# ------------------------------------------------------------ probabilities
def save_probs(path: str, probs: np.ndarray) -> None:
    """Write uint8 ``(C, H, W)`` probabilities as ``.npy``, atomically.

    Args:
        path (str): Output ``{image_stem}.npy``.
        probs (np.ndarray): ``(C, H, W)`` uint8 (from :func:`quantize_probs`)
            or float in ``[0, 1]`` (quantised here).
    """
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError('probabilities to save should be (C, H, W), but got '
                         f'{probs.shape} (for {path!r})')
    if probs.dtype != np.uint8:
        probs = quantize_probs(probs)
    with atomic_path(path) as tmp:
        np.save(tmp, probs)


def load_probs(path: str,
               num_classes: Optional[int] = None,
               size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Read a ``(C, H, W)`` uint8 probability file of :func:`save_probs`.

    Args:
        path (str): The ``.npy`` file.
        num_classes (int, optional): ``C`` it must have. Defaults to None
            (any).
        size (tuple[int, int], optional): ``(H, W)`` of its image. Defaults
            to None (any).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        InputError: if it is not a uint8 ``(C, H, W)`` ``.npy`` array (a
            float array, an image-like ``(H, W, C)`` one, an empty one), or
            ``C`` / ``(H, W)`` differ from ``num_classes`` / ``size``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'probability file {path!r} does not exist')
    try:
        probs = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f'{path!r} is not a .npy array: {err}',
                         path=path) from err
    expected = ('(C, H, W) uint8 probabilities (quantize_probs, '
                'round(255 p); tools/ensemble.py --save-probs)')
    if probs.dtype != np.uint8 or probs.ndim != 3 or probs.size == 0:
        raise InputError(f'{path!r} should hold {expected}, but got '
                         f'{probs.shape} {probs.dtype}', path=path,
                         value=(probs.shape, str(probs.dtype)),
                         expected=expected)
    if probs.shape[-1] < probs.shape[0] and probs.shape[-1] <= 4 and \
            probs.shape[0] > 64 and num_classes is None:
        # (H, W, C): channels last, as an image
        raise InputError(f'{path!r} looks channels-last (H, W, C) = '
                         f'{probs.shape}; expected {expected}', path=path,
                         value=probs.shape, expected=expected)
    if num_classes is not None and probs.shape[0] != num_classes:
        raise InputError(f'{path!r} has {probs.shape[0]} classes (shape '
                         f'{probs.shape}), but {num_classes} are expected '
                         '(channels first: (C, H, W))', path=path,
                         value=probs.shape, expected=f'C = {num_classes}')
    if size is not None and tuple(probs.shape[1:]) != tuple(size):
        raise InputError(f'{path!r}: probabilities of size (H, W) = '
                         f'{tuple(probs.shape[1:])} should have the size '
                         f'{tuple(size)} of their image', path=path,
                         value=probs.shape, expected=f'(H, W) = {size}')
    return probs


def probs_shape(path: str) -> Tuple[int, ...]:
    """The array shape of a probability file, from its header only."""
    try:
        return tuple(np.load(path, mmap_mode='r', allow_pickle=False).shape)
    except (ValueError, OSError) as err:
        raise ValueError(f'{path!r} is not a .npy array: {err}') from err


# ------------------------------------------------------------------ weights
def _read_table(path: str) -> np.ndarray:
    """A numeric table from JSON (list, list of lists, or ``{"weights"}``)
    or CSV (an optional header row)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'weights file {path!r} does not exist')
    if path.lower().endswith('.json'):
        data = _load_json(path, WeightsError)
        if isinstance(data, dict):
            if 'weights' not in data:
                raise WeightsError(f'{path}: a JSON object should have a '
                                   f'"weights" field, but has {sorted(data)}',
                                   path=path, where='field "weights"')
            data = data['weights']
        rows = data if isinstance(data, list) else None
        if rows is not None and rows and all(
                isinstance(r, list) for r in rows):
            cells = [v for r in rows for v in r]
        else:
            cells = rows
        # JSON numbers only: np.asarray would turn true into 1.0 and the
        # string "1.5" into 1.5 without a word.
        if cells is None or not cells or any(
                isinstance(v, bool) or not isinstance(v, (int, float))
                for v in cells):
            raise WeightsError(
                path=path, where='field "weights"', value=data,
                expected='E numbers or E lists of C numbers (JSON numbers, '
                'not strings or booleans)')
        try:
            return np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as err:
            raise WeightsError(f'{path}: "weights" should be E numbers or E '
                               f'lists of C numbers: {err}', path=path,
                               where='field "weights"') from err
    rows = []
    with open(path, encoding='utf-8', newline='') as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                rows.append([float(c) for c in row])
            except ValueError:
                if line == 1 and not rows:  # header row
                    continue
                raise WeightsError(f'{path}:{line}: every field should be a '
                                   f'number, but got {row!r}', path=path,
                                   where=f'line {line}') from None
    if len({len(r) for r in rows}) > 1:
        raise WeightsError(f'{path}: every row should have the same number '
                           f'of weights (C), but got {[len(r) for r in rows]}',
                           path=path)
    return np.asarray(rows, dtype=np.float64)


def check_member_weights(weights,
                         num_members: int,
                         source: str = '`weights`',
                         num_classes: Optional[int] = None) -> np.ndarray:
    """The one check of soft-vote weights: ``(E,)`` or ``(E, C)``, finite,
    non-negative.

    Args:
        weights (array-like): The weights.
        num_members (int): ``E``.
        source (str): Where they come from, for messages (a file or
            ``'`--weights`'``). Defaults to ``'`weights`'``.
        num_classes (int, optional): ``C``, checked for an ``(E, C)``
            table. Defaults to None (not checked).

    Returns:
        np.ndarray: float64 ``(E,)`` or ``(E, C)``.

    Raises:
        WeightsError: naming ``source``, for a bad shape or value.
    """
    weights = np.asarray(weights, np.float64)
    path = source if osp.isfile(str(source)) else None
    if weights.ndim not in (1, 2) or weights.shape[0] != num_members:
        raise WeightsError(
            f'{source} should give one weight per member, (E,) = '
            f'({num_members},) or (E, C) = ({num_members}, C), but got '
            f'shape {weights.shape}; there are {num_members} members',
            path=path)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise WeightsError(f'{source} should hold finite non-negative '
                           f'weights, but got {weights.tolist()}', path=path)
    if num_classes is not None and weights.ndim == 2 and \
            weights.shape[1] != num_classes:
        raise WeightsError(
            f'{source} is an (E, C) = {weights.shape} table, but the '
            f'members predict C={num_classes} classes', path=path)
    return weights


def load_weights(spec: Union[str, Sequence], num_members: int) -> np.ndarray:
    """Member weights ``(E,)`` or ``(E, C)`` for the soft vote.

    Args:
        spec (str | Sequence): ``E`` numbers, or one path to a JSON (a list
            of ``E`` numbers, ``E`` lists of ``C`` numbers, or
            ``{"weights": ...}``) or CSV (``E`` rows of ``C`` numbers, an
            optional header row) table.
        num_members (int): ``E``.

    Returns:
        np.ndarray: ``(E,)`` or ``(E, C)`` float64 weights.

    Raises:
        WeightsError: if the count does not match ``E`` or a value is bad
            (not finite, negative).
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    if len(items) == 1 and isinstance(items[0], str) and (
            osp.splitext(items[0])[1].lower() in ('.json', '.csv')
            or osp.isfile(items[0])):
        weights = _read_table(items[0])
        source = items[0]
    else:
        try:
            weights = np.asarray([float(v) for v in items], np.float64)
        except (TypeError, ValueError):
            raise WeightsError('`--weights` should be E numbers or one '
                               f'JSON/CSV path, but got {items!r}') from None
        source = '`--weights`'
    return check_member_weights(weights, num_members, source)


# ------------------------------------------------------------------- scores
def load_scores(paths: Sequence[str],
                key: str = 'dice') -> Tuple[np.ndarray, Optional[List[str]]]:
    """``(E, C)`` per-class validation scores from per-class JSONs.

    Each file is one member's ``per_class_json`` of
    :class:`MultiLabelDiceMetric` or :class:`PerClassIoUMetric`
    (``{"classes", "dice", "iou", ...}``), read by
    :func:`~mmseg_ext.evaluation.metrics.per_class_json.read_per_class_json`;
    ``null`` (a class never seen) ranks last (``-inf``).

    Returns:
        tuple[np.ndarray, list[str] | None]: Scores and the class names.

    Raises:
        ScoresError: on a missing key, a score that is not finite (a NaN
            would win or lose the vote by accident), different class lists
            or lengths (naming the file, and the class).
    """
    from mmseg_ext.evaluation.metrics.per_class_json import (
        PerClassJSONError, read_per_class_json)
    rows, classes = [], None
    for path in paths:
        try:
            data = read_per_class_json(path, (key, ))
        except PerClassJSONError as err:
            raise ScoresError(
                f'{err} (--scores: MultiLabelDiceMetric/PerClassIoUMetric '
                f'per_class_json with a "{key}" list)', path=path,
                where=err.where) from err
        values = np.where(np.isnan(data[key]), -np.inf, data[key])
        names = data['classes']
        if rows and len(values) != len(rows[0]):
            raise ScoresError(f'{path}: has {len(values)} class scores, but '
                              f'{paths[0]} has {len(rows[0])}', path=path,
                              where=f'field {key!r}')
        if names is not None:
            if classes is not None and list(names) != classes:
                raise ScoresError(f'{path}: its classes {names} differ from '
                                  f'those of {paths[0]}: {classes}',
                                  path=path, where="field 'classes'")
            classes = list(names)
        rows.append(values)
    return np.asarray(rows, dtype=np.float64), classes


# --------------------------------------------------------------- thresholds
def load_thresholds(spec: Union[str, float], num_classes: int) -> dict:
    """Thresholds for the test split: a number, or ``thresholds.json``.

    Args:
        spec (str | float): A number in ``[0, 1)`` (every class), or the
            path of a ``thresholds.json`` from ``ensemble_val`` (values in
            ``[0, 1]``).
        num_classes (int): ``C``.

    Returns:
        dict: ``thresholds`` (``(C,)`` float32), ``postprocess`` (plan or
        ``{}``), ``classes`` (or None), ``strategy`` (or None), ``crf``
        (``{'classes': kept names, 'params': CRF parameters}``, or None: a
        file without ``"crf"``, e.g. written before the option, means no
        CRF).

    Raises:
        ThresholdsError: for a number outside ``[0, 1)``, a file without
            ``C`` thresholds, or a threshold that is not a finite number in
            ``[0, 1]`` (naming the file, class and value).
    """
    try:
        value = float(spec)
    except (TypeError, ValueError):
        value = None
    if value is not None:
        if not 0 <= value < 1:
            raise ThresholdsError(f'`--thresholds` should be in [0, 1), but '
                                  f'got {value}')
        return dict(
            thresholds=np.full(num_classes, value, np.float32),
            postprocess={},
            classes=None,
            strategy=None,
            crf=None)
    path = str(spec)
    if not osp.isfile(path):
        raise FileNotFoundError(f'`--thresholds` should be a number or a '
                                f'thresholds.json, but {path!r} does not '
                                'exist')
    data = _load_json(path, ThresholdsError)
    thresholds = data.get('thresholds') if isinstance(data, dict) else None
    if not isinstance(thresholds, list) or len(thresholds) != num_classes:
        got = len(thresholds) if isinstance(thresholds, list) else thresholds
        raise ThresholdsError(f'{path}: "thresholds" should be a list of C='
                              f'{num_classes} numbers, but got {got!r}',
                              path=path, where='field "thresholds"')
    classes = data.get('classes')
    for c, t in enumerate(thresholds):
        if isinstance(t, bool) or not isinstance(t, (int, float)) or \
                not math.isfinite(t) or not 0 <= t <= 1:
            name = classes[c] if isinstance(classes, list) and \
                len(classes) == num_classes else c
            raise ThresholdsError(
                path=path, where=f'field "thresholds", class {name!r}',
                value=t, expected='a finite number in [0, 1]; search them '
                'again with --split val')
    return dict(
        thresholds=np.asarray(thresholds, np.float32),
        postprocess=dict(data.get('postprocess') or {}),
        classes=classes,
        strategy=data.get('strategy'),
        crf=_crf_entry(data.get('crf'), classes, path))


def _crf_entry(entry, classes, path: str) -> Optional[dict]:
    """The checked ``"crf"`` entry of a thresholds.json (None: no CRF)."""
    from .crf import check_crf_params
    if entry is None:
        return None
    kept = entry.get('classes') if isinstance(entry, dict) else None
    if not isinstance(kept, list) or not all(
            isinstance(c, str) for c in kept):
        raise ThresholdsError(
            path=path, where='field "crf"', value=entry,
            expected='{"classes": [kept class names], "params": {...}}; '
            'search them again with --split val --crf')
    if isinstance(classes, list):
        unknown = [c for c in kept if c not in classes]
        if unknown:
            raise ThresholdsError(
                path=path, where='field "crf", "classes"', value=unknown,
                expected=f'names among "classes" {classes}')
    params = entry.get('params') or {}
    try:
        if not isinstance(params, dict):
            raise ValueError(f'a JSON object, but got {params!r}')
        params = check_crf_params(params, 'the CRF parameters')
    except ValueError as err:
        raise ThresholdsError(path=path, where='field "crf", "params"',
                              reason=str(err)) from err
    return dict(classes=kept, params=params)
