# Copyright (c) mmseg_ext contributors. All rights reserved.
"""What a run's files say: mmengine's scalars, the log's ``Iter(val)`` lines
and per-class tables, per-case CSVs, the best / last value of a curve.

Split from :mod:`mmseg_ext.apis.compare_runs` (which re-exports it); the
errors of every run reader live here.
"""
import csv
import json
import math
import os
import os.path as osp
import re
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmseg_ext.utils.errors import InputError
from .compare_report import _finite

__all__ = [
    'RUN_DIR_PATTERN', 'NON_METRIC_KEYS', 'DEFAULT_METRICS',
    'PERCENT_COLUMNS', 'ID_COLUMNS', 'RunInputError', 'ZooLookupError',
    'find_run_dirs', 'read_scalars', 'parse_log_scalars', 'parse_log_tables',
    'read_per_case_csv', 'best_and_last'
]

#: Timestamped run dirs of mmengine (``20240101_120000``).
RUN_DIR_PATTERN = re.compile(r'^\d{8}_\d{6}$')
#: Keys of scalars records that are no metric.
NON_METRIC_KEYS = ('step', 'iter', 'epoch', 'time', 'data_time', 'lr',
                   'memory', 'eta')
#: Metric keys tried, in order, when none is given.
DEFAULT_METRICS = ('mDice', 'mIoU', 'building/score', 'score', 'dice')
#: Columns of MMSeg's per-class table that are percentages.
PERCENT_COLUMNS = ('iou', 'acc', 'dice', 'fscore', 'precision', 'recall')
#: Names of the id column of a per-case / per-image CSV.
ID_COLUMNS = ('case_id', 'img_id', 'image', 'image_name', 'name', 'stem')


class RunInputError(InputError):
    """A run (work dir) that cannot be compared: names the run, the file and
    what is missing."""


class ZooLookupError(InputError):
    """A model-zoo name that no installed ``metafile.yaml`` lists."""


# ---------------------------------------------------------------- scalars
def find_run_dirs(work_dir: str) -> List[str]:
    """The timestamped run dirs of a work dir, oldest first."""
    if not osp.isdir(work_dir):
        return []
    return sorted(
        osp.join(work_dir, d) for d in os.listdir(work_dir)
        if RUN_DIR_PATTERN.match(d) and osp.isdir(osp.join(work_dir, d)))


def read_scalars(path: str) -> List[dict]:
    """The records of mmengine's ``vis_data/scalars.json`` (JSON lines).

    Raises:
        RunInputError: for a line that is not a JSON object (e.g. the last
            line of a run killed while writing), naming the file and line.
    """
    records = []
    with open(path, encoding='utf-8') as f:
        for num, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise RunInputError(
                    path=path, where=f'line {num}',
                    reason=f'not valid JSON, truncated? ({err.msg})',
                    expected='one JSON object per line (mmengine '
                    'LocalVisBackend); delete the broken line') from None
            if not isinstance(record, dict) or 'step' not in record:
                raise RunInputError(
                    path=path, where=f'line {num}', value=record,
                    expected='a JSON object with a "step" (mmengine '
                    'LocalVisBackend scalars)')
            records.append(record)
    return records


def _split_records(records: Sequence[dict]) -> Tuple[list, list]:
    """``(train, val)`` records: train ones carry ``lr`` / ``loss``."""
    train, val = {}, {}
    for rec in records:
        is_train = 'lr' in rec or any(k.startswith('loss') or '.loss' in k
                                      for k in rec)
        (train if is_train else val)[rec['step']] = rec
    return ([train[k] for k in sorted(train)], [val[k] for k in sorted(val)])


_LOG_VAL = re.compile(r' - (?:Iter|Epoch)\(val\) (?:\[\d+\])?\[\d+/\d+\]\s+'
                      r'(.*)$')
_LOG_TRAIN = re.compile(r' - Iter\(train\) \[\s*(\d+)/\d+\]|'
                        r' - Epoch\(train\)\s+\[(\d+)\]')
_LOG_PAIR = re.compile(r'([^\s:]+): (\S+)')


def parse_log_scalars(path: str) -> List[dict]:
    """Validation metrics of an mmengine log, as scalars records.

    Reads ``Iter(val) [n/n]  mIoU: 40.1000  ...`` (and ``Epoch(val)``)
    summary lines; the step is the last ``Iter(train) [k/N]`` iteration (or
    ``Epoch(train) [e]`` epoch) before it. Lines with ``eta:`` (progress) are
    no summary.

    Returns:
        list[dict]: ``{metric: value, ..., 'step': k}`` per validation.
    """
    out, step = [], 0
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            train = _LOG_TRAIN.search(line)
            if train:
                step = int(train.group(1) or train.group(2))
                continue
            val = _LOG_VAL.search(line)
            if not val or 'eta:' in val.group(1):
                continue
            rec = {}
            for key, value in _LOG_PAIR.findall(val.group(1)):
                number = _finite(value)
                if number is not None and key not in NON_METRIC_KEYS:
                    rec[key] = number
            if rec:
                rec['step'] = step
                out.append(rec)
    return out


# ------------------------------------------------------ per-class: the log
_LOG_PREFIX = re.compile(r'^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} - \S+ - '
                         r'[A-Z]+ - ')
_TABLE_HEAD = re.compile(r'per class results(?P<ours> \(\d+ images\))?:')


def parse_log_tables(path: str) -> List[dict]:
    """The per-class PrettyTables printed into an MMSeg log.

    ``IoUMetric`` logs ``per class results:`` and then the table with
    percentages; ``MultiLabelDiceMetric`` logs ``per class results (N
    images):`` with fractions. Both become fractions in ``[0, 1]``; ``nan``
    cells are NaN. A class name must not contain ``|``.

    Returns:
        list[dict]: Per table, in log order: ``classes`` (list) and
        ``metrics`` (``{column lowercased: (C,) float64}``).

    Examples:
        >>> tables = parse_log_tables('work_dirs/x/20240101_120000/'
        ...                           '20240101_120000.log')
        >>> tables[-1]['metrics']['iou']
    """
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
    tables, i = [], 0
    while i < len(lines):
        head = _TABLE_HEAD.search(lines[i])
        i += 1
        if not head:
            continue
        percent = head.group('ours') is None
        # print_log('\n' + table) leaves a line with only the log prefix
        while i < len(lines) and not _LOG_PREFIX.sub('', lines[i]).strip():
            i += 1
        rows = []
        while i < len(lines) and lines[i].lstrip().startswith(('+', '|')):
            text = lines[i].strip()
            if text.startswith('|'):
                rows.append([c.strip() for c in text.strip('|').split('|')])
            i += 1
        if len(rows) < 2 or rows[0][0].lower() != 'class':
            continue
        header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
        metrics = {}
        for j, name in enumerate(header[1:], start=1):
            values = []
            for row in body:
                try:
                    values.append(float(row[j]))
                except ValueError:
                    values.append(math.nan)
            values = np.asarray(values, np.float64)
            key = name.lower()
            if percent and key in PERCENT_COLUMNS:
                values = values / 100.0
            metrics[key] = values
        tables.append(dict(classes=[r[0] for r in body], metrics=metrics))
    return tables


# ------------------------------------------------- per-class: per-case CSV
def read_per_case_csv(path: str) -> dict:
    """A per-case / per-image score CSV: an id column, then numbers.

    Layout (BraTS' ``case_id,WT_dice,TC_dice,ET_dice,WT_hd95,TC_hd95,
    ET_hd95``; any ``{class}_{metric}`` columns): the first column is the id
    (one of :data:`ID_COLUMNS`), every other cell a number, ``nan`` or empty
    (NaN: nothing to measure).

    Returns:
        dict: ``ids`` (list of str), ``columns`` (``{name: (N,) float64}``,
        in file order).

    Raises:
        RunInputError: for a missing id column, a repeated id, a row of
            another length or a cell that is no number (naming the file,
            line and column).
    """
    with open(path, encoding='utf-8', newline='') as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0].strip().lower() not in \
            ID_COLUMNS:
        raise RunInputError(
            path=path, where='line 1', value=rows[0] if rows else None,
            expected=f'a header whose first column is one of {ID_COLUMNS} '
            '(e.g. case_id,WT_dice,TC_dice,ET_dice,WT_hd95,TC_hd95,ET_hd95)')
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or len(set(header)) != len(header):
        raise RunInputError(path=path, where='line 1', value=header,
                            expected='an id and distinct score columns')
    ids, values, seen = [], [], set()
    for num, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise RunInputError(path=path, where=f'line {num}', value=row,
                                expected=f'{len(header)} fields ({header})')
        case = row[0].strip()
        if case in seen:
            raise RunInputError(path=path, where=f'line {num}, field '
                                f'{header[0]!r}', value=case,
                                expected='one row per case')
        seen.add(case)
        cells = []
        for name, cell in zip(header[1:], row[1:]):
            cell = cell.strip()
            try:
                number = float(cell) if cell else math.nan
            except ValueError:
                number = None
            if number is None or math.isinf(number):
                raise RunInputError(
                    path=path, where=f'line {num}, field {name!r}',
                    value=cell, expected='a finite number, nan or empty')
            cells.append(number)
        ids.append(case)
        values.append(cells)
    table = np.asarray(values, np.float64).reshape(len(ids), len(header) - 1)
    return dict(ids=ids, columns={
        name: table[:, j] for j, name in enumerate(header[1:])})


def _per_case_per_class(columns: Dict[str, np.ndarray]) -> Optional[dict]:
    """``{class}_{metric}`` columns -> per-class means (NaN ignored)."""
    classes, metrics = [], {}
    for name, values in columns.items():
        if '_' not in name:
            continue
        cls, key = name.rsplit('_', 1)
        if cls not in classes:
            classes.append(cls)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            metrics.setdefault(key.lower(), {})[cls] = float(
                np.nanmean(values)) if len(values) else math.nan
    if not classes:
        return None
    return dict(classes=classes, metrics={
        key: np.asarray([by.get(c, math.nan) for c in classes], np.float64)
        for key, by in metrics.items()})


# ------------------------------------------------------------- the curve
def best_and_last(curve: Sequence[Tuple[int, float]],
                  rule: str = 'greater') -> dict:
    """Best (first reached) and last value of a ``[(step, value)]`` curve.

    Returns:
        dict: ``best``, ``best_step``, ``last``, ``last_step`` (None for an
        empty curve or one without finite values).
    """
    points = [(s, v) for s, v in curve if _finite(v) is not None]
    if not points:
        return dict(best=None, best_step=None, last=None, last_step=None)
    sign = 1 if rule == 'greater' else -1
    best = max(points, key=lambda p: (sign * p[1], -p[0]))
    return dict(best=float(best[1]), best_step=int(best[0]),
                last=float(points[-1][1]), last_step=int(points[-1][0]))
