# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Per-class pixel counting over a dataset's label files (parallel, cached).

The counting is split so datasets with other label formats can plug in:

- :class:`PixelCounter` is the interface: ``setup(dataset)`` reads the
  dataset settings, ``items(dataset)`` lists picklable jobs,
  ``fingerprint(items)`` identifies their content for the cache and
  ``count(item)`` returns the ``(C,)`` int64 counts of one job (it runs in a
  worker process).
- :class:`LabelMapPixelCounter` (the default) reads label images directly,
  without the augmentation pipeline.
- :func:`count_dataset_pixels` unwraps dataset wrappers, resolves each
  dataset's counter, runs the jobs in a process pool with a progress bar and
  caches the result in a JSON file keyed by the fingerprint.

A dataset names its own counter with a method ``get_pixel_counter()``
(returning a :class:`PixelCounter` or a config dict) or a class attribute
``pixel_counter = dict(type='MyCounter', ...)``; counters are registered in
mmseg's ``TASK_UTILS`` so configs can name them.
"""
import contextlib
import hashlib
import json
import multiprocessing
import os
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

CACHE_VERSION = 1
CACHE_PREFIX = 'class_pixel_counts_'


def _dataset_num_classes(dataset) -> int:
    classes = getattr(dataset, 'metainfo', {}).get('classes')
    if not classes:
        raise ValueError(
            f'`num_classes` should be given, or the dataset '
            f'{type(dataset).__name__} should have `metainfo["classes"]`, '
            'but it has none')
    return len(classes)


class PixelCounter:
    """Interface of a per-class pixel counter; subclass it for a format.

    A subclass overrides :meth:`count` (and :meth:`items` when a job is not
    the ``seg_map_path`` of a data info, e.g. one row of an RLE CSV). Keep the
    instance picklable (plain attributes, no open files): the bound
    :meth:`count` is sent to worker processes with it. Put every setting
    that changes the counts in :meth:`settings`, so the cache key changes
    with it. Multi-label counters return positive pixels per class.

    Args:
        num_classes (int, optional): ``C``; None to take
            ``len(dataset.metainfo['classes'])`` in :meth:`setup`.
            Defaults to None.
        ignore_index (int): Label value that is not counted (values ``>= C``
            are not counted either). Defaults to 255.

    Attributes:
        parallel_backend (str): ``'process'`` (default; a process pool, the
            counter must be picklable) or ``'thread'`` (only for ``count``
            that releases the GIL, e.g. OpenCV or zlib work).

    Examples:
        >>> @TASK_UTILS.register_module()
        ... class RLEPixelCounter(PixelCounter):
        ...     def items(self, dataset):
        ...         return [(info['rle'], info['height'], info['width'])
        ...                 for info in iter_data_infos(dataset)]
        ...     def fingerprint(self, items):
        ...         return hash_items(self.settings(), items)
        ...     def count(self, item):
        ...         mask = decode_rle(*item)  # (H, W) label map
        ...         return np.bincount(mask[mask < self.num_classes].ravel(),
        ...                            minlength=self.num_classes)
    """
    parallel_backend = 'process'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255) -> None:
        if num_classes is not None and (not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError('`num_classes` should be a positive int or '
                             f'None, but got {num_classes!r}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def setup(self, dataset) -> None:
        """Read the settings this counter needs from ``dataset`` (once)."""
        if self.num_classes is None:
            self.num_classes = _dataset_num_classes(dataset)

    def settings(self) -> Dict[str, Any]:
        """JSON-able settings that change the counts (part of the cache key).
        """
        return dict(
            type=type(self).__name__,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index)

    def items(self, dataset) -> List[Any]:
        """Picklable counting jobs; by default each ``seg_map_path``."""
        paths = []
        for i, info in enumerate(iter_data_infos(dataset)):
            if 'seg_map_path' not in info:
                raise ValueError(
                    f'data info {i} of {type(dataset).__name__} should have '
                    f'`seg_map_path`, but has keys {sorted(info)}; give the '
                    'dataset its own `PixelCounter`')
            paths.append(info['seg_map_path'])
        return paths

    def fingerprint(self, items: Sequence[Any]) -> str:
        """Content key of ``items``: path, size and mtime of each file."""
        return hash_items(self.settings(), [file_stamp(p) for p in items])

    def count(self, item: Any) -> np.ndarray:
        """Return the ``(C,)`` int64 pixel counts of one item."""
        raise NotImplementedError


def iter_data_infos(dataset):
    """Yield the data infos of a (non-wrapper) dataset, no pipeline run."""
    for i in range(len(dataset)):
        yield dataset.get_data_info(i)


def file_stamp(path: str) -> Tuple[str, int, int]:
    """``(path, size, mtime_ns)`` of a file; raise naming it if missing."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise FileNotFoundError(
            f'label file {path!r} cannot be read: {e.strerror}') from None
    return (str(path), st.st_size, st.st_mtime_ns)


def hash_items(settings: Dict[str, Any], stamps: Sequence[Any]) -> str:
    """SHA-256 hex digest of counter settings plus per-item stamps."""
    h = hashlib.sha256()
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for stamp in stamps:
        h.update(b'\0')
        h.update(repr(stamp).encode())
    return h.hexdigest()


def read_label_map(path: str) -> np.ndarray:
    """Read a label image as a 2-D array the way mmseg's loader sees it.

    Reads with ``cv2.imread(IMREAD_UNCHANGED)``; palette PNGs (which OpenCV
    expands to colour) and formats OpenCV cannot read go through PIL, which
    returns palette indices like mmseg's default ``'pillow'`` backend. Like
    :class:`mmseg.datasets.LoadAnnotations`, singleton axes are squeezed and
    the values are cast to uint8 (a 16-bit label wraps modulo 256 there too).

    Args:
        path (str): Label file.

    Returns:
        np.ndarray: ``(H, W)`` uint8 label map.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is unreadable or not a single-channel image.
    """
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 2:
        if not osp.isfile(path):
            raise FileNotFoundError(f'label file {path!r} does not exist')
        try:
            from PIL import Image
            with Image.open(path) as pil:
                img = np.asarray(pil)
        except Exception as e:  # noqa: BLE001  (any decoder error)
            raise ValueError(f'label file {path!r} cannot be decoded as an '
                             f'image: {e}') from None
    img = np.squeeze(img)
    if img.ndim != 2:
        raise ValueError(
            f'label file {path!r} should be a 2-D single-channel label map '
            f'(H, W), but got shape {img.shape} (a colour image? convert it '
            'to class indices, or give the dataset its own PixelCounter)')
    if img.dtype != np.uint8:
        img = img.astype(np.uint8)
    return img


def uint8_histogram(img: np.ndarray) -> np.ndarray:
    """``(256,)`` int64 histogram of a uint8 image (fast path: calcHist)."""
    if img.size < (1 << 24):  # float32 bins are exact below 2**24
        hist = cv2.calcHist([np.ascontiguousarray(img)], [0], None, [256],
                            [0, 256])
        return hist.ravel().astype(np.int64)
    return np.bincount(img.ravel(), minlength=256).astype(np.int64)


def build_label_lut(num_classes: int,
                    reduce_zero_label: bool = False,
                    label_map: Optional[Dict[int, int]] = None,
                    ignore_index: int = 255) -> np.ndarray:
    """Map each raw uint8 value to its class index, or -1 if not counted.

    Follows :class:`mmseg.datasets.LoadAnnotations`: with
    ``reduce_zero_label`` 0 becomes 255 and other values drop by one (255
    stays 255); then ``label_map`` remaps old to new ids all at once. Values
    equal to ``ignore_index`` or ``>= num_classes`` are not counted.

    Returns:
        np.ndarray: ``(256,)`` int64 lookup table.
    """
    values = np.arange(256, dtype=np.int64)
    if reduce_zero_label:
        values = np.where(values == 0, 255, values - 1)
        values[values == 254] = 255
    if label_map:
        mapped = values.copy()
        for old, new in label_map.items():
            mapped[values == old] = new
        values = mapped
    values = values.copy()
    values[(values == ignore_index) | (values >= num_classes) |
           (values < 0)] = -1
    return values


@TASK_UTILS.register_module()
class LabelMapPixelCounter(PixelCounter):
    """Count pixels per class in label images (PNG, TIFF, ...) directly.

    Reads each data info's ``seg_map_path`` with OpenCV (PIL fallback), takes
    a 256-bin histogram and folds it into ``(C,)`` counts through a lookup
    table that applies ``reduce_zero_label`` and ``label_map`` like
    :class:`mmseg.datasets.LoadAnnotations`, so the counts are those of the
    labels the loss sees (before random crops and flips).

    Args:
        num_classes (int, optional): ``C``; None for the dataset's number of
            classes. Defaults to None.
        ignore_index (int): Not counted. Defaults to 255.
        reduce_zero_label (bool, optional): None to use the dataset's.
            Defaults to None.
        label_map (dict, optional): ``{old_id: new_id}``; None to use the
            dataset's. Defaults to None.

    Examples:
        >>> counter = TASK_UTILS.build(dict(type='LabelMapPixelCounter'))
        >>> counter.setup(dataset)
        >>> counts = sum(counter.count(p) for p in counter.items(dataset))
    """
    # cv2.imread/calcHist release the GIL: threads scale on the cores
    # without forking the training process (2.6x vs 1.9x for processes on
    # 2 cores, see benchmarks/bench_class_weight_counting.py).
    parallel_backend = 'thread'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255,
                 reduce_zero_label: Optional[bool] = None,
                 label_map: Optional[Dict[int, int]] = None) -> None:
        super().__init__(num_classes=num_classes, ignore_index=ignore_index)
        self.reduce_zero_label = reduce_zero_label
        self.label_map = label_map
        self._lut = None

    def setup(self, dataset) -> None:
        super().setup(dataset)
        metainfo = getattr(dataset, 'metainfo', {})
        if self.reduce_zero_label is None:
            self.reduce_zero_label = bool(
                getattr(dataset, 'reduce_zero_label',
                        metainfo.get('reduce_zero_label', False)))
        if self.label_map is None:
            self.label_map = getattr(dataset, 'label_map',
                                     metainfo.get('label_map', None))
        self._lut = None

    def settings(self) -> Dict[str, Any]:
        settings = super().settings()
        settings.update(
            reduce_zero_label=bool(self.reduce_zero_label),
            label_map=sorted((int(k), int(v))
                             for k, v in (self.label_map or {}).items()))
        return settings

    @property
    def lut(self) -> np.ndarray:
        """``(256,)`` raw value to class index lookup table (-1: ignored)."""
        if self._lut is None:
            if self.num_classes is None:
                raise RuntimeError('call `setup(dataset)` or give '
                                   '`num_classes` before counting')
            self._lut = build_label_lut(self.num_classes,
                                        bool(self.reduce_zero_label),
                                        self.label_map, self.ignore_index)
        return self._lut

    def counts_from_histogram(self, hist: np.ndarray) -> np.ndarray:
        """Fold a ``(256,)`` raw-value histogram into ``(C,)`` counts."""
        lut = self.lut
        keep = lut >= 0
        return np.bincount(
            lut[keep], weights=hist[keep],
            minlength=self.num_classes).round().astype(np.int64)

    def count(self, item: str) -> np.ndarray:
        return self.counts_from_histogram(uint8_histogram(
            read_label_map(item)))


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
                 show_progress: bool = True) -> np.ndarray:
    """Sum ``counter.count(item)`` over ``items`` in ``num_workers`` workers.

    ``counter.parallel_backend`` picks the workers: ``'process'`` (a
    ``multiprocessing`` pool, for counters that run Python code) or
    ``'thread'`` (for counters whose work releases the GIL, like OpenCV
    decoding: no fork of the training process, nothing to pickle).

    Returns:
        np.ndarray: ``(C,)`` int64 counts.
    """
    total = np.zeros(counter.num_classes, dtype=np.int64)
    items = list(items)
    if len(items) == 0:
        return total
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
        results = pool.imap_unordered(counter.count, items, chunksize)
    with pool:
        if isinstance(pool, _ThreadPool):
            results = pool.map(counter.count, items)
        for res in results:
            res = np.asarray(res)
            if res.shape != total.shape:
                raise ValueError(
                    f'{type(counter).__name__}.count should return shape '
                    f'({counter.num_classes},), but got {res.shape}')
            total += res.astype(np.int64)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.file.write('\n')
        bar.file.flush()
    return total


def count_dataset_pixels(dataset,
                         counter: Union[PixelCounter, Dict, None] = None,
                         num_workers: int = 2,
                         cache_dir: Optional[str] = None,
                         show_progress: bool = True,
                         logger: Any = 'current',
                         ignore_index: Optional[int] = None
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

    Returns:
        tuple: ``(counts, info)``: ``(C,)`` int64 counts and a dict with
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
        cached = _load_cache(cache_path, fingerprint, num_classes, logger)
        if cached is not None:
            info['cache_hit'] = True
            print_log(f'class pixel counts loaded from cache {cache_path}',
                      logger=logger)
            return cached, info

    print_log(
        f'counting labelled pixels per class in {info["num_items"]} items '
        f'with {num_workers} worker(s)', logger=logger)
    counts = np.zeros(num_classes, dtype=np.int64)
    for leaf_counter, items in jobs:
        counts += run_counting(leaf_counter, items, num_workers,
                               show_progress)
    if cache_path is not None:
        dump_json_atomic(
            dict(
                version=CACHE_VERSION,
                fingerprint=fingerprint,
                num_items=info['num_items'],
                counters=info['counters'],
                counts=counts.tolist()), cache_path)
    return counts, info


def _load_cache(path: str, fingerprint: str, num_classes: int,
                logger: Any) -> Optional[np.ndarray]:
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        counts = np.asarray(data['counts'], dtype=np.int64)
        if (data.get('fingerprint') != fingerprint
                or counts.shape != (num_classes, )):
            raise ValueError('fingerprint or shape mismatch')
    except (OSError, ValueError, KeyError, TypeError) as e:
        print_log(f'ignoring bad class pixel count cache {path}: {e}',
                  logger=logger, level=30)
        return None
    return counts
