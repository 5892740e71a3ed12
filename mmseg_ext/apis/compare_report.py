# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The files of a run comparison: Markdown, CSV, JSON tables and PNGs.

Split from :mod:`mmseg_ext.apis.compare_runs` (reading and comparing the
runs) so each module has one job. Every file is written atomically; the
plots use :mod:`mmseg_ext.utils.plotting`.
"""
import csv
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from mmseg_ext.utils.io import atomic_path, dump_json_atomic
from mmseg_ext.utils.paired_stats import pareto_front

__all__ = ['write_outputs', 'summary_json']


def _finite(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _json_list(values) -> List[Optional[float]]:
    return [_finite(v) for v in values]


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(
            value)):
        return '—'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def _text(value) -> str:
    return '—' if value is None else str(value)


def _si(value: Optional[float], unit: str = '') -> str:
    if value is None:
        return '—'
    for scale, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if abs(value) >= scale:
            return f'{value / scale:.2f}{suffix}{unit}'
    return f'{value:.0f}{unit}'


def _md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(x):
        return str(x).replace('|', '\\|').replace('\n', ' ')
    lines = ['| ' + ' | '.join(cell(h) for h in header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(cell(x) for x in r) + ' |' for r in rows]
    return '\n'.join(lines)


def _write_csv(path: str, header: Sequence[str], rows) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f, lineterminator='\n')
            writer.writerow(header)
            writer.writerows(rows)


def _plot_curves(path, runs, metric):
    from mmseg_ext.utils.plotting import new_figure, save_figure
    has_loss = any(any('loss' in r for r in run['train']) for run in runs)
    fig = new_figure((10 if has_loss else 6, 4))
    axes = fig.subplots(1, 2 if has_loss else 1, squeeze=False)[0]
    for run in runs:
        steps = [s for s, _ in run['curve']]
        axes[0].plot(steps, [v for _, v in run['curve']], marker='o',
                     markersize=3, label=run['name'])
        if has_loss:
            pts = [(r['step'], r['loss']) for r in run['train'] if 'loss' in r]
            axes[1].plot([p[0] for p in pts], [p[1] for p in pts],
                         linewidth=1, label=run['name'])
    axes[0].set(xlabel='step (iteration or epoch)', ylabel=metric,
                title=f'validation {metric}')
    axes[0].legend(fontsize=7)
    if has_loss:
        axes[1].set(xlabel='iteration', ylabel='loss', title='train loss')
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, format='png')


def _plot_per_class(path, names, classes, table, key):
    from mmseg_ext.utils.plotting import new_figure, save_figure
    num_runs, num_cls = table.shape
    fig = new_figure((max(6.0, 0.35 * num_cls * max(1, num_runs / 2) + 2),
                      4))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / num_runs
    x = np.arange(num_cls)
    for i, name in enumerate(names):
        ax.bar(x + (i - (num_runs - 1) / 2) * width,
               np.nan_to_num(table[i]), width, label=name)
    ax.set_xticks(x, classes, rotation=90 if num_cls > 8 else 0,
                  fontsize=7)
    ax.set(ylabel=key, title=f'per-class {key}')
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, format='png')


def _plot_cost(path, names, costs, scores, front, xlabel, ylabel):
    from mmseg_ext.utils.plotting import new_figure, save_figure
    fig = new_figure((6, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    costs, scores = np.asarray(costs, float), np.asarray(scores, float)
    ax.scatter(costs[~front], scores[~front], color='tab:gray',
               label='dominated')
    ax.scatter(costs[front], scores[front], color='tab:red', zorder=3,
               label='Pareto front')
    order = np.argsort(costs[front])
    ax.plot(costs[front][order], scores[front][order], color='tab:red',
            linewidth=1)
    for name, c, s in zip(names, costs, scores):
        if np.isfinite(c) and np.isfinite(s):
            ax.annotate(name, (c, s), fontsize=7, xytext=(3, 3),
                        textcoords='offset points')
    ax.set(xlabel=xlabel, ylabel=ylabel, title=f'{ylabel} against cost')
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, format='png')


def _run_row(run: dict) -> dict:
    s, cx, sp = run['summary'], run['complexity'] or {}, run['speed'] or {}
    return dict(
        name=run['name'], work_dir=run['work_dir'],
        segmentor=s.get('segmentor'), model=s.get('model'),
        backbone=s.get('backbone'), in_channels=s.get('in_channels'),
        num_classes=s.get('num_classes'), crop=s.get('crop'),
        schedule=s.get('schedule'), batch=s.get('batch'),
        optimizer=s.get('optimizer'), lr=s.get('lr'),
        dataset=s.get('dataset'), best=run['best'],
        best_step=run['best_step'], last=run['last'],
        last_step=run['last_step'], params=cx.get('params'),
        flops=cx.get('flops'), images_per_s=sp.get('images_per_s'),
        peak_memory_mb=sp.get('peak_memory_mb'), device=sp.get('device'))


def write_outputs(out_dir, runs, metric, rule, per_class, diff, paired,
                  zoo_models, skipped, plot, cost='auto') -> Dict[str, str]:
    """Write every file but ``summary.json``; returns ``{name: path}``.
    """
    files = {}
    rows = [_run_row(r) for r in runs]
    speed = any(r['speed'] and 'images_per_s' in r['speed'] for r in runs)
    # summary.csv: one row per run
    header = list(rows[0]) if rows else []
    path = osp.join(out_dir, 'summary.csv')
    _write_csv(path, header, [[('' if v is None else v) for v in r.values()]
                              for r in rows])
    files['summary.csv'] = path
    # per_class.csv
    path = osp.join(out_dir, 'per_class.csv')
    pc_rows = []
    for key, t in per_class.items():
        for c, cls in enumerate(t['classes']):
            best = [n for n, b in zip(t['runs'], t['best'][:, c]) if b]
            pc_rows.append([key, cls] + [_fmt(_finite(v), 6).replace('—', '')
                                         for v in t['values'][:, c]] +
                           [' '.join(best)])
    runs_pc = next(iter(per_class.values()))['runs'] if per_class else []
    _write_csv(path, ['metric', 'class'] + runs_pc + ['best'], pc_rows)
    files['per_class.csv'] = path
    # config_diff.csv
    path = osp.join(out_dir, 'config_diff.csv')
    _write_csv(path, ['key'] + [r['name'] for r in runs], [
        [d['key']] + ['<missing>' if m else json.dumps(v, default=str)
                      for v, m in zip(d['values'], d['missing'])]
        for d in diff])
    files['config_diff.csv'] = path
    # paired.csv
    path = osp.join(out_dir, 'paired.csv')
    _write_csv(path, ['reference', 'run', 'column', 'n', 'mean_delta',
                      'ci_low', 'ci_high', 'wins', 'ties', 'losses'],
               [[p[k] for k in ('reference', 'run', 'column', 'n',
                                'mean_delta', 'ci_low', 'ci_high', 'wins',
                                'ties', 'losses')] for p in paired])
    files['paired.csv'] = path
    if plot and runs:
        path = osp.join(out_dir, 'curves.png')
        _plot_curves(path, runs, metric)
        files['curves.png'] = path
        if per_class:
            key = 'dice' if 'dice' in per_class else next(iter(per_class))
            t = per_class[key]
            path = osp.join(out_dir, 'per_class.png')
            _plot_per_class(path, t['runs'], t['classes'], t['values'], key)
            files['per_class.png'] = path
        axis = _cost_axis(runs, speed and cost != 'flops')
        if axis is not None:
            xs, xlabel, lower = axis
            scores = [r['best'] if r['best'] is not None else math.nan
                      for r in runs]
            sign = 1 if rule == 'greater' else -1
            front = pareto_front(xs, sign * np.asarray(scores, float), lower)
            path = osp.join(out_dir, 'cost.png')
            _plot_cost(path, [r['name'] for r in runs], xs, scores, front,
                       xlabel, f'best {metric}')
            files['cost.png'] = path
    path = osp.join(out_dir, 'summary.md')
    text = _markdown(runs, metric, rule, per_class, diff, paired, zoo_models,
                     skipped, files, speed)
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
    files['summary.md'] = path
    return files


def _cost_axis(runs, speed):
    """``(values, label, lower_is_better)``: images/s when measured for
    every run, else FLOPs; None without either."""
    if speed and all(r['speed'] and 'images_per_s' in r['speed']
                     for r in runs):
        return ([r['speed']['images_per_s'] for r in runs],
                'images/s (higher is better)', False)
    flops = [(r['complexity'] or {}).get('flops') for r in runs]
    if any(f is not None for f in flops):
        return ([math.nan if f is None else f for f in flops],
                'FLOPs at the crop (lower is better)', True)
    return None


def _markdown(runs, metric, rule, per_class, diff, paired, zoo_models,
              skipped, files, speed) -> str:
    out = [f'# Run comparison: {metric} ({rule} is better)', '']
    header = ['run', 'model', 'backbone', 'crop', 'schedule', 'batch/GPU',
              f'best {metric} (step)', f'last {metric} (step)', 'params',
              'FLOPs']
    if speed:
        header += ['images/s', 'peak memory', 'device']
    best_value = [r['best'] for r in runs if r['best'] is not None]
    top = (max if rule == 'greater' else min)(best_value) if best_value \
        else None
    rows = []
    for r in runs:
        s, cx = r['summary'], r['complexity'] or {}
        best = f'{_fmt(r["best"])} ({r["best_step"]})'
        if top is not None and r['best'] == top and len(runs) > 1:
            best = f'**{best}**'
        row = [r['name'], s.get('model') or '—', s.get('backbone') or '—',
               s.get('crop') or '—', s.get('schedule') or '—',
               _fmt(s.get('batch')), best,
               f'{_fmt(r["last"])} ({r["last_step"]})',
               _si(cx.get('params')), _si(cx.get('flops'))]
        if speed:
            sp = r['speed'] or {}
            row += [_fmt(sp.get('images_per_s'), 2),
                    '—' if sp.get('peak_memory_mb') is None else
                    f'{sp["peak_memory_mb"]:.1f} MB', sp.get('device', '—')]
        rows.append(row)
    out += [_md_table(header, rows), '']
    cx_note = [r for r in runs if r['complexity']
               and 'input_shape' in r['complexity']]
    if cx_note:
        shapes = ', '.join(
            f'{r["name"]}: '
            f'{"x".join(map(str, r["complexity"]["input_shape"]))}'
            for r in cx_note)
        out += ['Parameters and FLOPs: mmengine `get_model_complexity_info` '
                f'on the model of each config at its own input ({shapes}), '
                'auxiliary heads left out.', '']
    for key, t in per_class.items():
        out += [f'## Per-class {key} ({t["rule"]} is better; **bold**: best '
                'run per class)', '']
        rows = []
        for c, cls in enumerate(t['classes']):
            rows.append([cls] + [
                f'**{_fmt(_finite(v))}**' if b else _fmt(_finite(v))
                for v, b in zip(t['values'][:, c], t['best'][:, c])])
        rows.append(['classes won'] + [str(int(n))
                                       for n in t['best'].sum(1)])
        out += [_md_table(['class'] + t['runs'], rows), '']
    sources = [f'{r["name"]}: `{r["per_class"]["source"]}`' for r in runs
               if r['per_class']]
    if sources:
        out += ['Per-class sources: ' + '; '.join(sources), '']
    if paired:
        out += ['## Paired comparison (same images / cases)', '',
                'Δ = run − reference per case; 95 % percentile bootstrap '
                'interval of the mean Δ; W/T/L: cases where the run is '
                'better / equal / worse.', '']
        out += [_md_table(
            ['reference', 'run', 'score', 'n', 'mean Δ', '95 % CI', 'W/T/L'],
            [[p['reference'], p['run'], p['column'], p['n'],
              f'{p["mean_delta"]:+.4f}',
              f'[{p["ci_low"]:+.4f}, {p["ci_high"]:+.4f}]',
              f'{p["wins"]}/{p["ties"]}/{p["losses"]}'] for p in paired]), '']
    if diff:
        out += ['## Config differences', '']
        out += [_md_table(['key'] + [r['name'] for r in runs], [
            [f'`{d["key"]}`'] + [
                '—' if m else f'`{json.dumps(v, default=str)}`'
                for v, m in zip(d['values'], d['missing'])]
            for d in diff]), '']
    by_dataset = {}
    for z in zoo_models:
        by_dataset.setdefault(z['dataset'] or 'unknown dataset', []).append(z)
    for dataset, models in by_dataset.items():
        out += [f'## MMSeg model zoo: {dataset} (metafile.yaml; not the '
                'dataset of the runs above)', '']
        out += [_md_table(
            ['model', 'dataset', 'metrics', 'batch', 'memory (GB)',
             'hardware', 'weights'],
            [[z['name'], z['dataset'], ', '.join(
                f'{k} {v}' for k, v in z['metrics'].items()),
              _text(z['batch_size']), _text(z['memory_gb']),
              _text(z['hardware']), z['weights'] or '—'] for z in models]),
            '']
    if skipped:
        out += ['## Skipped', '']
        out += [f'- **{s["name"]}** ({s["part"]}): {s["reason"]}'
                for s in skipped]
        out += ['']
    pngs = [k for k in files if k.endswith('.png')]
    if pngs:
        out += ['## Figures', ''] + [f'![{k}]({k})' for k in pngs] + ['']
    return '\n'.join(out)


def summary_json(out_dir, runs, metric, rule, per_class, diff, paired,
                 zoo_models, skipped, files) -> dict:
    """Write (and return) ``summary.json``: everything of the report."""
    content = dict(
        metric=metric, rule=rule,
        runs=[dict(_run_row(r), curve=[[s, v] for s, v in r['curve']],
                   scalars=r['scalars_source'], config=r['config_path'],
                   per_class_source=(r['per_class'] or {}).get('source'),
                   per_case_source=(r['per_case'] or {}).get('source'),
                   complexity=r['complexity'], speed=r['speed'])
              for r in runs],
        per_class={k: dict(classes=t['classes'], runs=t['runs'],
                           rule=t['rule'],
                           values=[_json_list(v) for v in t['values']],
                           best=t['best'].tolist())
                   for k, t in per_class.items()},
        paired=[dict(p, deltas=_json_list(p['deltas']),
                     mean_delta=_finite(p['mean_delta']),
                     ci_low=_finite(p['ci_low']),
                     ci_high=_finite(p['ci_high'])) for p in paired],
        config_diff=[dict(d, values=[json.loads(json.dumps(
            v, default=str)) for v in d['values']]) for d in diff],
        zoo=zoo_models, skipped=skipped, files=dict(files))
    path = osp.join(out_dir, 'summary.json')
    content['files']['summary.json'] = path
    dump_json_atomic(content, path, default=str)
    return content
