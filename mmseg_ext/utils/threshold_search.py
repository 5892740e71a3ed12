# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Competition Dice and a threshold x min-area search on cached probabilities.

The building competition scores each image by Dice and averages over the
images, **skipping** images whose ground truth and prediction are both
empty; an empty ground truth with any predicted pixel scores 0.
:func:`competition_dice` reproduces that rule from per-image counts
``(|X & Y|, |X|, |Y|)``; :func:`mean_dice` is the plain mean with
empty/empty = 1.

:func:`search_threshold` grid-searches the probability threshold and the
minimum component area of :class:`MultiLabelEncoderDecoder`'s
post-processing (``prob > threshold``, then 8-connected components with
fewer than ``min_area`` pixels removed; ``min_area <= 1`` keeps all) on
validation probabilities. Per image and threshold it labels the
components once; every ``min_area`` is then a sum over the component
table, so the grid costs one connected-components pass per threshold, not
per cell.

Probabilities are cached as uint8 (``round(255 p)``, an error of at most
``1/510``), one compressed ``.npz`` per image with the ground truth as
packed bits: :class:`ProbabilityCache`.
"""
import json
import os.path as osp
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .dice import dice_from_counts
from .ensemble import quantize_probs
from .io import atomic_path, dump_json_atomic
from .plotting import new_figure, save_figure

CACHE_INDEX = 'index.json'
CACHE_VERSION = 1


def competition_dice(counts: np.ndarray) -> Tuple[float, int]:
    """The competition score from per-image counts.

    Args:
        counts (np.ndarray): ``(N, 3)`` ``|X & Y|``, ``|X|``, ``|Y|`` per
            image (``X`` predicted, ``Y`` true pixels).

    Returns:
        tuple[float, int]: Mean Dice ``2 |X & Y| / (|X| + |Y|)`` over the
        images where ``|X| + |Y| > 0`` (an empty truth with a prediction
        scores 0), and how many images were scored. If no image is scored
        (all empty and predicted empty) the score is 1.0.

    Examples:
        >>> competition_dice(np.array([[0, 0, 0], [0, 5, 0], [3, 4, 4]]))
        (0.375, 2)
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, 3)
    dice = dice_from_counts(counts[:, 0], counts[:, 1], counts[:, 2], eps=0,
                            empty='skip')
    scored = ~np.isnan(dice)
    num = int(scored.sum())
    if num == 0:
        return 1.0, 0
    return float(dice[scored].mean()), num


def mean_dice(counts: np.ndarray) -> float:
    """Plain mean of per-image Dice, empty truth and prediction = 1.

    Args:
        counts (np.ndarray): ``(N, 3)`` as :func:`competition_dice`.

    Returns:
        float: Mean Dice (1.0 for no images).
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, 3)
    if counts.shape[0] == 0:
        return 1.0
    return float(
        dice_from_counts(
            counts[:, 0], counts[:, 1], counts[:, 2], eps=0,
            empty='one').mean())


def threshold_level(threshold: float) -> int:
    """The uint8 level ``q`` with ``prob > threshold  <=>  q > level``.

    ``q = round(255 p)``, so ``q > level`` with ``level = floor(255 t)``
    matches ``p > t`` up to the quantization step.
    """
    if not 0 <= threshold < 1:
        raise ValueError('`threshold` should be in [0, 1), but got '
                         f'{threshold!r}')
    return int(np.floor(threshold * 255 + 1e-9))


def component_table(mask: np.ndarray,
                    gt: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Area and true-pixel overlap of each 8-connected component.

    Args:
        mask (np.ndarray): ``(H, W)`` uint8/bool predicted mask.
        gt (np.ndarray): ``(H, W)`` bool ground truth.

    Returns:
        tuple[np.ndarray, np.ndarray]: int64 ``areas`` and ``overlaps``,
        one entry per component (background excluded).
    """
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if not mask.any():
        empty = np.zeros(0, np.int64)
        return empty, empty
    num, labels = cv2.connectedComponents(mask, connectivity=8,
                                          ltype=cv2.CV_32S)
    areas = np.bincount(labels.ravel(), minlength=num)[1:]
    overlaps = np.bincount(labels[gt], minlength=num)[1:]
    return areas.astype(np.int64), overlaps.astype(np.int64)


def image_counts(probs: np.ndarray, gt: np.ndarray,
                 thresholds: Sequence[float],
                 min_areas: Sequence[int]) -> np.ndarray:
    """Counts of one image for every (threshold, min_area) cell.

    Args:
        probs (np.ndarray): ``(H, W)`` uint8 quantized or float
            probabilities.
        gt (np.ndarray): ``(H, W)`` binary ground truth (nonzero, except
            255, is building; 255 pixels are ignored).
        thresholds (Sequence[float]): ``T`` thresholds in ``[0, 1)``.
        min_areas (Sequence[int]): ``A`` minimum areas (``<= 1``: keep all).

    Returns:
        np.ndarray: ``(T, A, 3)`` int64 ``|X & Y|``, ``|X|``, ``|Y|``.
    """
    q = quantize_probs(probs)
    gt = np.asarray(gt)
    if q.shape != gt.shape:
        raise ValueError(f'probabilities {q.shape} and ground truth '
                         f'{gt.shape} should have the same (H, W) shape')
    valid = gt != 255
    truth = (gt != 0) & valid
    gt_sum = int(truth.sum())
    areas_min = np.asarray(min_areas, np.int64)
    out = np.zeros((len(thresholds), len(areas_min), 3), np.int64)
    out[..., 2] = gt_sum
    for i, t in enumerate(thresholds):
        pred = (q > threshold_level(t))
        if not valid.all():
            pred &= valid
        areas, overlaps = component_table(pred, truth)
        # keep[a, k]: component k survives min_area a (<= 1 keeps all).
        keep = (areas[None, :] >= areas_min[:, None]) | (areas_min[:, None]
                                                         <= 1)
        out[i, :, 0] = keep @ overlaps
        out[i, :, 1] = keep @ areas
    return out


class ProbabilityCache:
    """Validation probabilities (uint8) and ground truth, one file each.

    Layout: ``{folder}/{i:06d}.npz`` with ``probs`` ``(H, W)`` uint8 and
    ``gt`` packed bits (``np.packbits``) plus ``shape``; ``index.json`` lists
    ``[key, file]`` pairs and ``meta`` (e.g. the config and checkpoint that
    produced it). Files are written atomically; the index last, so an
    interrupted run leaves no index pointing at a missing file.

    Args:
        folder (str): Cache folder.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.entries: List[Tuple[str, str]] = []
        self.meta: Dict = {}

    @property
    def index_path(self) -> str:
        return osp.join(self.folder, CACHE_INDEX)

    def exists(self) -> bool:
        """True if an index was written."""
        return osp.isfile(self.index_path)

    def add(self, key: str, probs: np.ndarray, gt: np.ndarray) -> None:
        """Store one image: ``probs`` ``(H, W)`` (float or uint8) and
        ``gt`` ``(H, W)`` in ``{0, 1, 255}`` (255 stored as 0; ignored
        pixels are not kept)."""
        q = quantize_probs(probs)
        gt = np.asarray(gt)
        if q.shape != gt.shape or q.ndim != 2:
            raise ValueError(f'`probs` {q.shape} and `gt` {gt.shape} should '
                             'have the same (H, W) shape')
        name = f'{len(self.entries):06d}.npz'
        path = osp.join(self.folder, name)
        with atomic_path(path) as tmp:
            with open(tmp, 'wb') as f:
                np.savez_compressed(
                    f, probs=q,
                    gt=np.packbits((gt == 1).ravel()),
                    shape=np.array(gt.shape, np.int64))
        self.entries.append((str(key), name))

    def save_index(self, meta: Optional[Dict] = None) -> None:
        """Write ``index.json`` (call after the last :meth:`add`)."""
        self.meta = dict(meta or {})
        dump_json_atomic(
            dict(version=CACHE_VERSION, meta=self.meta,
                 entries=[list(e) for e in self.entries]), self.index_path)

    @classmethod
    def load(cls, folder: str) -> 'ProbabilityCache':
        """Open an existing cache.

        Raises:
            FileNotFoundError: without ``index.json``.
            ValueError: on an index of another version.
        """
        cache = cls(folder)
        with open(cache.index_path, encoding='utf-8') as f:
            index = json.load(f)
        if index.get('version') != CACHE_VERSION:
            raise ValueError(f'{cache.index_path}: cache version '
                             f'{index.get("version")}, expected '
                             f'{CACHE_VERSION}; delete the folder')
        cache.meta = index.get('meta', {})
        cache.entries = [tuple(e) for e in index['entries']]
        return cache

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Tuple[str, np.ndarray, np.ndarray]]:
        """Yield ``(key, probs uint8 (H, W), gt uint8 (H, W) 0/1)``."""
        for key, name in self.entries:
            with np.load(osp.join(self.folder, name)) as data:
                shape = tuple(int(v) for v in data['shape'])
                gt = np.unpackbits(
                    data['gt'], count=shape[0] * shape[1]).reshape(shape)
                yield key, data['probs'], gt


def search_threshold(samples: Iterable[Tuple[np.ndarray, np.ndarray]],
                     thresholds: Sequence[float],
                     min_areas: Sequence[int]) -> Dict:
    """Grid-search ``threshold x min_area`` for the competition score.

    Args:
        samples (Iterable[tuple]): ``(probs, gt)`` per validation image:
            ``(H, W)`` probabilities (float in ``[0, 1]`` or uint8
            ``round(255 p)``) and ``(H, W)`` ground truth (0/1, 255
            ignored).
        thresholds (Sequence[float]): Thresholds in ``[0, 1)``.
        min_areas (Sequence[int]): Minimum component areas ``>= 0``.

    Returns:
        dict: ``thresholds``, ``min_areas``, ``score`` (``T x A`` list of
        competition scores), ``mean_dice`` (``T x A`` plain mean Dice),
        ``num_scored`` (``T x A``), ``num_images``, and ``best``:
        ``dict(threshold, min_area, score, mean_dice, num_scored)`` (ties:
        the smaller ``min_area``, then the threshold closest to 0.5).

    Raises:
        ValueError: on an empty grid, a bad value, or no samples.
    """
    thresholds = [float(t) for t in thresholds]
    min_areas = [int(a) for a in min_areas]
    if not thresholds or not min_areas:
        raise ValueError('`thresholds` and `min_areas` should not be empty')
    for t in thresholds:
        threshold_level(t)
    if any(a < 0 for a in min_areas):
        raise ValueError(f'`min_areas` should be >= 0, but got {min_areas}')
    per_image = [image_counts(p, g, thresholds, min_areas)
                 for p, g in samples]
    if not per_image:
        raise ValueError('no validation samples to search on')
    counts = np.stack(per_image)  # (N, T, A, 3)
    num_t, num_a = len(thresholds), len(min_areas)
    score = np.zeros((num_t, num_a))
    plain = np.zeros((num_t, num_a))
    scored = np.zeros((num_t, num_a), np.int64)
    for i in range(num_t):
        for j in range(num_a):
            score[i, j], scored[i, j] = competition_dice(counts[:, i, j])
            plain[i, j] = mean_dice(counts[:, i, j])
    order = sorted(
        ((i, j) for i in range(num_t) for j in range(num_a)),
        key=lambda ij: (-round(score[ij], 12), min_areas[ij[1]],
                        abs(thresholds[ij[0]] - 0.5)))
    bi, bj = order[0]
    return dict(
        thresholds=thresholds,
        min_areas=min_areas,
        score=score.tolist(),
        mean_dice=plain.tolist(),
        num_scored=scored.tolist(),
        num_images=int(counts.shape[0]),
        best=dict(
            threshold=thresholds[bi],
            min_area=min_areas[bj],
            score=float(score[bi, bj]),
            mean_dice=float(plain[bi, bj]),
            num_scored=int(scored[bi, bj])))


def plot_search(result: Dict, path: str) -> None:
    """Write a heatmap of the competition score over the grid (PNG).

    Args:
        result (dict): From :func:`search_threshold`.
        path (str): Output ``.png`` (written atomically).
    """
    score = np.asarray(result['score'])
    fig = new_figure((1.2 + 0.7 * len(result['min_areas']),
                      1.2 + 0.35 * len(result['thresholds'])))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(score, cmap='viridis', aspect='auto')
    ax.set_xticks(range(len(result['min_areas'])),
                  [str(a) for a in result['min_areas']])
    ax.set_yticks(range(len(result['thresholds'])),
                  [f'{t:.2f}' for t in result['thresholds']])
    ax.set_xlabel('min_area (pixels)')
    ax.set_ylabel('threshold')
    best = result['best']
    bi = result['thresholds'].index(best['threshold'])
    bj = result['min_areas'].index(best['min_area'])
    ax.scatter([bj], [bi], marker='*', s=160, c='red')
    if score.size <= 300:
        for i in range(score.shape[0]):
            for j in range(score.shape[1]):
                ax.text(j, i, f'{score[i, j]:.3f}', ha='center',
                        va='center', fontsize=6, color='white')
    ax.set_title(f'competition Dice: best {best["score"]:.4f} at '
                 f't={best["threshold"]:.2f}, min_area={best["min_area"]}',
                 fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def parse_range(text: str, cast=float) -> List:
    """``'0.3:0.7:0.1'`` (start:stop:step, stop included) or ``'0,10,50'``.
    """
    text = str(text).strip()
    if ':' in text:
        parts = text.split(':')
        if len(parts) != 3:
            raise ValueError(f'a range should be start:stop:step, but got '
                             f'{text!r}')
        start, stop, step = (float(p) for p in parts)
        if step <= 0:
            raise ValueError(f'the step of {text!r} should be > 0')
        num = int(np.floor((stop - start) / step + 1e-9)) + 1
        return [cast(round(start + k * step, 10)) for k in range(num)]
    return [cast(v) for v in text.split(',') if v.strip()]


__all__ = [
    'competition_dice', 'mean_dice', 'quantize_probs', 'threshold_level',
    'component_table', 'image_counts', 'search_threshold', 'plot_search',
    'ProbabilityCache', 'parse_range'
]
