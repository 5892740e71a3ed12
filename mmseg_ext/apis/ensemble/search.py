# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Validation: per-class threshold (or ``k``) search, post-processing, plots.

:func:`ensemble_val` consumes an :class:`~.merge.Ensemble` on labelled
images and writes ``thresholds.json`` + ``thresholds.png`` (threshold
decision) or ``val_scores.json`` (argmax decision). The ``thresholds.json``
layout is a contract read by :func:`~.formats.load_thresholds`: ``classes``,
``thresholds``, ``dice``, ``mDice``, ``num_images``, ``strategy``,
``decision``, ``members``, ``search``, ``postprocess`` (a plan keyed by
class name), ``k`` (hard strategy), ``postprocess_report`` and, with the
dense CRF (:mod:`.crf`), ``crf`` (kept classes and parameters) and
``crf_report``.

With a process group every rank must call it: each takes its shard of the
images (and its own cache folder); the Dice sums are added over ranks, so
every rank chooses the same thresholds and plan, and rank 0 writes the
files.
"""
import os
import os.path as osp
import shutil
import tempfile
from typing import List, Optional, Sequence

import numpy as np

from mmseg_ext.utils.dice import (DICE_EPS, dice_from_counts, image_counts,
                                  iou_from_counts)
from mmseg_ext.utils.dist import (advance_progress, dist_info, run_on_main,
                                  shard, sum_over_ranks, sync_errors)
from mmseg_ext.utils.ensemble import ThresholdSearch
from mmseg_ext.utils.io import dump_json_atomic
from mmseg_ext.utils.multilabel import pack_multilabel, unpack_multilabel
from mmseg_ext.utils.postprocess import (choose_postprocess,
                                         postprocess_dice_sums)
from .crf import (check_crf_params, choose_crf, crf_val_sums, item_image,
                  require_crf)
from .members import label_to_targets
from .merge import Ensemble

__all__ = ['ensemble_val', 'plot_threshold_curves', 'f32_list']


def f32_list(values) -> List[float]:
    """float32 values as the shortest decimals that read back as the same
    float32 (``0.65``, not ``0.6499999761581421``)."""
    return [float(str(np.float32(v))) for v in values]


def progress_bar(total: int):
    """mmengine's ``ProgressBar`` over ``total`` images."""
    from mmengine.utils import ProgressBar
    return ProgressBar(total)


def plot_threshold_curves(candidates: Sequence[float],
                          mean_dice: np.ndarray,
                          classes: Sequence[str],
                          best: Sequence[float],
                          path: str,
                          xlabel: str = 'threshold',
                          title: Optional[str] = None) -> None:
    """Per-class mean Dice against the threshold, best marked; PNG.

    Args:
        candidates (Sequence[float]): ``(T,)`` x values.
        mean_dice (np.ndarray): ``(T, C)`` mean Dice.
        classes (Sequence[str]): ``C`` names.
        best (Sequence[float]): ``(C,)`` chosen x per class.
        path (str): Output PNG (written atomically).
        xlabel (str): Defaults to ``'threshold'``.
        title (str, optional): Defaults to None.
    """
    from mmseg_ext.utils.plotting import new_figure, save_figure

    x = np.asarray(candidates, np.float64)
    mean_dice = np.asarray(mean_dice, np.float64)
    fig = new_figure((10, 6))
    ax = fig.add_subplot(1, 1, 1)
    colors = [f'C{i % 10}' for i in range(len(classes))]
    styles = ('-', '--', ':', '-.')
    for c, name in enumerate(classes):
        ax.plot(x, mean_dice[:, c], color=colors[c], linewidth=0.9,
                linestyle=styles[(c // 10) % len(styles)], alpha=0.8,
                label=str(name))
        j = int(np.argmin(np.abs(x - float(best[c]))))
        ax.plot([x[j]], [mean_dice[j, c]], 'o', color=colors[c],
                markersize=3)
    ax.plot(x, mean_dice.mean(1), color='black', linewidth=2.5,
            label='mean (one threshold)')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('mean per-image Dice')
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, ncol=1 + len(classes) // 16, loc='center left',
              bbox_to_anchor=(1.01, 0.5))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _val_argmax(ensemble: Ensemble, out_dir: str, positions, bar) -> dict:
    """``val_scores.json``: mean per-image Dice and IoU of the label maps.
    """
    sums, num, error = None, 0, None
    try:
        for item in ensemble.items(True, positions):
            label = ensemble.decide(ensemble.merge(item.probs))
            counts = image_counts(
                label_to_targets(label, len(item.targets), ignore_index=None),
                item.targets)
            both = np.stack([
                dice_from_counts(*counts, DICE_EPS, empty='one'),
                iou_from_counts(*counts, DICE_EPS, empty='one')
            ])
            sums = both if sums is None else sums + both
            num += 1
            advance_progress(bar, item.position, len(ensemble))
    except Exception as err:  # noqa: B902 (raised on every rank)
        error = err
    sync_errors(error)
    sums, num = sum_over_ranks(sums), sum_over_ranks(num)
    if not num:
        raise ValueError('the validation split has no images')
    dice, iou = sums / num

    def write_scores():
        content = dict(
            classes=ensemble.classes,
            dice=dice.tolist(),
            iou=iou.tolist(),
            mDice=float(dice.mean()),
            mIoU=float(iou.mean()),
            num_images=num,
            eps=DICE_EPS,
            strategy=ensemble.strategy,
            decision='argmax',
            members=ensemble.member_names)
        dump_json_atomic(content, osp.join(out_dir, 'val_scores.json'))
        return content

    return run_on_main(write_scores)


def _search_candidates(ensemble: Ensemble, candidates, k_candidates):
    """``(thresholds (T,), ks (T,) int or None)`` of the search."""
    e = len(ensemble.members)
    if ensemble.strategy != 'hard':
        if k_candidates is not None:
            raise ValueError('`k_candidates` apply to the hard strategy, but '
                             f'the strategy is {ensemble.strategy!r}')
        if candidates is None:
            candidates = np.round(np.arange(0.05, 0.96, 0.05), 2).tolist()
        return list(candidates), None
    if k_candidates is None:
        k_candidates = range(1, e + 1) if candidates is None else \
            [int(round(t * e + 0.5)) for t in candidates]
    ks = [int(k) for k in k_candidates]
    bad = [k for k in ks if not 1 <= k <= e]
    if bad:
        raise ValueError(f'votes needed k should be in [1, E={e}], but got '
                         f'{bad}')
    return [(k - 0.5) / e for k in ks], ks


def _crf_pass(cache: str, num_cached: int, classes: Sequence[str],
              thresholds: np.ndarray, params: dict, min_gain: float,
              keep_masks: bool):
    """Measure the CRF on the cached merged maps and images; choose the
    classes that keep it (sums added over ranks). With ``keep_masks`` the
    masks after CRF are cached (packed bits) for the post-processing pass.
    """
    from mmengine.logging import print_log
    c = len(classes)

    def samples():
        for i in range(num_cached):
            p = np.load(osp.join(cache, f'{i}_p.npy'))
            t = unpack_multilabel(np.load(osp.join(cache, f'{i}_t.npy')), c)
            yield (p.astype(np.float32) / np.float32(65535),
                   np.load(osp.join(cache, f'{i}_i.npy')), t)

    def save(i, masks):
        np.save(osp.join(cache, f'{i}_c.npy'), np.packbits(masks))

    sums, num, seconds, error = None, 0, 0.0, None
    try:
        sums, num, seconds = crf_val_sums(samples(), thresholds, params,
                                          save if keep_masks else None)
    except Exception as err:  # noqa: B902 (raised on every rank)
        error = err
    sync_errors(error)
    entry, report = choose_crf(
        sum_over_ranks(sums), sum_over_ranks(num), sum_over_ranks(seconds),
        classes, params, min_gain)
    print_log(
        f'dense CRF kept for {len(entry["classes"])} of {c} classes '
        f'{entry["classes"]}; {report["seconds_per_image"]:.2f} s per image '
        f'for all classes, ~{report["seconds_per_image_kept"]:.2f} s for '
        'the kept ones',
        logger='current')
    return entry, report


def ensemble_val(ensemble: Ensemble,
                 out_dir: str,
                 candidates: Optional[Sequence[float]] = None,
                 postprocess: bool = False,
                 pp_candidates: Sequence[Sequence] = (('lcc', ), ('min_area',
                                                                  64)),
                 min_gain: float = 0.0,
                 progress: bool = True,
                 k_candidates: Optional[Sequence[int]] = None,
                 crf: bool = False,
                 crf_params: Optional[dict] = None,
                 img_dir: Optional[str] = None) -> dict:
    """Search per-class thresholds (and post-processing) on validation data.

    ``'threshold'`` decision: one streaming pass feeds the merged map of
    every image and its targets to :class:`ThresholdSearch` (candidates:
    0.05 .. 0.95; with ``'hard'`` the integer votes needed ``k =
    1..E``, i.e. the thresholds ``(k - 0.5) / E``, a per-class ``k``). With
    ``postprocess`` the merged maps are cached as uint16 (``round(65535
    p)``, exact for thresholds that are not within ``1e-5`` of a value) with
    the packed targets in a temporary folder under ``out_dir`` (disk, not
    memory), and a second pass measures the post-processing candidates on
    the masks at the chosen thresholds (:func:`postprocess_dice_sums`,
    :func:`choose_postprocess`). With ``crf`` the grey images are cached
    too, and a pass before the post-processing one keeps the dense CRF
    (:mod:`.crf`) for the classes whose Dice at the chosen threshold it
    raises (by more than ``min_gain``); the post-processing candidates are
    then measured on the masks after CRF, as the test split applies them.
    Writes ``thresholds.json`` and ``thresholds.png`` (Dice vs threshold).

    ``'argmax'`` decision: no threshold; writes ``val_scores.json`` (the
    per-class JSON layout: mean per-image Dice and IoU, eps 1e-4).

    Args:
        ensemble (Ensemble): The members and strategy.
        out_dir (str): Output folder.
        candidates (Sequence[float], optional): Threshold candidates (hard:
            thresholds of the form ``(k - 0.5) / E``). Defaults to None.
        postprocess (bool): Also choose the post-processing plan.
        pp_candidates (Sequence[Sequence]): Post-processing candidates.
        min_gain (float): Minimum Dice gain of a post-processing op.
        progress (bool): Show a progress bar (rank 0).
        k_candidates (Sequence[int], optional): Hard strategy: the votes
            needed ``k`` to try. Defaults to ``1..E``.
        crf (bool): Also choose the classes that keep the dense CRF.
            Defaults to False.
        crf_params (dict, optional): Overrides of
            :data:`~mmseg_ext.utils.dense_crf.DEFAULT_CRF_PARAMS`.
        img_dir (str, optional): The images of probability-folder members
            (``{img_dir}/{stem}{img_suffix}``), for the CRF. Defaults to
            None (the model members' ``img_path``).

    Returns:
        dict: The JSON content written (on every rank).
    """
    rank, _ = dist_info()
    os.makedirs(out_dir, exist_ok=True)
    positions = shard(len(ensemble))
    e = len(ensemble.members)
    bar = progress_bar(len(ensemble)) if progress and rank == 0 else None
    if crf:
        if ensemble.decision == 'argmax':
            raise ValueError('--crf applies to the threshold decision '
                             '(sigmoid members), but the decision is argmax')
        require_crf()
        crf_params = check_crf_params(crf_params)
    if ensemble.decision == 'argmax':
        return _val_argmax(ensemble, out_dir, positions, bar)

    hard = ensemble.strategy == 'hard'
    thresholds, ks = _search_candidates(ensemble, candidates, k_candidates)
    search = ThresholdSearch(thresholds)
    classes = list(ensemble.classes)
    cache = tempfile.mkdtemp(
        prefix=f'.ensemble_cache_{rank}_',
        dir=out_dir) if postprocess or crf else None
    try:
        num_cached, error = 0, None
        try:
            for item in ensemble.items(True, positions):
                merged = ensemble.merge(item.probs)
                search.update(merged, item.targets)
                if cache is not None:
                    np.save(
                        osp.join(cache, f'{num_cached}_p.npy'),
                        np.rint(merged * 65535).astype(np.uint16))
                    t = item.targets
                    np.save(
                        osp.join(cache, f'{num_cached}_t.npy'),
                        pack_multilabel(t == 1, (t == 255).any(0)))
                    if crf:
                        np.save(
                            osp.join(cache, f'{num_cached}_i.npy'),
                            item_image(item, merged.shape[1:], img_dir))
                    num_cached += 1
                advance_progress(bar, item.position, len(ensemble))
                del merged, item
        except Exception as err:  # noqa: B902 (raised on every rank)
            error = err
        sync_errors(error)
        search.sums = sum_over_ranks(search.sums)
        search.num = sum_over_ranks(search.num)
        mean = search.mean_dice()
        best_idx = mean.argmax(0)  # as ThresholdSearch.best()
        best_thr, best_dice = search.best()
        plan, report, crf_entry, crf_report = {}, {}, None, None
        if crf:
            crf_entry, crf_report = _crf_pass(cache, num_cached, classes,
                                              best_thr, crf_params, min_gain,
                                              postprocess)
        if postprocess:
            c = len(classes)
            crf_kept = [classes.index(n) for n in crf_entry['classes']] \
                if crf else []

            def pairs():
                for i in range(num_cached):
                    p = np.load(osp.join(cache, f'{i}_p.npy'))
                    pred = (p > (best_thr.astype(np.float64) * 65535).reshape(
                        -1, 1, 1)).astype(np.uint8)
                    t = unpack_multilabel(
                        np.load(osp.join(cache, f'{i}_t.npy')), c)
                    if crf_kept:  # the masks after CRF, as at test time
                        bits = np.load(osp.join(cache, f'{i}_c.npy'))
                        after = np.unpackbits(
                            bits, count=pred.size).reshape(pred.shape)
                        pred[crf_kept] = after[crf_kept]
                    yield pred, t

            pp_sums, pp_num, error = None, 0, None
            try:
                pp_sums, pp_num = postprocess_dice_sums(
                    pairs(), classes, pp_candidates)
            except Exception as err:  # noqa: B902 (raised on every rank)
                error = err
            sync_errors(error)
            plan, report = choose_postprocess(
                sum_over_ranks(pp_sums),
                sum_over_ranks(pp_num),
                classes,
                pp_candidates,
                min_gain=min_gain)
    finally:
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)

    def write_thresholds():
        content = dict(
            classes=classes,
            thresholds=f32_list(best_thr),
            dice=[float(v) for v in best_dice],
            mDice=float(np.mean(best_dice)),
            num_images=search.num,
            strategy=ensemble.strategy,
            decision='threshold',
            members=ensemble.member_names,
            search=dict(
                candidates=f32_list(search.thresholds),
                mean_dice=mean.tolist()),
            postprocess=plan)
        if hard:
            content['k'] = [ks[i] for i in best_idx]
        if postprocess:
            content['postprocess_report'] = report
        if crf:
            content['crf'] = crf_entry
            content['crf_report'] = crf_report
        dump_json_atomic(content, osp.join(out_dir, 'thresholds.json'))
        x, best_x, xlabel = search.thresholds, best_thr, 'threshold'
        if hard:
            x = np.asarray(ks, np.float64)
            best_x = np.asarray([ks[i] for i in best_idx], np.float64)
            xlabel = f'votes needed k (of E={e})'
        plot_threshold_curves(
            x,
            mean,
            classes,
            best_x,
            osp.join(out_dir, 'thresholds.png'),
            xlabel=xlabel,
            title=f'{ensemble.strategy} ensemble of {e}: mean Dice '
            f'{content["mDice"]:.4f} over {search.num} images')
        return content

    return run_on_main(write_thresholds)
