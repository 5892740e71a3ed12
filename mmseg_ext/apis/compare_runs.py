# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Compare training runs (work dirs) with each other and with MMSeg's zoo.

``tools/analysis_tools/compare_runs.py`` is a thin CLI over
:func:`compare_runs`. What a run gives, and where it is read from:

- config (model, backbone, crop, schedule, batch; the flattened keys for the
  diff table): the newest ``{timestamp}/vis_data/config.py``, else the
  newest ``{work_dir}/*.py`` that mmengine dumps;
- curves and best / last metric: mmengine's ``{timestamp}/vis_data/
  scalars.json`` of every timestamped run dir, oldest first, so a resumed
  run continues its curve (the newer record wins on a repeated step);
  without one, the ``Iter(val)`` / ``Epoch(val)`` lines of the newest log;
- per-class scores, first found of: the per-class JSONs of
  ``PerClassIoUMetric`` / ``MultiLabelDiceMetric`` (``per_class_json`` of
  the config's evaluators, else a ``{work_dir}/*.json`` with ``classes``),
  per-case CSVs (:func:`read_per_case_csv`: one row per image / case,
  ``{class}_{metric}`` columns such as BraTS' ``WT_dice,...,ET_hd95``; the
  evaluators' ``*_csv`` arguments, else ``{work_dir}/*.csv`` and
  ``{timestamp}/*.csv`` with an id column first), and
  for plain MMSeg runs the ``per class results:`` PrettyTable that
  ``IoUMetric`` prints into the log (:func:`parse_log_tables`, percent
  turned into fractions);
- parameters and FLOPs: the config's model built on the CPU with pretrained
  weights disabled, counted by mmengine's ``get_model_complexity_info`` at
  the config's own ``in_channels`` and crop (MMSeg's ``get_flops.py``
  hard-codes 3 channels, wrong for 1-channel X-rays and 4-modality MRI);
- with ``speed=True``: images/s of ``model.predict`` at the crop and peak
  memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: growth of the
  peak resident set, ``VmHWM``), on the named device.

A run that cannot be read (no scalars and no log, a truncated JSON, a
missing metric key) raises :class:`RunInputError` naming the run and what
is missing; :func:`compare_runs` warns, lists it as skipped and compares
the others. Runs whose class lists differ from the first run's are left out
of the per-class tables only (also listed).

Not mmseg's ``analyze_logs.py``: it plots one key of one log format and
prints no tables; the readers here reuse mmengine's outputs as they are.
"""
import csv
import difflib
import glob
import json
import math
import os
import os.path as osp
import re
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.paired_stats import (bootstrap_ci, paired_comparison,
                                          pareto_front)
from .compare_report import _finite, summary_json, write_outputs
from .model_cost import crop_of, measure_speed, model_complexity

__all__ = [
    'RunInputError', 'ZooLookupError', 'find_run_dirs', 'read_scalars',
    'parse_log_scalars', 'parse_log_tables', 'read_per_case_csv',
    'metric_rule', 'best_and_last', 'config_summary', 'flatten_config',
    'config_diff', 'model_complexity', 'measure_speed', 'zoo_lookup',
    'bootstrap_ci', 'paired_comparison', 'pareto_front', 'read_run',
    'compare_runs'
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


# ------------------------------------------------------------ rules & misc
def metric_rule(key: str) -> str:
    """``'greater'`` or ``'less'``: whether a larger ``key`` is better.

    mmengine's ``CheckpointHook`` rule (its ``less`` keys: ``loss``), plus
    distances (``hd95``, ``hd``, ``asd``) as ``less``.
    """
    from mmengine.hooks import CheckpointHook
    name = key.lower().split('/')[-1]
    less = [k.lower() for k in CheckpointHook._default_less_keys]
    less += ['hd95', 'hd', 'asd', 'assd', 'distance']
    if any(name == k or name.endswith('_' + k) or name.startswith(k)
           for k in less):
        return 'less'
    return 'greater'


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


# ---------------------------------------------------------------- config
def _find_config(work_dir: str, run_dirs: Sequence[str]) -> Optional[str]:
    for run_dir in reversed(run_dirs):
        path = osp.join(run_dir, 'vis_data', 'config.py')
        if osp.isfile(path):
            return path
    found = glob.glob(osp.join(work_dir, '*.py'))
    return max(found, key=osp.getmtime) if found else None


def _load_config(path: str):
    from mmengine.config import Config
    try:
        return Config.fromfile(path, import_custom_modules=False)
    except Exception as err:  # noqa: B902 (any config error: name the file)
        first = str(err).splitlines()[0] if str(err) else ''
        raise RunInputError(
            path=path, reason='the config cannot be loaded '
            f'({type(err).__name__}: {first})') from err


def _describe_type(part) -> Optional[str]:
    if not isinstance(part, dict) or 'type' not in part:
        return None
    details = [f'{k}={part[k]}' for k in ('arch', 'depth', 'embed_dims')
               if k in part and not isinstance(part[k], dict)]
    text = str(part['type'])
    return f'{text}({", ".join(details)})' if details else text


def _head_type(head) -> Optional[str]:
    if isinstance(head, dict) and isinstance(head.get('head'), dict):
        return f'{head.get("type")}[{head["head"].get("type")}]'
    return head.get('type') if isinstance(head, dict) else None


def config_summary(cfg) -> dict:
    """What a README table says of a run's config.

    Returns:
        dict: ``segmentor``, ``model`` (decode head type), ``backbone``
        (type and ``arch`` / ``depth`` / ``embed_dims``), ``in_channels``,
        ``num_classes``, ``crop`` (``'HxW'``), ``schedule`` (``'6 iters'``
        / ``'12 epochs'``), ``batch`` (per GPU), ``optimizer``, ``lr``,
        ``dataset`` (missing parts None).
    """
    model = cfg.get('model', {}) or {}
    backbone = model.get('backbone') or {}
    head = model.get('decode_head') or {}
    inner = head.get('head') if isinstance(head.get('head'), dict) else head
    train_cfg = cfg.get('train_cfg') or {}
    schedule = None
    if 'max_iters' in train_cfg:
        schedule = f'{train_cfg["max_iters"]} iters'
    elif 'max_epochs' in train_cfg:
        schedule = f'{train_cfg["max_epochs"]} epochs'
    loader = cfg.get('train_dataloader') or {}
    optim = (cfg.get('optim_wrapper') or {}).get('optimizer') or {}
    crop = crop_of(cfg)
    return dict(
        segmentor=model.get('type'),
        model=_head_type(head),
        backbone=_describe_type(backbone),
        in_channels=backbone.get('in_channels', 3),
        num_classes=inner.get('num_classes') if isinstance(inner, dict)
        else None,
        crop=None if crop is None else f'{crop[0]}x{crop[1]}',
        schedule=schedule,
        batch=loader.get('batch_size'),
        optimizer=optim.get('type'),
        lr=optim.get('lr'),
        dataset=(loader.get('dataset') or {}).get('type'))


def flatten_config(cfg, prefix: str = '') -> Dict[str, object]:
    """``{'model.backbone.depth': 50, 'train_dataloader.dataset.pipeline.
    0.type': 'LoadImageFromFile', ...}``: dicts by key, lists by index."""
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    out = {}

    def walk(value, key):
        if isinstance(value, dict) and value:
            for k in value:
                walk(value[k], f'{key}.{k}' if key else str(k))
        elif isinstance(value, (list, tuple)) and value and any(
                isinstance(v, (dict, list, tuple)) for v in value):
            for i, v in enumerate(value):
                walk(v, f'{key}.{i}')
        else:
            out[key] = list(value) if isinstance(value, tuple) else value

    walk(data, prefix)
    return out


#: Keys that differ between any two runs and say nothing (paths of outputs).
DIFF_IGNORED = ('work_dir', 'filename', 'launcher')


def config_diff(flats: Sequence[Dict[str, object]],
                ignore: Sequence[str] = DIFF_IGNORED) -> List[dict]:
    """The flattened keys whose values differ between runs.

    Args:
        flats (Sequence[dict]): :func:`flatten_config` of each run.
        ignore (Sequence[str]): Top-level keys left out. Defaults to
            :data:`DIFF_IGNORED`.

    Returns:
        list[dict]: ``{'key': k, 'values': [value or None per run],
        'missing': [bool per run]}``, sorted by key.
    """
    keys = sorted(set().union(*[set(f) for f in flats])) if flats else []
    rows = []
    for key in keys:
        if key.split('.')[0] in ignore:
            continue
        missing = [key not in f for f in flats]
        values = [f.get(key) for f in flats]
        texts = {json.dumps(v, sort_keys=True, default=str) if not m else
                 '\0missing' for v, m in zip(values, missing)}
        if len(texts) > 1:
            rows.append(dict(key=key, values=values, missing=missing))
    return rows


# -------------------------------------------------------------------- zoo
def _metafiles() -> List[str]:
    import mmseg
    root = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')
    return sorted(glob.glob(osp.join(root, '*', 'metafile.yaml')))


def zoo_lookup(name: str) -> dict:
    """A model of the installed MMSeg's model zoo, from its
    ``metafile.yaml``.

    Args:
        name (str): The zoo name (the config name without ``.py``), e.g.
            ``'segformer_mit-b0_8xb2-160k_ade20k-512x512'``.

    Returns:
        dict: ``name``, ``dataset``, ``task``, ``metrics`` (``{key:
        value}`` as listed, percent), ``batch_size``, ``memory_gb``,
        ``hardware``, ``architecture``, ``weights``, ``training_log``,
        ``config``, ``metafile``.

    Raises:
        ZooLookupError: if no metafile lists ``name`` (with close names).
    """
    import yaml
    name = osp.splitext(osp.basename(str(name)))[0]
    files = _metafiles()
    names = []
    loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
    for path in files:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        if not re.search(rf'^- Name: {re.escape(name)}\s*$', text, re.M):
            # parse only the file that lists it (52 files: seconds in YAML)
            names += re.findall(r'^- Name: (\S+)', text, re.M)
            continue
        data = yaml.load(text, Loader=loader) or {}
        for model in data.get('Models') or []:
            names.append(model.get('Name'))
            if model.get('Name') != name:
                continue
            results = model.get('Results') or {}
            if isinstance(results, list):
                results = results[0] if results else {}
            meta = model.get('Metadata') or {}
            return dict(
                name=name,
                dataset=results.get('Dataset'),
                task=results.get('Task'),
                metrics=dict(results.get('Metrics') or {}),
                batch_size=meta.get('Batch Size'),
                memory_gb=meta.get('Memory (GB)'),
                hardware=meta.get('Training Resources'),
                architecture=meta.get('Architecture'),
                weights=model.get('Weights'),
                training_log=model.get('Training log'),
                config=model.get('Config'),
                metafile=path)
    close = difflib.get_close_matches(name, [n for n in names if n], n=3)
    raise ZooLookupError(
        reason=f'no installed MMSeg metafile.yaml ({len(files)} files) '
        'lists the model', value=name,
        expected='a zoo config name such as '
        f'{close or ["segformer_mit-b0_8xb2-160k_ade20k-512x512"]}')


# ------------------------------------------------------------- one run
def _evaluator_files(cfg, work_dir: str, suffix: str) -> List[str]:
    """Existing files named by the evaluators' ``*{suffix}`` arguments
    (``per_class_json``, a per-case ``..._csv``), relative paths tried from
    the current folder and the work dir."""
    paths = []
    for key in ('test_evaluator', 'val_evaluator'):
        evaluators = cfg.get(key) if cfg is not None else None
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for ev in evaluators or []:
            if not isinstance(ev, dict):
                continue
            for arg, path in ev.items():
                if not arg.endswith(suffix) or not isinstance(path, str):
                    continue
                candidates = [path] if osp.isabs(path) else [
                    path, osp.join(work_dir, path),
                    osp.join(work_dir, osp.basename(path))]
                paths += [p for p in candidates if osp.isfile(p)][:1]
    return paths


def _evaluator_out_csvs(cfg, work_dir: str) -> List[str]:
    """CSVs in the evaluators' ``out_dir`` folders (``BraTSMetric`` writes
    ``{out_dir}/per_case.csv`` there), ``per_case.csv`` first; relative
    folders tried from the current folder and the work dir."""
    paths = []
    for key in ('test_evaluator', 'val_evaluator'):
        evaluators = cfg.get(key) if cfg is not None else None
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for ev in evaluators or []:
            folder = ev.get('out_dir') if isinstance(ev, dict) else None
            if not isinstance(folder, str):
                continue
            for cand in ([folder] if osp.isabs(folder) else
                         [folder, osp.join(work_dir, folder)]):
                if osp.isdir(cand):
                    found = sorted(glob.glob(osp.join(cand, '*.csv')))
                    paths += sorted(
                        found,
                        key=lambda p: osp.basename(p) != 'per_case.csv')
                    break
    return paths


def _per_class_from_json(paths: Sequence[str]) -> Optional[dict]:
    from mmseg_ext.evaluation.metrics.per_class_json import (
        PerClassJSONError, read_per_class_json)
    for path in paths:
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise RunInputError(path=path, reason=f'not valid JSON, '
                                f'truncated? ({err.msg})',
                                expected='a per-class JSON (PerClassIoUMetric'
                                ' / MultiLabelDiceMetric)') from None
        except (OSError, UnicodeDecodeError):
            continue
        if not isinstance(data, dict) or not isinstance(
                data.get('classes'), list):
            continue
        keys = tuple(k for k in ('dice', 'iou') if k in data)
        if not keys:
            continue
        try:
            scores = read_per_class_json(path, keys, require_classes=True)
        except PerClassJSONError as err:
            raise RunInputError(str(err), path=path,
                                where=err.where) from None
        return dict(source=path, classes=list(scores['classes']),
                    metrics={k: scores[k] for k in keys})
    return None


def read_run(work_dir: str,
             name: Optional[str] = None,
             metric: Optional[str] = None) -> dict:
    """Everything :func:`compare_runs` reads of one work dir.

    Args:
        work_dir (str): The run's work dir.
        name (str, optional): Its display name. Defaults to the folder
            name.
        metric (str, optional): The metric key that must be there. Defaults
            to None (not checked here).

    Returns:
        dict: ``name``, ``work_dir``, ``run_dirs``, ``config_path``,
        ``config`` (mmengine ``Config`` or None), ``summary``
        (:func:`config_summary`), ``flat`` (:func:`flatten_config`),
        ``scalars_source``, ``train`` / ``val`` (scalars records),
        ``per_class`` (``source``, ``classes``, ``metrics``) or None,
        ``per_case`` (``source``, ``ids``, ``columns``) or None.

    Raises:
        RunInputError: naming the run for a missing work dir, no scalars
            and no log, a truncated file, no validation metric or a missing
            ``metric`` key.
    """
    name = name or osp.basename(osp.normpath(work_dir))
    try:
        return _read_run(work_dir, name, metric)
    except (InputError, OSError) as err:
        if isinstance(err, RunInputError) and str(err).startswith('run '):
            raise
        path = getattr(err, 'path', None) or getattr(err, 'filename', None)
        raise RunInputError(f'run {name!r} ({work_dir}): {err}',
                            path=path) from None


def _read_run(work_dir: str, name: str, metric: Optional[str]) -> dict:
    if not osp.isdir(work_dir):
        raise RunInputError(f'run {name!r}: the work dir {work_dir!r} does '
                            'not exist', path=work_dir)
    run_dirs = find_run_dirs(work_dir)
    records, source = [], None
    for run_dir in run_dirs:
        path = osp.join(run_dir, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            records += read_scalars(path)
            source = path
    logs = [osp.join(d, osp.basename(d) + '.log') for d in run_dirs]
    logs = [p for p in logs if osp.isfile(p)] or sorted(
        glob.glob(osp.join(work_dir, '*.log')), key=osp.getmtime)
    if not records and logs:
        for log in logs:
            records += parse_log_scalars(log)
        source = logs[-1]
    if source is None:
        raise RunInputError(
            f'run {name!r} ({work_dir}): has neither {{timestamp}}/vis_data/'
            'scalars.json nor an mmengine log; give the work dir of a '
            'training run (mmengine LocalVisBackend writes the scalars)',
            path=work_dir)
    train, val = _split_records(records)
    val_keys = sorted({k for r in val for k in r if k not in NON_METRIC_KEYS})
    if not val_keys:
        raise RunInputError(
            f'run {name!r} ({work_dir}): {source} has no validation metric '
            '(no val_evaluator, or the run stopped before its first '
            'validation)', path=source)
    if metric is not None and metric not in val_keys:
        raise RunInputError(
            f'run {name!r} ({work_dir}): {source} has no metric {metric!r}; '
            f'it has {val_keys} (choose one with --metric)', path=source)
    config_path = _find_config(work_dir, run_dirs)
    cfg = _load_config(config_path) if config_path else None
    per_class = _per_class_from_json(
        _evaluator_files(cfg, work_dir, '_json') +
        sorted(glob.glob(osp.join(work_dir, '*.json'))))
    per_case = None
    csvs = (_evaluator_files(cfg, work_dir, '_csv') +
            _evaluator_out_csvs(cfg, work_dir) +
            sorted(glob.glob(osp.join(work_dir, '*.csv'))))
    for run_dir in reversed(run_dirs):  # a test run's outputs, newest first
        csvs += sorted(glob.glob(osp.join(run_dir, '*.csv')))
    for path in csvs:
        with open(path, encoding='utf-8', errors='replace') as f:
            first = f.readline().split(',')[0].strip().lower()
        if first in ID_COLUMNS:
            per_case = dict(source=path, **read_per_case_csv(path))
            break
    if per_class is None and per_case is not None:
        per_class = _per_case_per_class(per_case['columns'])
        if per_class is not None:
            per_class['source'] = per_case['source']
    if per_class is None:
        for log in reversed(logs):
            tables = parse_log_tables(log)
            if tables:
                per_class = dict(source=log, **tables[-1])
                break
    return dict(
        name=name, work_dir=work_dir, run_dirs=run_dirs,
        config_path=config_path, config=cfg,
        summary=config_summary(cfg) if cfg is not None else {},
        flat=flatten_config(cfg) if cfg is not None else {},
        scalars_source=source, train=train, val=val, val_keys=val_keys,
        per_class=per_class, per_case=per_case)


def _choose_metric(runs: Sequence[dict]) -> str:
    common = set.intersection(*[set(r['val_keys']) for r in runs])
    for key in DEFAULT_METRICS:
        if key in common:
            return key
    if common:
        return sorted(common)[0]
    raise RunInputError(
        'the runs share no validation metric: ' + '; '.join(
            f'{r["name"]}: {r["val_keys"]}' for r in runs) +
        ' (choose one with --metric)')


# --------------------------------------------------------------- the report
def _per_class_tables(runs: Sequence[dict], skipped: list) -> dict:
    """``{key: dict(classes, runs, values (R, C), best (R, C) bool,
    rule)}`` over the runs sharing the first per-class run's classes."""
    with_pc = [r for r in runs if r['per_class']]
    if not with_pc:
        return {}
    classes = with_pc[0]['per_class']['classes']
    same = []
    for run in with_pc:
        if run['per_class']['classes'] != classes:
            reason = (f'its classes {run["per_class"]["classes"]} (from '
                      f'{run["per_class"]["source"]}) differ from those of '
                      f'{with_pc[0]["name"]!r}: {classes}')
            warnings.warn(f'run {run["name"]!r}: left out of the per-class '
                          f'tables: {reason}')
            skipped.append(dict(name=run['name'], work_dir=run['work_dir'],
                                part='per-class tables', reason=reason))
            continue
        same.append(run)
    keys = []
    for run in same:
        keys += [k for k in run['per_class']['metrics'] if k not in keys]
    # a score only one of several runs has (the Acc column of IoUMetric's
    # log table) compares nothing
    keys = [k for k in keys if sum(k in r['per_class']['metrics']
                                   for r in same) >= min(2, len(same))]
    tables = {}
    for key in keys:
        values = np.stack([
            np.asarray(r['per_class']['metrics'].get(
                key, np.full(len(classes), np.nan)), np.float64)
            for r in same])
        rule = metric_rule(key)
        best = np.zeros_like(values, bool)
        for c in range(values.shape[1]):
            col = values[:, c]
            if np.isfinite(col).any():
                target = np.nanmax(col) if rule == 'greater' else \
                    np.nanmin(col)
                best[:, c] = np.isclose(col, target, rtol=0, atol=1e-12)
        tables[key] = dict(classes=list(classes),
                           runs=[r['name'] for r in same], values=values,
                           best=best, rule=rule)
    return tables


def compare_runs(work_dirs: Sequence[str],
                 out_dir: str,
                 names: Optional[Sequence[str]] = None,
                 metric: Optional[str] = None,
                 rule: Optional[str] = None,
                 zoo: Sequence[str] = (),
                 speed: bool = False,
                 speed_device: Optional[str] = None,
                 speed_iters: int = 10,
                 complexity: bool = True,
                 num_samples: int = 10000,
                 seed: int = 0,
                 plot: bool = True,
                 cost: str = 'auto',
                 show_progress: bool = False) -> dict:
    """Compare runs; write ``summary.md``, ``summary.csv``,
    ``summary.json``, ``per_class.csv``, ``config_diff.csv``, ``paired.csv``
    and the PNGs (``curves.png``, ``per_class.png``, ``cost.png``) to
    ``out_dir``, atomically.

    Args:
        work_dirs (Sequence[str]): The runs' work dirs.
        out_dir (str): Output folder.
        names (Sequence[str], optional): Display names, one per work dir.
            Defaults to the folder names.
        metric (str, optional): Validation metric key (``mIoU``,
            ``mDice``, ``building/score``, ...). Defaults to the first of
            :data:`DEFAULT_METRICS` that every run has.
        rule (str, optional): ``'greater'`` / ``'less'``. Defaults to
            :func:`metric_rule`.
        zoo (Sequence[str]): Zoo names (:func:`zoo_lookup`), shown in a
            block per dataset. Defaults to ().
        speed (bool): Measure images/s and peak memory
            (:func:`measure_speed`). Defaults to False.
        speed_device (str, optional): Device of the measurement. Defaults
            to CUDA if available, else CPU.
        speed_iters (int): Timed calls per run. Defaults to 10.
        complexity (bool): Count parameters and FLOPs. Defaults to True.
        num_samples (int): Bootstrap resamples of the paired comparison.
            Defaults to 10000.
        seed (int): Bootstrap seed. Defaults to 0.
        plot (bool): Write the PNGs. Defaults to True.
        cost (str): x axis of ``cost.png``: ``'flops'``, ``'speed'``
            (images/s) or ``'auto'`` (images/s when measured for every run,
            else FLOPs). Defaults to ``'auto'``.
        show_progress (bool): A progress bar over the runs while their
            models are counted / timed. Defaults to False.

    Returns:
        dict: The ``summary.json`` content (``metric``, ``rule``, ``runs``,
        ``per_class``, ``paired``, ``config_diff``, ``zoo``, ``skipped``,
        ``files``).

    Raises:
        RunInputError: if no run can be read (each run's reason named).
        ValueError: for ``names`` of another length.
    """
    work_dirs = list(work_dirs)
    if not work_dirs:
        raise ValueError('give at least one work dir')
    if names is not None and len(names) != len(work_dirs):
        raise ValueError(f'`names` should give one name per work dir '
                         f'({len(work_dirs)}), but got {len(names)}')
    names = list(names) if names is not None else [
        osp.basename(osp.normpath(w)) for w in work_dirs]
    if len(set(names)) != len(names):
        raise ValueError(f'the run names should differ, but got {names}; '
                         'give --names')
    if cost not in ('auto', 'flops', 'speed'):
        raise ValueError("`cost` should be 'auto', 'flops' or 'speed', but "
                         f'got {cost!r}')
    if cost == 'speed' and not speed:
        raise ValueError("`cost='speed'` needs the speed measured "
                         '(speed=True, --speed)')
    if rule is not None and rule not in ('greater', 'less'):
        raise ValueError(f"`rule` should be 'greater' or 'less', but got "
                         f'{rule!r}')
    runs, skipped = [], []
    for work_dir, name in zip(work_dirs, names):
        try:
            runs.append(read_run(work_dir, name, metric))
        except RunInputError as err:
            warnings.warn(f'{err}; skipped')
            skipped.append(dict(name=name, work_dir=work_dir, part='run',
                                reason=str(err)))
    if not runs:
        raise RunInputError('no run can be compared: ' + '; '.join(
            s['reason'] for s in skipped))
    metric = metric or _choose_metric(runs)
    kept = []
    for run in runs:
        if metric not in run['val_keys']:
            reason = (f'run {run["name"]!r} ({run["work_dir"]}): '
                      f'{run["scalars_source"]} has no metric {metric!r}; '
                      f'it has {run["val_keys"]}')
            warnings.warn(f'{reason}; skipped')
            skipped.append(dict(name=run['name'], work_dir=run['work_dir'],
                                part='run', reason=reason))
        else:
            kept.append(run)
    runs = kept
    rule = rule or metric_rule(metric)
    bar = None
    if show_progress and (complexity or speed):
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(runs))  # models built, counted, timed
    for run in runs:
        run['curve'] = [(r['step'], r[metric]) for r in run['val']
                        if metric in r]
        run.update(best_and_last(run['curve'], rule))
        _measure(run, complexity, speed, speed_device, speed_iters)
        if bar is not None:
            bar.update()
    if bar is not None:
        print()
    per_class = _per_class_tables(runs, skipped)
    diff = config_diff([r['flat'] for r in runs])
    paired = _paired(runs, num_samples, seed)
    zoo_models = [zoo_lookup(z) for z in zoo]
    os.makedirs(out_dir, exist_ok=True)
    files = write_outputs(out_dir, runs, metric, rule, per_class, diff,
                          paired, zoo_models, skipped, plot, cost)
    return summary_json(out_dir, runs, metric, rule, per_class, diff,
                        paired, zoo_models, skipped, files)


def _measure(run: dict, complexity: bool, speed: bool,
             device: Optional[str], iters: int) -> None:
    """Set ``run['complexity']`` / ``run['speed']`` (None, the numbers, or
    ``{'error': ...}`` with a warning: a model that cannot be built or
    counted does not stop the comparison)."""
    run['complexity'] = run['speed'] = None
    if run['config'] is None:
        return
    jobs = [('complexity', 'no parameters / FLOPs', complexity,
             lambda: model_complexity(run['config'])),
            ('speed', 'no speed', speed,
             lambda: measure_speed(run['config'], device, iters))]
    for key, what, wanted, job in jobs:
        if not wanted:
            continue
        try:
            run[key] = job()
        except Exception as err:  # noqa: B902 (any model-building error)
            run[key] = dict(error=f'{type(err).__name__}: '
                            f'{err}'.splitlines()[0])
            warnings.warn(f'run {run["name"]!r}: {what}: {run[key]["error"]}')


def _paired(runs: Sequence[dict], num_samples: int, seed: int) -> List[dict]:
    """Every run with a per-case table against the first one."""
    with_cases = [r for r in runs if r['per_case']]
    out = []
    if len(with_cases) < 2:
        return out
    ref = with_cases[0]
    for other in with_cases[1:]:
        for column, values in other['per_case']['columns'].items():
            if column not in ref['per_case']['columns']:
                continue
            result = paired_comparison(
                ref['per_case']['ids'], ref['per_case']['columns'][column],
                other['per_case']['ids'], values, metric_rule(column),
                num_samples=num_samples, seed=seed)
            if result['n']:
                out.append(dict(reference=ref['name'], run=other['name'],
                                column=column, **result))
    return out
