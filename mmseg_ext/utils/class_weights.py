# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Class-weight math and the class-weight report (table, JSON, bar chart).

Pure functions, no registry: :class:`mmseg_ext.engine.hooks.ClassWeightHook`
and ``tools/analysis_tools/class_weights.py`` both call them, so the hook and
the tool compute, print and save exactly the same thing.
"""
import os.path as osp
import warnings
from typing import Dict, Optional, Sequence

import numpy as np

from .errors import InputError, short_repr
from .io import dump_json_atomic
from .plotting import new_figure, save_figure

CLASS_WEIGHT_METHODS = ('inverse_freq', 'sqrt_inv_freq', 'effective_num',
                        'median_freq')
NORMALIZE_MODES = (None, 'mean', 'sum')


def _class_name(i: int, class_names: Optional[Sequence[str]]) -> str:
    if class_names is not None and i < len(class_names):
        return f'{i} ({class_names[i]!r})'
    return str(i)


def check_class_weight_args(method: str, beta: float,
                            normalize: Optional[str],
                            max_ratio: Optional[float]) -> None:
    """Validate the weighting options of :func:`compute_class_weights`
    (shared with ``ClassWeightHook``, which checks them in ``__init__``).

    Raises:
        ValueError: on an unknown ``method`` or ``normalize``, ``beta``
            outside ``(0, 1)`` or ``max_ratio < 1``.
    """
    if method not in CLASS_WEIGHT_METHODS:
        raise ValueError(f'`method` should be one of {CLASS_WEIGHT_METHODS}, '
                         f'but got {method!r}')
    if not _is_real(beta) or not 0 < beta < 1:
        raise ValueError(f'`beta` should be in (0, 1), but got {beta!r}')
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f'`normalize` should be one of {NORMALIZE_MODES}, '
                         f'but got {normalize!r}')
    if max_ratio is not None and (not _is_real(max_ratio)
                                  or not max_ratio >= 1):
        raise ValueError(f'`max_ratio` should be >= 1 or None, but got '
                         f'{max_ratio!r}')


def _is_real(value) -> bool:
    """A real number, not a bool (``True < 1`` would pass silently)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and \
        not isinstance(value, bool)


def compute_class_weights(counts: Sequence[float],
                          method: str = 'inverse_freq',
                          beta: float = 0.9999,
                          normalize: Optional[str] = 'mean',
                          max_ratio: Optional[float] = None,
                          class_names: Optional[Sequence[str]] = None
                          ) -> np.ndarray:
    """Per-class loss weights from per-class pixel counts.

    With ``N = sum(counts)``, ``C = len(counts)`` and the frequency
    ``f_c = n_c / N`` of class ``c``, the raw weight of a present class
    (``n_c > 0``) is:

    - ``'inverse_freq'``: ``N / (C * n_c)`` (1 for every class when the
      classes are balanced).
    - ``'sqrt_inv_freq'``: ``1 / sqrt(f_c)``.
    - ``'effective_num'``: ``(1 - beta) / (1 - beta ** n_c)``, from
      "Class-Balanced Loss Based on Effective Number of Samples"
      (Cui et al., CVPR 2019). With pixel counts ``beta ** n_c`` vanishes
      quickly; use ``beta`` close to 1 (e.g. ``1 - 1e-6``) for pixels.
    - ``'median_freq'``: ``median(f) / f_c`` with the median over the present
      classes, "median frequency balancing" from "Predicting Depth, Surface
      Normals and Semantic Labels with a Common Multi-Scale Convolutional
      Architecture" (Eigen & Fergus, 2015), used by SegNet (2015).

    The steps after the raw weights, in order:

    1. A class with zero pixels gets the largest raw weight of the present
       classes (finite, as rare as the rarest seen class) and a
       ``UserWarning`` naming it.
    2. ``max_ratio``: weights above ``min(w) * max_ratio`` are clipped down
       to it, so ``max(w) / min(w) <= max_ratio``; the smallest weight is
       kept.
    3. ``normalize``: ``'mean'`` scales all weights by one factor so the
       weights of the present classes have mean 1; ``'sum'`` scales them so
       all ``C`` weights (absent classes included) sum to ``C``; ``None``
       keeps the raw scale. Scaling keeps the ratios, so step 2 still holds.

    Multi-label counts (positive pixels per class) use the same formulas.

    Args:
        counts (Sequence[float]): Pixel count of each class, shape ``(C,)``.
        method (str): One of ``'inverse_freq'``, ``'sqrt_inv_freq'``,
            ``'effective_num'``, ``'median_freq'``.
            Defaults to ``'inverse_freq'``.
        beta (float): ``beta`` of ``'effective_num'``, in ``(0, 1)``.
            Defaults to 0.9999.
        normalize (str, optional): ``'mean'``, ``'sum'`` or None.
            Defaults to ``'mean'``.
        max_ratio (float, optional): Largest allowed ``max(w) / min(w)``,
            ``>= 1``; None for no clipping. Defaults to None.
        class_names (Sequence[str], optional): Names used in warnings.
            Defaults to None.

    Returns:
        np.ndarray: ``(C,)`` float64 weights, all finite and positive.

    Raises:
        InputError: (a ``ValueError``) if ``counts`` is not numeric, not
            1-D, negative, non-finite or all zero.
        ValueError: if an argument is out of range.

    Examples:
        >>> compute_class_weights([60, 30, 10], 'inverse_freq',
        ...                       normalize=None).round(4).tolist()
        [0.5556, 1.1111, 3.3333]
    """
    raw_counts = counts
    try:
        if any(isinstance(c, (bool, np.bool_, str, bytes))
               for c in np.ravel(np.asarray(counts, dtype=object))):
            raise TypeError('not a number')
        counts = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(
            f'`counts` should be numbers (pixels per class), but got '
            f'{short_repr(raw_counts)} ({err})', where='counts',
            value=raw_counts, expected='(C,) numbers') from err
    if counts.ndim != 1 or counts.size == 0:
        raise InputError('`counts` should be a non-empty 1-D sequence of '
                         f'shape (C,), but got shape {counts.shape}',
                         where='counts', value=counts.shape,
                         expected='shape (C,)')
    if not np.all(np.isfinite(counts)):
        bad = [_class_name(int(i), class_names)
               for i in np.flatnonzero(~np.isfinite(counts))]
        raise InputError(f'`counts` should be finite, but got {counts} '
                         f'(classes {", ".join(bad)})', where='counts',
                         value=counts.tolist(), expected='finite counts')
    if np.any(counts < 0):
        bad = [_class_name(int(i), class_names)
               for i in np.flatnonzero(counts < 0)]
        raise InputError('`counts` should be >= 0, but got negative counts '
                         f'for classes {", ".join(bad)}: {counts}',
                         where='counts', value=counts.tolist(),
                         expected='counts >= 0')
    if not np.any(counts > 0):
        raise InputError('`counts` should have at least one class with '
                         'pixels, but all counts are zero: check the label '
                         'files, `reduce_zero_label`, `ignore_index` and '
                         '`label_map` of the dataset')
    check_class_weight_args(method, beta, normalize, max_ratio)
    num_classes = counts.size
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f'`class_names` should have {num_classes} entries '
                         f'like `counts`, but got {len(class_names)}')

    present = counts > 0
    n = counts[present]
    total = counts.sum()
    freq = n / total
    if method == 'inverse_freq':
        raw = total / (num_classes * n)
    elif method == 'sqrt_inv_freq':
        raw = 1.0 / np.sqrt(freq)
    elif method == 'effective_num':
        # 1 - beta**n computed as -expm1(n * log(beta)): exact for large n.
        raw = (1.0 - beta) / -np.expm1(n * np.log(beta))
    else:  # median_freq
        raw = np.median(freq) / freq

    weights = np.empty(num_classes, dtype=np.float64)
    weights[present] = raw
    if not np.all(present):
        absent = np.flatnonzero(~present)
        names = ', '.join(_class_name(int(i), class_names) for i in absent)
        warnings.warn(
            f'class {names} has no labelled pixels; its weight is set to the '
            'largest weight of the present classes '
            f'({raw.max():.6g} before normalization)', UserWarning,
            stacklevel=2)
        weights[~present] = raw.max()

    if max_ratio is not None:
        weights = np.minimum(weights, weights.min() * max_ratio)

    if normalize == 'mean':
        weights = weights / weights[present].mean()
    elif normalize == 'sum':
        weights = weights * (num_classes / weights.sum())
    return weights


def class_weight_table(class_names: Sequence[str], counts: Sequence[int],
                       weights: Sequence[float]) -> str:
    """Format a ``class | pixels | frequency | weight`` text table.

    Args:
        class_names (Sequence[str]): ``C`` class names.
        counts (Sequence[int]): ``(C,)`` pixel counts.
        weights (Sequence[float]): ``(C,)`` weights.

    Returns:
        str: The table, one line per class, with a header and a total line.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    rows = [('class', 'pixels', 'frequency', 'weight')]
    for name, n, w in zip(class_names, counts.tolist(), weights):
        freq = n / total if total else 0.0
        rows.append((str(name), f'{n:,}', f'{freq:.6f}', f'{float(w):.4f}'))
    rows.append(('total', f'{total:,}', '1.000000' if total else '0', ''))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]

    def fmt(row):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(wd) for c, wd in zip(row[1:], widths[1:])]
        return '| ' + ' | '.join(cells) + ' |'

    sep = '+' + '+'.join('-' * (wd + 2) for wd in widths) + '+'
    lines = [sep, fmt(rows[0]), sep]
    lines += [fmt(r) for r in rows[1:-1]]
    lines += [sep, fmt(rows[-1]), sep]
    return '\n'.join(lines)


def plot_class_weights(class_names: Sequence[str], counts: Sequence[int],
                       weights: Sequence[float], path: str,
                       title: Optional[str] = None) -> None:
    """Save a two-panel bar chart: frequency (log scale) and weight per class.

    Drawn on its own Agg canvas (:func:`mmseg_ext.utils.plotting.new_figure`:
    no global backend switch, no display needed); the PNG is written
    atomically.

    Args:
        class_names (Sequence[str]): ``C`` class names.
        counts (Sequence[int]): ``(C,)`` pixel counts.
        weights (Sequence[float]): ``(C,)`` weights.
        path (str): Output ``.png`` path.
        title (str, optional): Figure title. Defaults to None.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    freq = counts / total if total > 0 else counts
    x = np.arange(len(class_names))
    fig = new_figure((max(6.0, 0.45 * len(class_names) + 2), 6.5))
    ax_f, ax_w = fig.subplots(2, 1, sharex=True)
    ax_f.bar(x, np.where(freq > 0, freq, np.nan), color='tab:blue')
    ax_f.set_yscale('log')
    ax_f.set_ylabel('pixel frequency (log)')
    for i in np.flatnonzero(freq <= 0):
        ax_f.annotate('0', (i, 0), xycoords=('data', 'axes fraction'),
                      ha='center', va='bottom', color='tab:red')
    ax_w.bar(x, np.asarray(weights, dtype=np.float64), color='tab:orange')
    ax_w.axhline(1.0, color='grey', linewidth=0.8, linestyle='--')
    ax_w.set_ylabel('class weight')
    ax_w.set_xticks(x)
    ax_w.set_xticklabels([str(c) for c in class_names], rotation=45,
                         ha='right')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=100, format='png')


def save_class_weight_report(out_dir: str,
                             class_names: Sequence[str],
                             counts: Sequence[int],
                             weights: Sequence[float],
                             params: Dict,
                             extra: Optional[Dict] = None,
                             plot: bool = True) -> Dict[str, str]:
    """Write ``class_weights.json`` (and ``class_weights.png``) atomically.

    Args:
        out_dir (str): Output folder (created).
        class_names (Sequence[str]): ``C`` class names.
        counts (Sequence[int]): ``(C,)`` pixel counts.
        weights (Sequence[float]): ``(C,)`` weights.
        params (dict): ``method``, ``beta``, ``normalize``, ``max_ratio``...
        extra (dict, optional): More JSON fields (e.g. counter, fingerprint).
            Defaults to None.
        plot (bool): Also write the PNG bar chart. Defaults to True.

    Returns:
        dict: ``{'json': path, 'png': path}`` of the files written.
    """
    counts = [int(c) for c in counts]
    total = sum(counts)
    report = dict(params)
    report.update(
        classes=[str(c) for c in class_names],
        counts=counts,
        total_pixels=total,
        frequencies=[c / total if total else 0.0 for c in counts],
        weights=[float(w) for w in weights])
    if extra:
        report.update(extra)
    paths = dict(json=osp.join(out_dir, 'class_weights.json'))
    dump_json_atomic(report, paths['json'])
    if plot:
        paths['png'] = osp.join(out_dir, 'class_weights.png')
        plot_class_weights(
            class_names, counts, weights, paths['png'],
            title=f"class weights: {params.get('method')}")
    return paths
