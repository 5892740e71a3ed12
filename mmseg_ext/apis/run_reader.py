# Copyright (c) mmseg_ext contributors. All rights reserved.
"""One run (work dir) read whole: curve, config, per-class and per-case
scores, from whichever files it has (see :mod:`mmseg_ext.apis.compare_runs`
for the order they are tried in).

Split from :mod:`mmseg_ext.apis.compare_runs` (which re-exports it).
"""
import glob
import json
import os.path as osp
from typing import List, Optional, Sequence


from mmseg_ext.utils.errors import InputError
from .run_config import _find_config, _load_config, config_summary, \
    flatten_config
from .run_logs import (DEFAULT_METRICS, ID_COLUMNS, NON_METRIC_KEYS,
                       RunInputError, _per_case_per_class, _split_records,
                       find_run_dirs, parse_log_scalars, parse_log_tables,
                       read_per_case_csv, read_scalars)

__all__ = ['read_run']


# ------------------------------------------------------------- one run
def _evaluators(cfg) -> List[dict]:
    """The config's test and val evaluators (dicts), in that order."""
    found = []
    for key in ('test_evaluator', 'val_evaluator'):
        evaluators = cfg.get(key) if cfg is not None else None
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        found += [ev for ev in evaluators or [] if isinstance(ev, dict)]
    return found


def _evaluator_files(cfg, work_dir: str, suffix: str) -> List[str]:
    """Existing files named by the evaluators' ``*{suffix}`` arguments
    (``per_class_json``, a per-case ``..._csv``), relative paths tried from
    the current folder and the work dir."""
    paths = []
    for ev in _evaluators(cfg):
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
    for ev in _evaluators(cfg):
        folder = ev.get('out_dir')
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
