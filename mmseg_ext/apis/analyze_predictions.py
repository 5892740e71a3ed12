# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Prediction analysis of several models on the same validation images.

Inputs: one folder per model, with per image either the probabilities of
``tools/ensemble.py --save-probs`` (``{stem}.npy``, uint8 ``(C, H, W)``,
read by :func:`~mmseg_ext.apis.ensemble.formats.load_probs`) or the masks of
``--save-pred-dir`` / ``tools/ensemble.py --split test`` (``{stem}.png``:
packed multi-label PNG for ``C > 1`` multi-label tasks, 0/255 PNG for one
class, class-index PNG for softmax), and the ground-truth folder
(``{stem}{gt_suffix}``, searched recursively, read by the task adapter's
:meth:`~mmseg_ext.tasks.BaseSegTask.read_targets` in its ``gt_format``).
Probabilities are decided as the ensemble does: ``argmax`` (softmax,
``gt_format='label'``) or ``p > threshold`` (multi-label).

Streams image by image; what is kept does not grow with the number of
images (counts per model / class / area bin, a fixed-size reservoir of
scatter points); the per-image rows go to ``per_image.csv`` as they come.
Writes to ``out_dir``:

- ``area_dice.csv`` / ``area_dice.png``: per-image Dice of each class
  against its object area (fraction of the image; images where the class
  is present), binned (:data:`AREA_BINS`) and as a scatter;
- ``agreement.csv`` / ``agreement.png``: pairwise agreement of the models,
  Dice between their masks (counts summed over the images) per class and
  overall, as matrices and a heatmap;
- ``scores/{model}.json``: per-class mean per-image Dice / IoU (the
  :class:`MultiLabelDiceMetric` rule: ``eps = 1e-4``, an empty class
  predicted empty scores 1), in the per-class JSON layout that
  ``tools/ensemble.py --scores`` reads;
- ``analysis.md`` / ``analysis.json``: the tables, the classes where the
  models disagree most, the suggested classwise members (the best model of
  each class) and the ``tools/ensemble.py`` command that uses them.
"""
import csv
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mmseg_ext.utils.dice import DICE_EPS, dice_from_counts, iou_from_counts
from mmseg_ext.utils.errors import InputError
from mmseg_ext.utils.io import atomic_path, dump_json_atomic
from .analyze_predictions_report import (_ensemble_command, _markdown,
                                         _plot_agreement, _plot_scatter,
                                         _safe_name, _write_tables)
from .prediction_dirs import PredictionDir, PredictionInputError, _walk

__all__ = [
    'PredictionInputError', 'AREA_BINS', 'PredictionDir', 'area_bin',
    'agreement_dice', 'suggest_members', 'analyze_predictions'
]

#: Object-area bin edges, as fractions of the image's pixels.
AREA_BINS = (0.0, 1e-3, 1e-2, 1e-1, 1.0)


def area_bin(fraction: float, edges: Sequence[float] = AREA_BINS) -> int:
    """Index of the bin ``(edges[i], edges[i + 1]]`` holding ``fraction``
    (``> 0``; the last bin is closed)."""
    i = int(np.searchsorted(np.asarray(edges), fraction, side='left')) - 1
    return min(max(i, 0), len(edges) - 2)


def agreement_dice(inter: np.ndarray, size_a: np.ndarray,
                   size_b: np.ndarray) -> np.ndarray:
    """Dice between two models' masks from summed counts: ``2 |A & B| /
    (|A| + |B|)``, 1 where both predict nothing (they agree)."""
    return np.asarray(dice_from_counts(inter, size_a, size_b, eps=0.0,
                                       empty='one'), np.float64)


def suggest_members(scores: np.ndarray, names: Sequence[str]
                    ) -> Tuple[List[int], List[int]]:
    """The classwise members: per class the model with the best score.

    A tie goes to the model with the best mean over the classes (then to
    the first), so a model that only ties on some classes is no member.

    Args:
        scores (np.ndarray): ``(M, C)`` per-class scores (NaN ranks last).
        names (Sequence[str]): ``M`` model names.

    Returns:
        tuple[list[int], list[int]]: ``(members, best)``: the models that
        are best on at least one class (in model order) and the best model
        of each class.
    """
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        means = np.nan_to_num(np.nanmean(scores, 1), nan=-np.inf)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    order = sorted(range(len(names)), key=lambda m: (-means[m], m))
    best = []
    for c in range(scores.shape[1]):
        top = scores[:, c].max()
        best.append(next(m for m in order if scores[m, c] == top))
    members = [m for m in range(len(names)) if m in best]
    return members, best


class _Accumulator:
    """What the analysis keeps while it streams the images: arrays of a
    fixed size (models x classes x area bins) and a reservoir of at most
    ``max_points`` scatter points (Vitter's algorithm R, seeded), whatever
    the number of images.

    Args:
        num_models (int): ``M``.
        num_classes (int): ``C``.
        edges (np.ndarray): Area bin edges.
        max_points (int): Reservoir size.
        seed (int): Reservoir seed.
    """

    def __init__(self, num_models: int, num_classes: int, edges: np.ndarray,
                 max_points: int, seed: int) -> None:
        m, c, b = num_models, num_classes, len(edges) - 1
        self.edges = edges
        self.dice_sum = np.zeros((m, c))
        self.iou_sum = np.zeros((m, c))
        self.bin_sum = np.zeros((m, c, b))
        self.bin_count = np.zeros((c, b), np.int64)
        self.pair_inter = np.zeros((m, m, c))
        self.pred_size = np.zeros((m, c))
        self.points: List[tuple] = []  # (model, class, fraction, dice)
        self.max_points, self.seen = max_points, 0
        self.rng = np.random.default_rng(seed)

    def add(self, masks: Sequence[np.ndarray], targets: np.ndarray):
        """Count one image: ``M`` ``(C, H, W)`` masks and its targets.

        Returns:
            tuple: ``(dices (M, C), gt_area (C,), fractions (C,))``.
        """
        from mmseg_ext.utils.dice import image_counts
        num_m, c = len(masks), targets.shape[0]
        dices = np.empty((num_m, c))
        for i, mask in enumerate(masks):
            cnt = image_counts(mask, targets)
            dices[i] = dice_from_counts(*cnt, eps=DICE_EPS)
            self.iou_sum[i] += iou_from_counts(*cnt, eps=DICE_EPS)
            self.pred_size[i] += cnt[1]
            gt_area = cnt[2]
        self.dice_sum += dices
        valid = targets != 255
        flat = [(mk.astype(bool) & valid).reshape(c, -1) for mk in masks]
        for i in range(num_m):
            for j in range(i, num_m):
                self.pair_inter[i, j] += (flat[i] & flat[j]).sum(1)
                self.pair_inter[j, i] = self.pair_inter[i, j]
        fractions = gt_area / (targets.shape[1] * targets.shape[2])
        for k in np.flatnonzero(gt_area > 0):
            b = area_bin(fractions[k], self.edges)
            self.bin_count[k, b] += 1
            self.bin_sum[:, k, b] += dices[:, k]
            for i in range(num_m):
                self._sample((i, k, float(fractions[k]), float(dices[i, k])))
        return dices, gt_area, fractions

    def _sample(self, point: tuple) -> None:
        self.seen += 1
        if len(self.points) < self.max_points:
            self.points.append(point)
        else:
            r = int(self.rng.integers(0, self.seen))
            if r < self.max_points:
                self.points[r] = point

    def agreement(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(per class (C, M, M), overall (M, M))`` Dice between models."""
        num_m = self.pred_size.shape[0]
        per_class = np.zeros((self.pred_size.shape[1], num_m, num_m))
        overall = np.zeros((num_m, num_m))
        for i in range(num_m):
            for j in range(num_m):
                per_class[:, i, j] = agreement_dice(
                    self.pair_inter[i, j], self.pred_size[i],
                    self.pred_size[j])
                overall[i, j] = float(agreement_dice(
                    self.pair_inter[i, j].sum(), self.pred_size[i].sum(),
                    self.pred_size[j].sum()))
        return per_class, overall


def analyze_predictions(pred_dirs: Sequence[str],
                        gt_dir: str,
                        out_dir: str,
                        names: Optional[Sequence[str]] = None,
                        task=None,
                        gt_format: Optional[str] = None,
                        gt_suffix: str = '.png',
                        classes: Optional[Sequence[str]] = None,
                        num_classes: Optional[int] = None,
                        decision: Optional[str] = None,
                        threshold: float = 0.5,
                        area_bins: Sequence[float] = AREA_BINS,
                        max_points: int = 20000,
                        top_k: int = 5,
                        seed: int = 0,
                        plot: bool = True,
                        show_progress: bool = True) -> dict:
    """Analyse several models' predictions on the same images.

    Args:
        pred_dirs (Sequence[str]): One folder per model (see the module
            doc).
        gt_dir (str): Ground truth ``{stem}{gt_suffix}`` (recursive).
        out_dir (str): Output folder.
        names (Sequence[str], optional): Model names. Defaults to the
            folder names.
        task (str | BaseSegTask, optional): The task adapter (class names,
            ground-truth reader). Defaults to the generic one.
        gt_format (str, optional): ``'packed'`` or ``'label'``. Defaults to
            the task's (generic: ``'packed'``).
        gt_suffix (str): Defaults to ``'.png'``.
        classes (Sequence[str], optional): Class names. Defaults to the
            task's for ``C`` classes, else indices.
        num_classes (int, optional): ``C``; needed when every model gives
            masks and neither ``classes`` nor the task says it.
        decision (str, optional): ``'argmax'`` / ``'threshold'`` for
            probabilities. Defaults to ``'argmax'`` for ``gt_format='label'``
            with ``C > 1``, else ``'threshold'``.
        threshold (float): Of ``'threshold'``. Defaults to 0.5.
        area_bins (Sequence[float]): Area bin edges (fractions of the
            image). Defaults to :data:`AREA_BINS`.
        max_points (int): Scatter points kept (reservoir sample, seeded).
            Defaults to 20000.
        top_k (int): Classes of most disagreement listed. Defaults to 5.
        seed (int): Reservoir seed. Defaults to 0.
        plot (bool): Write the PNGs. Defaults to True.
        show_progress (bool): Progress bar. Defaults to True.

    Returns:
        dict: The ``analysis.json`` content (``models``, ``classes``,
        ``num_images``, ``dice``, ``iou`` (``(M, C)``), ``area_bins``,
        ``agreement`` (overall ``(M, M)``), ``agreement_per_class``
        (``(C, M, M)``), ``disagreement`` (``(C,)``), ``most_disagreed``,
        ``members``, ``best_per_class``, ``command``, ``files``).

    Raises:
        PredictionInputError: for a missing folder, no common image, a
            missing ground truth, files of another class count or size
            (naming the model and file).
    """
    from mmseg_ext.tasks import BaseSegTask, build_task
    pred_dirs = list(pred_dirs)
    if len(pred_dirs) < 1:
        raise ValueError('give at least one prediction folder')
    if names is not None and len(names) != len(pred_dirs):
        raise ValueError(f'`names` should give one name per folder '
                         f'({len(pred_dirs)}), but got {len(names)}')
    task = BaseSegTask() if task is None else build_task(task)
    gt_format = gt_format or task.gt_format
    if gt_format not in ('packed', 'label'):
        raise ValueError("`gt_format` should be 'packed' or 'label', but got "
                         f'{gt_format!r}')
    members = [PredictionDir(d, n) for d, n in zip(
        pred_dirs, names if names is not None else [None] * len(pred_dirs))]
    model_names = [m.name for m in members]
    if len(set(model_names)) != len(model_names):
        raise ValueError(f'the model names should differ, but got '
                         f'{model_names}; give names')
    counts = {m.num_classes() for m in members} - {None}
    if len(counts) > 1:
        raise PredictionInputError(
            'the models predict different class counts: ' + ', '.join(
                f'{m.name}: {m.num_classes()}' for m in members
                if m.kind == 'probs'))
    c = counts.pop() if counts else (num_classes or (
        len(classes) if classes else None) or (len(task.classes) or None))
    if c is None:
        raise ValueError('every model gives masks: give the class count '
                         '(num_classes / --num-classes or --classes)')
    if num_classes is not None and num_classes != c:
        raise PredictionInputError(
            f'the probabilities have C={c} classes, but num_classes is '
            f'{num_classes}')
    class_names = list(classes) if classes else task.class_names([], c)
    if len(class_names) != c:
        raise ValueError(f'{len(class_names)} class names for C={c} classes')
    if decision is None:
        decision = 'argmax' if gt_format == 'label' and c > 1 else \
            'threshold'
    if not osp.isdir(gt_dir):
        raise PredictionInputError(f'ground-truth folder {gt_dir!r} does not '
                                   'exist', path=gt_dir)
    gt_paths = _walk(gt_dir, (gt_suffix, ))
    stems = [s for s in members[0].paths
             if all(s in m.paths for m in members[1:])]
    for m in members:
        extra = len(m.paths) - len(stems)
        if extra:
            warnings.warn(f'model {m.name!r}: {extra} of its {len(m.paths)} '
                          'images are not predicted by every model; left '
                          'out')
    if not stems:
        raise PredictionInputError(
            'the models share no image: ' + '; '.join(
                f'{m.name}: {len(m.paths)} files, e.g. '
                f'{next(iter(m.paths))!r}' for m in members))
    missing = [s for s in stems if s not in gt_paths]
    if missing:
        raise PredictionInputError(
            f'{len(missing)} predicted images have no ground truth '
            f'{{stem}}{gt_suffix} under {gt_dir}, e.g. {missing[0]!r}',
            path=gt_dir)

    edges = np.asarray(area_bins, np.float64)
    stats = _Accumulator(len(members), c, edges, max_points, seed)
    os.makedirs(out_dir, exist_ok=True)
    per_image_path = osp.join(out_dir, 'per_image.csv')
    bar = None
    if show_progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(stems))
    packed = gt_format == 'packed'
    with atomic_path(per_image_path) as tmp, open(
            tmp, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow(['image', 'class', 'area_px', 'area_fraction'] +
                        [f'dice_{n}' for n in model_names])
        for stem in stems:
            gt_path = gt_paths[stem]
            try:
                targets = task.read_targets(gt_path, c, gt_format)
            except (InputError, ValueError) as err:
                raise PredictionInputError(f'ground truth: {err}',
                                           path=gt_path) from None
            masks = [m.masks(stem, c, decision, threshold, packed)
                     for m in members]
            for m, mask in zip(members, masks):
                if mask.shape != targets.shape:
                    raise PredictionInputError(
                        f'model {m.name!r}: {m.paths[stem]} has shape '
                        f'{mask.shape}, but its ground truth {gt_path} '
                        f'{targets.shape} (C, H, W)', path=m.paths[stem])
            dices, gt_area, fractions = stats.add(masks, targets)
            for k in np.flatnonzero(gt_area > 0):
                writer.writerow([stem, class_names[k], int(gt_area[k]),
                                 f'{fractions[k]:.6g}'] +
                                [f'{d:.6f}' for d in dices[:, k]])
            if bar is not None:
                bar.update()
    if bar is not None:
        print()

    n = len(stems)
    dice, iou = stats.dice_sum / n, stats.iou_sum / n
    agree, overall = stats.agreement()
    num_m = len(members)
    iu = np.triu_indices(num_m, 1)
    disagreement = (1 - agree[:, iu[0], iu[1]].mean(1)) if num_m > 1 else \
        np.zeros(c)
    order = np.argsort(-disagreement, kind='stable')[:top_k]
    bin_count = stats.bin_count
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        bin_mean = stats.bin_sum / np.maximum(bin_count, 1)
    bin_mean = np.where(bin_count[None] > 0, bin_mean, np.nan)
    points = stats.points
    chosen, best = suggest_members(dice, model_names)

    files = dict(per_image=per_image_path)
    score_files = []
    for i, name in enumerate(model_names):
        path = osp.join(out_dir, 'scores', f'{_safe_name(name)}.json')
        dump_json_atomic(dict(
            classes=class_names, dice=dice[i].tolist(), iou=iou[i].tolist(),
            mDice=float(dice[i].mean()), mIoU=float(iou[i].mean()),
            num_images=n, eps=DICE_EPS, averaging='image',
            model=name, source=members[i].folder), path)
        score_files.append(path)
    command = _ensemble_command(members, chosen, score_files, gt_dir,
                                gt_format, gt_suffix, decision, task)
    _write_tables(out_dir, files, model_names, class_names, edges, bin_mean,
                  bin_count, agree, overall)
    if plot:
        _plot_scatter(osp.join(out_dir, 'area_dice.png'), points,
                      model_names, edges, bin_mean, bin_count)
        _plot_agreement(osp.join(out_dir, 'agreement.png'), overall,
                        agree, model_names, class_names, order)
        files.update(area_dice_png=osp.join(out_dir, 'area_dice.png'),
                     agreement_png=osp.join(out_dir, 'agreement.png'))
    result = dict(
        models=[dict(name=m.name, folder=m.folder, kind=m.kind,
                     scores=s) for m, s in zip(members, score_files)],
        classes=class_names, num_images=n, decision=decision,
        gt_format=gt_format, dice=dice.tolist(), iou=iou.tolist(),
        area_bins=dict(edges=edges.tolist(), count=bin_count.tolist(),
                       mean_dice=[[[None if not np.isfinite(v) else
                                    float(v) for v in row] for row in m]
                                  for m in bin_mean]),
        agreement=overall.tolist(), agreement_per_class=agree.tolist(),
        disagreement=disagreement.tolist(),
        most_disagreed=[class_names[k] for k in order],
        members=[model_names[i] for i in chosen],
        best_per_class={class_names[k]: model_names[b]
                        for k, b in enumerate(best)},
        command=command, files=files)
    md_path = osp.join(out_dir, 'analysis.md')
    files['analysis.md'] = md_path
    files['analysis.json'] = osp.join(out_dir, 'analysis.json')
    with atomic_path(md_path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(_markdown(result, edges, bin_mean, bin_count, order,
                              disagreement))
    dump_json_atomic(result, files['analysis.json'])
    return result
