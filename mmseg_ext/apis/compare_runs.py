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
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence

import numpy as np

from mmseg_ext.utils.paired_stats import (bootstrap_ci, paired_comparison,
                                          pareto_front)
from .compare_report import summary_json, write_outputs
from .model_cost import measure_speed, model_complexity
from .run_config import config_diff, config_summary, flatten_config, \
    zoo_lookup
from .run_logs import (RunInputError, ZooLookupError, best_and_last,
                       find_run_dirs, parse_log_scalars, parse_log_tables,
                       read_per_case_csv, read_scalars)
from .run_reader import _choose_metric, read_run

__all__ = [
    'RunInputError', 'ZooLookupError', 'find_run_dirs', 'read_scalars',
    'parse_log_scalars', 'parse_log_tables', 'read_per_case_csv',
    'metric_rule', 'best_and_last', 'config_summary', 'flatten_config',
    'config_diff', 'model_complexity', 'measure_speed', 'zoo_lookup',
    'bootstrap_ci', 'paired_comparison', 'pareto_front', 'read_run',
    'compare_runs'
]


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
