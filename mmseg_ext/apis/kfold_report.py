# Copyright (c) mmseg_ext contributors. All rights reserved.
"""K-fold report: the folds' out-of-fold scores as CSV / JSON / heatmap, the
members list and the ``tools/ensemble.py`` command for the fold models.

Split from :mod:`mmseg_ext.apis.kfold` (configs and training) so each module
has one job; :mod:`mmseg_ext.apis.kfold` re-exports these names.
"""
import csv
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config

from mmseg_ext.evaluation.metrics.per_class_json import read_per_class_json
from mmseg_ext.utils.io import atomic_path, dump_json_atomic
from .kfold import OOF_JSON, find_checkpoint, fold_dirs

__all__ = ['collect_kfold', 'ensemble_command']


def _write_heatmap(path: str, table: np.ndarray, rows: Sequence[str],
                   classes: Sequence[str], metric: str) -> None:
    from mmseg_ext.utils.plotting import new_figure, save_figure

    num_rows, num_cls = table.shape
    fig = new_figure((max(6.0, 0.45 * num_cls + 2), 0.5 * num_rows + 2.0))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(
        np.ma.masked_invalid(table), vmin=0.0, vmax=1.0, cmap='viridis',
        aspect='auto')
    ax.set_xticks(range(num_cls), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(num_rows), rows, fontsize=8)
    ax.axhline(num_rows - 1.5, color='white', linewidth=2)
    for i in range(num_rows):
        for j in range(num_cls):
            if np.isfinite(table[i, j]):
                ax.text(j, i, f'{table[i, j]:.2f}', ha='center', va='center',
                        fontsize=5, color='white' if table[i, j] < 0.6 else
                        'black')
    ax.set_title(f'out-of-fold {metric} per class')
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, format='png')


def _test_split_options(config: str) -> List[str]:
    """``--cfg-options`` that point a fold config's test loader at the test
    images (the fold configs test on their validation fold): the task's
    :meth:`~mmseg_ext.tasks.BaseSegTask.test_split_options`."""
    from mmseg_ext.tasks import task_from_dataset
    try:
        cfg = Config.fromfile(config)
        dataset = cfg.test_dataloader.dataset
    except Exception:  # not a full config (e.g. hand-written in tests)
        return []
    task = task_from_dataset(dataset)
    return [] if task is None else task.test_split_options(
        'test_dataloader.dataset')


def ensemble_command(members: Sequence[Tuple[str, str]],
                     score_files: Sequence[str] = (),
                     cfg_options: Sequence[str] = ()) -> str:
    """The ``tools/ensemble.py`` command line for the fold models.

    Args:
        members (Sequence[tuple[str, str]]): ``(config, checkpoint)``.
        score_files (Sequence[str]): One per-class JSON per member: adds
            ``--strategy classwise --scores ...``. Defaults to ().
        cfg_options (Sequence[str]): ``--cfg-options`` for every member.
            Defaults to ().

    Returns:
        str: The command, one option per line.
    """
    parts = ['python tools/ensemble.py']
    parts += [f'--member {c} {p}' for c, p in members]
    if score_files:
        parts.append('--strategy classwise --scores ' + ' '.join(score_files))
    if cfg_options:
        parts.append('--cfg-options ' + ' '.join(cfg_options))
    parts.append('--split test --out-dir OUT_DIR')
    return ' \\\n    '.join(parts)


def collect_kfold(out_dir: str,
                  metric: str = 'dice',
                  checkpoint: str = 'best',
                  plot: bool = True,
                  folds: Optional[Sequence[int]] = None) -> Dict[str, object]:
    """Gather the folds' out-of-fold per-class scores and checkpoints.

    Reads ``fold{k}/oof_per_class.json`` (``{classes, dice, iou, ...}``;
    ``null`` = class absent, left out of the means) and writes, atomically:

    - ``oof_scores.csv``: header ``fold,metric,<classes...>,mean``; one row
      per fold and metric (``dice``, ``iou``), then the ``mean`` rows (the
      per-class mean over folds, NaN ignored);
    - ``oof_scores.json``: ``{classes, folds, dice: [[...] per fold],
      iou, mean_dice: [...] per class, mean_iou, mDice, mIoU}``
      (``mDice``: mean over classes of ``mean_dice``);
    - ``oof_scores.png``: a folds x classes heatmap of ``metric`` with the
      mean as its last row (``plot=True``);
    - ``members.txt``: ``CONFIG CHECKPOINT`` per fold with a checkpoint.

    The returned ``command`` runs ``tools/ensemble.py --split test`` on the
    fold models; the fold configs test on their validation fold, so it adds
    the task's ``test_split_options`` (``HandBoneDataset``: ``--cfg-options
    test_dataloader.dataset.split=test``; datasets without them: point
    ``test_dataloader`` at the test images yourself).

    Args:
        out_dir (str): Root of the fold dirs.
        metric (str): ``'dice'`` or ``'iou'``, for the heatmap.
            Defaults to ``'dice'``.
        checkpoint (str): ``'best'`` or ``'last'`` (see
            :func:`find_checkpoint`). Defaults to ``'best'``.
        plot (bool): Write the heatmap. Defaults to True.
        folds (Sequence[int], optional): Only these folds (e.g.
            ``range(K)``, ignoring the dirs of an earlier run with more
            folds). Defaults to every ``fold*`` dir.

    Returns:
        dict: ``scores`` (the JSON content), ``members`` (list of
        ``(config, checkpoint)``), ``command`` (the ensemble command line)
        and ``missing`` (folds without scores).

    Raises:
        FileNotFoundError: if no fold has a per-class JSON.
        ValueError: for a malformed JSON or folds with different classes.
    """
    if metric not in ('dice', 'iou'):
        raise ValueError("`metric` should be 'dice' or 'iou', but got "
                         f'{metric!r}')
    dirs = fold_dirs(out_dir)
    if folds is not None:
        dirs = [(k, d) for k, d in dirs if k in set(folds)]
    classes = None
    folds, tables, missing, score_files = [], {'dice': [], 'iou': []}, [], []
    members = []
    for k, work_dir in dirs:
        cfg_path = osp.join(work_dir, 'config.py')
        ckpt = find_checkpoint(work_dir, checkpoint)
        path = osp.join(work_dir, OOF_JSON)
        if ckpt is not None and osp.isfile(cfg_path):
            members.append((cfg_path, ckpt))
        if not osp.isfile(path):
            missing.append(k)
            continue
        data = read_per_class_json(path, ('dice', 'iou'),
                                   require_classes=True)
        if classes is None:
            classes = data['classes']
        elif data['classes'] != classes:
            raise ValueError(f'{path}: classes {data["classes"]} should be '
                             f'those of the other folds, {classes}')
        for key in ('dice', 'iou'):
            tables[key].append(data[key])
        folds.append(k)
        score_files.append(path)
    if not folds:
        raise FileNotFoundError(
            f'no fold*/{OOF_JSON} under {out_dir}: train the folds first '
            '(their validation writes it)')
    if missing:
        warnings.warn(f'folds {missing} have no {OOF_JSON} (not trained or '
                      'no per-class metric); left out')

    def nanmean(a, axis):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            return np.nanmean(a, axis=axis)

    def as_json(a):
        return [None if not np.isfinite(v) else float(v) for v in a]

    scores = dict(classes=classes, folds=folds)
    for key in ('dice', 'iou'):
        table = np.stack(tables[key])
        mean = nanmean(table, 0)
        scores[key] = [as_json(row) for row in table]
        scores[f'mean_{key}'] = as_json(mean)
        overall = nanmean(mean, 0)
        scores['mDice' if key == 'dice' else 'mIoU'] = \
            None if not np.isfinite(overall) else float(overall)
    dump_json_atomic(scores, osp.join(out_dir, 'oof_scores.json'))

    with atomic_path(osp.join(out_dir, 'oof_scores.csv')) as tmp:
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f)
            writer.writerow(['fold', 'metric'] + classes + ['mean'])

            def row(name, key, values):
                values = np.asarray(values, dtype=float)
                mean = nanmean(values, 0)
                writer.writerow([name, key] + [
                    '' if not np.isfinite(v) else f'{v:.6f}'
                    for v in list(values) + [mean]
                ])

            for key in ('dice', 'iou'):
                for k, values in zip(folds, tables[key]):
                    row(k, key, values)
            for key in ('dice', 'iou'):
                row('mean', key, nanmean(np.stack(tables[key]), 0))
    if plot:
        table = np.stack(tables[metric])
        table = np.concatenate([table, nanmean(table, 0)[None]])
        _write_heatmap(
            osp.join(out_dir, 'oof_scores.png'), table,
            [f'fold{k}' for k in folds] + ['mean'], classes, metric)
    with atomic_path(osp.join(out_dir, 'members.txt')) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            for cfg_path, ckpt in members:
                f.write(f'{cfg_path} {ckpt}\n')
    # classwise by out-of-fold scores only when every member has them
    same = [osp.dirname(c) for c, _ in members] == \
        [osp.dirname(p) for p in score_files]
    command = ensemble_command(
        members, score_files if same else (),
        _test_split_options(members[0][0]) if members else ())
    return dict(scores=scores, members=members, command=command,
                missing=missing)
