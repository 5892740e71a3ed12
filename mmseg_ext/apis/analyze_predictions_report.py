# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The files :func:`mmseg_ext.apis.analyze_predictions.analyze_predictions`
writes: CSV and Markdown tables, the suggested ``tools/ensemble.py``
command, the area scatter and the agreement heatmap (split from it).
"""
import csv
import math
import os.path as osp
import re
import warnings

import numpy as np

from mmseg_ext.utils.io import atomic_path


def _safe_name(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('._') or 'model'


def _fmt(value, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return '—'
    return f'{value:.{digits}f}'


def _md_table(header, rows) -> str:
    lines = ['| ' + ' | '.join(map(str, header)) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]
    return '\n'.join(lines)


def _bin_label(edges, b) -> str:
    return f'({edges[b]:g}, {edges[b + 1]:g}]'


def _ensemble_command(members, chosen, score_files, gt_dir, gt_format,
                      gt_suffix, decision, task) -> str:
    """``tools/ensemble.py --strategy classwise`` over the chosen members
    (their probability folders; models without probabilities as
    ``--member CONFIG CHECKPOINT`` placeholders)."""
    probs = [members[i] for i in chosen if members[i].kind == 'probs']
    masks = [members[i] for i in chosen if members[i].kind != 'probs']
    parts = ['python tools/ensemble.py']
    parts += [f'--member CONFIG_OF_{_safe_name(m.name)} '
              f'CHECKPOINT_OF_{_safe_name(m.name)}' for m in masks]
    if probs:
        parts.append('--prob-dirs ' + ' '.join(m.folder for m in probs))
    # --scores follow the member order of tools/ensemble.py: --member first
    ordered = [score_files[members.index(m)] for m in masks + probs]
    parts.append('--strategy classwise --scores ' + ' '.join(ordered))
    if decision == 'argmax':
        parts.append('--decision argmax')
    if task is not None and getattr(task, 'name', ''):
        parts.append(f'--task {task.name}')
    parts.append(f'--split val --gt-dir {gt_dir} --gt-format {gt_format} '
                 f'--gt-suffix {gt_suffix} --out-dir OUT_DIR')
    return ' \\\n    '.join(parts)


def _write_tables(out_dir, files, names, classes, edges, bin_mean, bin_count,
                  agree, overall) -> None:
    path = osp.join(out_dir, 'area_dice.csv')
    with atomic_path(path) as tmp, open(tmp, 'w', newline='',
                                        encoding='utf-8') as f:
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow(['class', 'area_bin', 'n'] +
                        [f'dice_{n}' for n in names])
        for k, cls in enumerate(classes):
            for b in range(len(edges) - 1):
                writer.writerow([cls, _bin_label(edges, b), bin_count[k, b]] +
                                ['' if not np.isfinite(v) else f'{v:.6f}'
                                 for v in bin_mean[:, k, b]])
    files['area_dice'] = path
    path = osp.join(out_dir, 'agreement.csv')
    with atomic_path(path) as tmp, open(tmp, 'w', newline='',
                                        encoding='utf-8') as f:
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow(['class', 'model_a', 'model_b', 'dice'])
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if j > i:
                    writer.writerow(['(all)', a, b, f'{overall[i, j]:.6f}'])
                    for k, cls in enumerate(classes):
                        writer.writerow([cls, a, b, f'{agree[k, i, j]:.6f}'])
    files['agreement'] = path


def _markdown(result, edges, bin_mean, bin_count, order,
              disagreement) -> str:
    names, classes = [m['name'] for m in result['models']], result['classes']
    dice = np.asarray(result['dice'])
    out = [f'# Prediction analysis: {len(names)} models, '
           f'{result["num_images"]} images', '',
           f'Decision: {result["decision"]}; Dice per image (eps 1e-4, an '
           'empty class predicted empty scores 1), averaged over images.', '',
           '## Per-class Dice (**bold**: the classwise member; a tie goes to '
           'the best model on average)',
           '']
    rows = []
    for k, cls in enumerate(classes):
        top = names.index(result['best_per_class'][cls])
        rows.append([cls] + [f'**{_fmt(v)}**' if i == top else _fmt(v)
                             for i, v in enumerate(dice[:, k])])
    rows.append(['mean'] + [_fmt(v) for v in dice.mean(1)])
    out += [_md_table(['class'] + names, rows), '']
    out += ['## Dice against object area (fraction of the image; images '
            'where the class is present)', '',
            'Cell: mean Dice of ' + ' / '.join(names) + ' (n images).', '']
    rows = []
    for k, cls in enumerate(classes):
        cells = []
        for b in range(len(edges) - 1):
            if bin_count[k, b] == 0:
                cells.append('—')
            else:
                cells.append(' / '.join(_fmt(v, 3) for v in bin_mean[:, k, b])
                             + f' ({bin_count[k, b]})')
        rows.append([cls] + cells)
    out += [_md_table(['class'] + [_bin_label(edges, b)
                                   for b in range(len(edges) - 1)], rows), '']
    if len(names) > 1:
        agree = np.asarray(result['agreement'])
        out += ['## Agreement between models (Dice between their masks, '
                'all classes)', '']
        out += [_md_table([''] + names, [
            [a] + [_fmt(v, 3) for v in agree[i]]
            for i, a in enumerate(names)]), '']
        out += ['## Classes of most disagreement (1 − mean pairwise Dice)',
                '']
        out += [_md_table(['class', 'disagreement', 'best model'], [
            [classes[k], _fmt(disagreement[k], 3),
             result['best_per_class'][classes[k]]] for k in order]), '']
    out += ['## Suggested classwise ensemble', '']
    if len(result['members']) < 2:
        out += [f'`{result["members"][0]}` is the best model on every class: '
                'a classwise ensemble of these models selects only it.', '']
    else:
        out += ['Members (each is the best on at least one class): ' +
                ', '.join(f'`{m}`' for m in result['members']) + '.', '']
    out += ['```bash', result['command'], '```', '']
    if 'area_dice_png' in result['files']:
        out += ['![area_dice](area_dice.png)', '',
                '![agreement](agreement.png)', '']
    return '\n'.join(out)


def _plot_scatter(path, points, names, edges, bin_mean, bin_count) -> None:
    from mmseg_ext.utils.plotting import new_figure, save_figure
    fig = new_figure((6.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    pts = np.asarray(points, np.float64).reshape(-1, 4)
    centers = [math.sqrt(max(edges[b], edges[1] / 10) * edges[b + 1])
               for b in range(len(edges) - 1)]
    for i, name in enumerate(names):
        sel = pts[:, 0] == i
        line = ax.scatter(pts[sel, 2], pts[sel, 3], s=6, alpha=0.4,
                          label=name)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            weights = bin_count.astype(float)
            curve = np.nansum(bin_mean[i] * weights, 0) / np.maximum(
                weights.sum(0), 1)
        ok = weights.sum(0) > 0
        ax.plot(np.asarray(centers)[ok], curve[ok], marker='o',
                color=line.get_facecolor()[0][:3])
    ax.set_xscale('log')
    ax.set(xlabel='object area (fraction of the image)', ylabel='Dice',
           ylim=(-0.02, 1.02), title='per-class Dice against object area')
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, format='png')


def _plot_agreement(path, overall, agree, names, classes, order) -> None:
    from mmseg_ext.utils.plotting import new_figure, save_figure
    num = len(order) if len(names) > 1 else 0
    fig = new_figure((4 + 2.6 * min(num, 3), 3.8), layout='constrained')
    axes = fig.subplots(1, 1 + min(num, 3), squeeze=False)[0]
    mats = [('all classes', overall)] + [
        (classes[k], agree[k]) for k in list(order)[:3]] if num else \
        [('all classes', overall)]
    for ax, (title, mat) in zip(axes, mats):
        image = ax.imshow(mat, vmin=0, vmax=1, cmap='viridis')
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)),
                      names if ax is axes[0] else [''] * len(names),
                      fontsize=7)
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f'{mat[i, j]:.2f}', ha='center', va='center',
                        fontsize=6, color='white' if mat[i, j] < 0.6 else
                        'black')
        ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=list(axes), fraction=0.03)
    save_figure(fig, path, format='png')
