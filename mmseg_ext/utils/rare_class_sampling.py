# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Rare-class sampling math and its report (table, JSON, bar chart).

Pure functions, no registry, shared by
:class:`mmseg_ext.datasets.samplers.RareClassSampler` (which image to draw)
and :class:`mmseg_ext.datasets.transforms.RareClassCopyPaste` (which class
to paste), so both follow the same class frequencies:

- ``'rcs'``: rare-class sampling of "DAFormer: Improving Network
  Architectures and Training Strategies for Domain-Adaptive Semantic
  Segmentation" (Hoyer et al., CVPR 2022): a class ``c`` is drawn with
  ``P(c) = softmax((1 - f_c) / T)`` over the classes that at least one image
  contains (``f_c``: pixel frequency of ``c`` over the dataset), then an
  image containing ``c`` uniformly.
- ``'repeat_factor'``: repeat-factor sampling of "LVIS: A Dataset for Large
  Vocabulary Instance Segmentation" (Gupta et al., CVPR 2019): with the
  image-level frequency ``f_c`` (fraction of images containing ``c``),
  ``r_c = max(1, sqrt(t / f_c))`` and ``r_i = max_{c in i} r_c`` (1 for an
  image without any class).

"Image ``i`` contains class ``c``" means at least ``min_pixels`` pixels of
``c`` in ``i``'s label (per-image counts from the pixel counters).
"""
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np

from .io import dump_json_atomic
from .plotting import new_figure, save_figure

__all__ = [
    'SAMPLING_MODES', 'image_presence', 'rcs_class_probs', 'repeat_factors',
    'image_draw_probs', 'class_draw_share', 'sampling_table',
    'save_sampling_report'
]

SAMPLING_MODES = ('rcs', 'repeat_factor')


def image_presence(per_item: np.ndarray, min_pixels: int = 1) -> np.ndarray:
    """``(N, C)`` bool: image ``i`` has ``>= min_pixels`` pixels of ``c``.

    Args:
        per_item (np.ndarray): ``(N, C)`` pixel counts per image.
        min_pixels (int): Threshold. Defaults to 1.
    """
    per_item = np.asarray(per_item)
    if per_item.ndim != 2:
        raise ValueError('`per_item` should have shape (N, C), but got '
                         f'{per_item.shape}')
    return per_item >= max(1, int(min_pixels))


def rcs_class_probs(counts: Sequence[float],
                    presence: np.ndarray,
                    temperature: float = 0.01) -> np.ndarray:
    """DAFormer's ``P(c) ∝ exp((1 - f_c) / T)`` over classes with images.

    Args:
        counts (Sequence[float]): ``(C,)`` pixel counts over the dataset.
        presence (np.ndarray): ``(N, C)`` bool from :func:`image_presence`;
            a class no image contains gets probability 0.
        temperature (float): ``T > 0``; smaller concentrates on the rarest
            classes. Defaults to 0.01 (DAFormer's).

    Returns:
        np.ndarray: ``(C,)`` float64 probabilities summing to 1.

    Raises:
        ValueError: if no image contains any class.

    Examples:
        >>> rcs_class_probs([90, 10], np.ones((2, 2), bool), 0.1)
        array([0.00033535, 0.99966465])
    """
    counts = np.asarray(counts, dtype=np.float64)
    eligible = np.asarray(presence, dtype=bool).any(0)
    if not eligible.any():
        raise ValueError('no image contains any class (with the given '
                         '`min_pixels`): nothing to sample')
    freq = counts / counts.sum() if counts.sum() > 0 else counts
    logits = np.where(eligible, (1.0 - freq) / float(temperature), -np.inf)
    logits -= logits[eligible].max()
    probs = np.exp(logits)
    return probs / probs.sum()


def repeat_factors(presence: np.ndarray, repeat_thr: float) -> tuple:
    """LVIS repeat factors ``(r_i, r_c)``.

    Args:
        presence (np.ndarray): ``(N, C)`` bool from :func:`image_presence`.
        repeat_thr (float): ``t > 0``: classes in fewer than a fraction
            ``t`` of the images are repeated.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(N,)`` image factors
        ``r_i = max_{c in i} r_c`` (1 for an image without classes) and
        ``(C,)`` class factors ``r_c = max(1, sqrt(t / f_c))`` (1 for a
        class in no image).
    """
    presence = np.asarray(presence, dtype=bool)
    freq = presence.mean(0) if len(presence) else np.zeros(presence.shape[1])
    with np.errstate(divide='ignore'):
        r_c = np.where(freq > 0, np.sqrt(float(repeat_thr) / freq), 1.0)
    r_c = np.maximum(1.0, r_c)
    r_i = np.where(presence, r_c[None], 1.0).max(1, initial=1.0)
    return r_i, r_c


def image_draw_probs(presence: np.ndarray,
                     class_probs: Optional[np.ndarray] = None,
                     image_factors: Optional[np.ndarray] = None
                     ) -> np.ndarray:
    """``(N,)`` probability of each image per draw (either mode).

    ``'rcs'`` (``class_probs``): ``p_i = sum_c P(c) [c in i] / N_c`` with
    ``N_c`` images containing ``c``; ``'repeat_factor'``
    (``image_factors``): ``p_i = r_i / sum_j r_j`` (the expectation of the
    stochastic rounding).
    """
    presence = np.asarray(presence, dtype=bool)
    if class_probs is not None:
        n_c = presence.sum(0)
        per_class = np.where(n_c > 0, class_probs / np.maximum(n_c, 1), 0.0)
        return presence @ per_class
    r = np.asarray(image_factors, dtype=np.float64)
    return r / r.sum()


def class_draw_share(presence: np.ndarray,
                     image_probs: np.ndarray) -> np.ndarray:
    """``(C,)`` expected fraction of draws whose image contains ``c``."""
    return np.asarray(image_probs) @ np.asarray(presence, dtype=np.float64)


def sampling_table(class_names: Sequence[str], counts: Sequence[int],
                   presence: np.ndarray, class_value: Sequence[float],
                   share: Sequence[float], value_name: str) -> str:
    """Text table: class, pixel frequency, images, ``value_name``, share of
    draws containing the class under the sampler and under uniform draws.
    """
    counts = np.asarray(counts, dtype=np.float64)
    presence = np.asarray(presence, dtype=bool)
    total = counts.sum()
    n = max(1, len(presence))
    rows = [('class', 'pixel freq', 'images', value_name, 'draws (uniform)',
             'draws (sampler)')]
    for c, name in enumerate(class_names):
        rows.append(
            (str(name), f'{counts[c] / total if total else 0:.6f}',
             f'{int(presence[:, c].sum())}', f'{float(class_value[c]):.4f}',
             f'{presence[:, c].sum() / n:.4f}', f'{float(share[c]):.4f}'))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    sep = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def fmt(row):
        cells = [row[0].ljust(widths[0])]
        cells += [v.rjust(w) for v, w in zip(row[1:], widths[1:])]
        return '| ' + ' | '.join(cells) + ' |'

    return '\n'.join([sep, fmt(rows[0]), sep] + [fmt(r) for r in rows[1:]] +
                     [sep])


def save_sampling_report(out_dir: str,
                         class_names: Sequence[str],
                         presence: np.ndarray,
                         share: Sequence[float],
                         report: Dict,
                         plot: bool = True) -> Dict[str, str]:
    """Write ``class_sampling.json`` (and ``class_sampling.png``).

    The chart shows, per class, the share of draws whose image contains it
    under uniform sampling and under the sampler (log scale), next to
    ``ClassWeightHook``'s ``class_weights.png`` in the work dir.

    Args:
        out_dir (str): Output folder (created).
        class_names (Sequence[str]): ``C`` names.
        presence (np.ndarray): ``(N, C)`` bool.
        share (Sequence[float]): ``(C,)`` sampler draw share.
        report (dict): JSON content (mode, parameters, probabilities...).
        plot (bool): Also write the PNG. Defaults to True.

    Returns:
        dict: ``{'json': path, 'png': path}`` of the files written.
    """
    paths = dict(json=osp.join(out_dir, 'class_sampling.json'))
    dump_json_atomic(report, paths['json'])
    if not plot:
        return paths
    presence = np.asarray(presence, dtype=bool)
    uniform = presence.mean(0) if len(presence) else np.zeros(len(share))
    x = np.arange(len(class_names))
    fig = new_figure((max(6.0, 0.5 * len(class_names) + 2), 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(x - 0.2, np.where(uniform > 0, uniform, np.nan), 0.4,
           label='uniform', color='tab:blue')
    ax.bar(x + 0.2, np.where(np.asarray(share) > 0, share, np.nan), 0.4,
           label=report.get('mode', 'sampler'), color='tab:orange')
    ax.set_yscale('log')
    ax.set_ylabel('share of draws containing the class')
    ax.set_xticks(x)
    ax.set_xticklabels([str(c) for c in class_names], rotation=45,
                       ha='right')
    ax.legend()
    fig.suptitle(f"class sampling: {report.get('mode')}")
    fig.tight_layout()
    paths['png'] = osp.join(out_dir, 'class_sampling.png')
    save_figure(fig, paths['png'], dpi=100, format='png')
    return paths
