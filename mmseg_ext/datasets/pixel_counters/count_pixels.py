# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Count a dataset's pixels per class: counters per leaf dataset, worker
pool, JSON cache (:func:`count_dataset_pixels`)."""
import contextlib
import json
import multiprocessing
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmengine.dataset import (ClassBalancedDataset, ConcatDataset,
                              RepeatDataset)
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from mmseg.registry import TASK_UTILS

from mmseg_ext.utils.io import dump_json_atomic
from .pixel_counter import PixelCounter, hash_items

__all__ = [
    'CACHE_VERSION', 'CACHE_PREFIX', 'unwrap_dataset', 'build_counter',
    'resolve_counter', 'run_counting', 'count_dataset_pixels'
]

CACHE_VERSION = 1
CACHE_PREFIX = 'class_pixel_counts_'


def unwrap_dataset(dataset) -> List[Any]:
    """The leaf datasets under mmengine/mmseg dataset wrappers.

    ``ConcatDataset`` gives each of its datasets; ``RepeatDataset``,
    ``ClassBalancedDataset`` and other wrappers with a ``dataset`` attribute
    (e.g. ``MultiImageMixDataset``) give the wrapped one once: each label
    file is counted once, whatever the repetition.
    """
    if isinstance(dataset, ConcatDataset) or (
            hasattr(dataset, 'datasets') and
            not hasattr(dataset, 'get_data_info')):
        leaves = []
        for sub in dataset.datasets:
            leaves += unwrap_dataset(sub)
        return leaves
    if isinstance(dataset, (RepeatDataset, ClassBalancedDataset)) or (
            hasattr(dataset, 'dataset') and
            not hasattr(dataset, 'load_data_list')):
        return unwrap_dataset(dataset.dataset)
    return [dataset]


def build_counter(cfg: Union[PixelCounter, Dict, None]) -> PixelCounter:
    """Build a counter from a ``TASK_UTILS`` config (or pass one through)."""
    if isinstance(cfg, PixelCounter):
        return cfg
    if isinstance(cfg, dict):
        counter = TASK_UTILS.build(cfg)
        if not isinstance(counter, PixelCounter):
            raise TypeError(f'`counter` should build a PixelCounter, but '
                            f'{cfg!r} built a {type(counter).__name__}')
        return counter
    raise TypeError('`counter` should be a PixelCounter, a config dict or '
                    f'None, but got {type(cfg).__name__}')


def resolve_counter(dataset,
                    counter: Union[PixelCounter, Dict, None] = None,
                    ignore_index: Optional[int] = None) -> PixelCounter:
    """The counter for one leaf dataset, already ``setup``.

    Order: ``counter`` (the hook's or tool's override) >
    ``dataset.get_pixel_counter()`` > ``dataset.pixel_counter`` >
    ``LabelMapPixelCounter()``. Config dicts are built anew for each dataset
    (a counter holds per-dataset settings); ``ignore_index``, if given, is
    the default ``ignore_index`` of those built from config dicts.
    """
    if counter is None and hasattr(dataset, 'get_pixel_counter'):
        counter = dataset.get_pixel_counter()
    if counter is None:
        counter = getattr(dataset, 'pixel_counter', None)
    if counter is None:
        counter = dict(type='LabelMapPixelCounter')
    if isinstance(counter, dict):
        counter = dict(counter)
        if ignore_index is not None:
            counter.setdefault('ignore_index', ignore_index)
    counter = build_counter(counter)
    counter.setup(dataset)
    return counter


def _init_worker() -> None:
    # We parallelise already; OpenCV's own pool would oversubscribe (and is
    # not fork-safe).
    cv2.setNumThreads(0)


class _ThreadPool(ThreadPoolExecutor):
    """Threads with OpenCV's own pool off while they run (restored after)."""

    def __enter__(self):
        self._cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(0)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            cv2.setNumThreads(self._cv2_threads)


def run_counting(counter: PixelCounter,
                 items: Sequence[Any],
                 num_workers: int = 2,
                 show_progress: bool = True,
                 per_item: bool = False) -> np.ndarray:
    """Sum ``counter.count(item)`` over ``items`` in ``num_workers`` workers.

    ``counter.parallel_backend`` picks the workers: ``'process'`` (a
    ``multiprocessing`` pool, for counters that run Python code) or
    ``'thread'`` (for counters whose work releases the GIL, like OpenCV
    decoding: no fork of the training process, nothing to pickle).

    Args:
        per_item (bool): Return the ``(N, C)`` counts of each item (in the
            order of ``items``) instead of their sum (the per-image class
            presence of :class:`mmseg_ext.datasets.samplers.
            RareClassSampler`). Defaults to False.

    Returns:
        np.ndarray: ``(C,)`` int64 counts (``(N, C)`` with ``per_item``).
    """
    total = np.zeros(counter.num_classes, dtype=np.int64)
    items = list(items)
    rows = np.zeros((len(items), counter.num_classes), dtype=np.int64) \
        if per_item else None
    if len(items) == 0:
        return rows if per_item else total
    nproc = max(1, min(num_workers, len(items)))
    backend = getattr(counter, 'parallel_backend', 'process')
    if backend not in ('process', 'thread'):
        raise ValueError(f'`{type(counter).__name__}.parallel_backend` '
                         "should be 'process' or 'thread', but got "
                         f'{backend!r}')
    bar = ProgressBar(len(items), file=sys.stdout) if show_progress else None
    if nproc == 1:
        results = map(counter.count, items)
        pool = contextlib.nullcontext()
    elif backend == 'thread':
        pool = _ThreadPool(nproc)  # mapped once entered
    else:
        pool = multiprocessing.Pool(nproc, _init_worker)
        chunksize = max(1, min(32, len(items) // (nproc * 8)))
        # Ordered (``imap``): per-item rows follow ``items``.
        results = pool.imap(counter.count, items, chunksize)
    with pool:
        if isinstance(pool, _ThreadPool):
            results = pool.map(counter.count, items)
        for i, res in enumerate(results):
            res = np.asarray(res)
            if res.shape != total.shape:
                raise ValueError(
                    f'{type(counter).__name__}.count should return shape '
                    f'({counter.num_classes},), but got {res.shape}')
            total += res.astype(np.int64)
            if rows is not None:
                rows[i] = res
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.file.write('\n')
        bar.file.flush()
    return rows if per_item else total


def count_dataset_pixels(dataset,
                         counter: Union[PixelCounter, Dict, None] = None,
                         num_workers: int = 2,
                         cache_dir: Optional[str] = None,
                         show_progress: bool = True,
                         logger: Any = 'current',
                         ignore_index: Optional[int] = None,
                         per_item: bool = False
                         ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Count labelled pixels per class over a dataset's label files.

    Each leaf dataset (see :func:`unwrap_dataset`) is counted with its own
    counter (see :func:`resolve_counter`). With ``cache_dir``, the counts are
    cached in ``{cache_dir}/class_pixel_counts_{fingerprint[:16]}.json``; the
    fingerprint covers the counters' settings and every item's stamp (path,
    size and mtime of each label file by default), so a changed, added or
    removed file, or a different ``reduce_zero_label``, misses the cache.

    Args:
        dataset: A dataset or dataset wrapper.
        counter (PixelCounter | dict, optional): Override for every leaf
            dataset. Defaults to None.
        num_workers (int): Worker processes; ``<= 1`` counts in this
            process. Defaults to 2.
        cache_dir (str, optional): Cache folder; None: no cache.
            Defaults to None.
        show_progress (bool): Show a progress bar. Defaults to True.
        logger: ``print_log`` logger. Defaults to ``'current'``.
        ignore_index (int, optional): Default ``ignore_index`` of counters
            built from configs (see :func:`resolve_counter`).
            Defaults to None (the counter's own default, 255).
        per_item (bool): Return the ``(N, C)`` counts of every item (rows
            in the order of the leaf datasets and their items, i.e. the
            indices of a ``ConcatDataset`` of them) instead of the total.
            The cache file holds both, so a ``ClassWeightHook`` run also
            fills it for ``RareClassSampler``; an older totals-only file is
            recounted once for ``per_item``. Defaults to False.

    Returns:
        tuple: ``(counts, info)``: ``(C,)`` (``(N, C)`` with ``per_item``)
        int64 counts and a dict with
        ``fingerprint``, ``num_items``, ``counters`` (settings of each) and
        ``cache`` (path or None) and ``cache_hit`` (bool).

    Raises:
        ValueError: if the leaf datasets disagree on ``C``.
    """
    leaves = unwrap_dataset(dataset)
    jobs = []
    for leaf in leaves:
        leaf_counter = resolve_counter(leaf, counter, ignore_index)
        jobs.append((leaf_counter, leaf_counter.items(leaf)))
    num_classes = {c.num_classes for c, _ in jobs}
    if len(num_classes) != 1:
        raise ValueError('the datasets under the training dataset should '
                         'have the same number of classes, but got '
                         f'{sorted(num_classes)}')
    num_classes = num_classes.pop()
    fingerprint = hash_items(
        dict(version=CACHE_VERSION, num_classes=num_classes),
        [c.fingerprint(items) for c, items in jobs])
    info = dict(
        fingerprint=fingerprint,
        num_items=sum(len(items) for _, items in jobs),
        counters=[c.settings() for c, _ in jobs],
        cache=None,
        cache_hit=False)

    cache_path = None
    if cache_dir is not None:
        cache_path = osp.join(cache_dir,
                              f'{CACHE_PREFIX}{fingerprint[:16]}.json')
        info['cache'] = cache_path
        cached = _load_cache(cache_path, fingerprint, num_classes, logger,
                             info['num_items'] if per_item else None)
        if cached is not None:
            info['cache_hit'] = True
            print_log(f'class pixel counts loaded from cache {cache_path}',
                      logger=logger)
            return cached, info

    print_log(
        f'counting labelled pixels per class in {info["num_items"]} items '
        f'with {num_workers} worker(s)', logger=logger)
    rows = np.zeros((0, num_classes), dtype=np.int64)
    for leaf_counter, items in jobs:
        rows = np.concatenate([
            rows,
            run_counting(leaf_counter, items, num_workers, show_progress,
                         per_item=True)
        ])
    counts = rows.sum(0)
    if cache_path is not None:
        dump_json_atomic(
            dict(
                version=CACHE_VERSION,
                fingerprint=fingerprint,
                num_items=info['num_items'],
                counters=info['counters'],
                counts=counts.tolist(),
                per_item=rows.tolist()), cache_path)
    return (rows if per_item else counts), info


def _load_cache(path: str,
                fingerprint: str,
                num_classes: int,
                logger: Any,
                num_items: Optional[int] = None) -> Optional[np.ndarray]:
    """Cached ``(C,)`` totals, or ``(num_items, C)`` rows if given."""
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        counts = np.asarray(data['counts'], dtype=np.int64)
        if (data.get('fingerprint') != fingerprint
                or counts.shape != (num_classes, )):
            raise ValueError('fingerprint or shape mismatch')
        if num_items is not None:
            if 'per_item' not in data:
                return None  # a totals-only file: recount (and rewrite)
            counts = np.asarray(data['per_item'], dtype=np.int64).reshape(
                -1, num_classes)
            if counts.shape != (num_items, num_classes):
                raise ValueError('per-item shape mismatch')
    except (OSError, ValueError, KeyError, TypeError) as e:
        print_log(f'ignoring bad class pixel count cache {path}: {e}',
                  logger=logger, level=30)
        return None
    return counts
