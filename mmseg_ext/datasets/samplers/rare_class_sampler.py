# Copyright (c) mmseg_ext contributors. All rights reserved.
"""An infinite sampler that over-samples images of rare classes.

Subclasses mmengine's :class:`~mmengine.dataset.InfiniteSampler`, so the
stream is sliced by rank exactly as there (each rank takes every
``world_size``-th index of one seeded stream) and only the stream itself
differs: drawn by class (DAFormer) or repeated by factor (LVIS) instead of
a permutation. The per-image class counts come from the dataset's pixel
counter (:func:`mmseg_ext.datasets.pixel_counters.count_dataset_pixels`
with ``per_item=True``), cached in the work dir next to
``ClassWeightHook``'s totals, so a second run starts at once.
"""
import logging
import os.path as osp
from typing import Dict, Iterator, Optional, Sized, Union

import numpy as np
import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import broadcast_object_list, get_rank, is_distributed
from mmengine.logging import MMLogger, print_log
from mmseg.registry import DATA_SAMPLERS

from mmseg_ext.datasets.pixel_counters import (PixelCounter,
                                               count_dataset_pixels,
                                               unwrap_dataset)
from mmseg_ext.utils.rare_class_sampling import (
    SAMPLING_MODES, class_draw_share, image_draw_probs, image_presence,
    rcs_class_probs, repeat_factors, sampling_table, save_sampling_report)

__all__ = [
    'RareClassSampler', 'find_work_dir', 'dataset_index_rows',
    'dataset_item_counts'
]


def find_work_dir() -> Optional[str]:
    """The current Runner's ``work_dir``, found through its log file.

    Samplers and transforms are built without the Runner; the Runner's
    logger (the current ``MMLogger``) writes
    ``{work_dir}/{timestamp}/{timestamp}.log``, which names it. None when no
    such log file exists (no Runner, or a logger without a file).
    """
    logger = MMLogger.get_current_instance()
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            log_dir = osp.dirname(handler.baseFilename)
            stem = osp.basename(handler.baseFilename)
            if stem.startswith(osp.basename(log_dir)):
                return osp.dirname(log_dir)
    return None


def dataset_index_rows(dataset, num_rows: int) -> np.ndarray:
    """Map each index of ``dataset`` to its row of the per-item counts.

    The rows of :func:`count_dataset_pixels` follow the leaf datasets
    (:func:`unwrap_dataset`) one after another. ``ConcatDataset`` keeps
    that order, ``RepeatDataset`` tiles it, ``ClassBalancedDataset`` follows
    its ``repeat_indices`` and a same-length wrapper such as
    ``MultiImageMixDataset`` is the identity.

    Raises:
        ValueError: for a wrapper whose index mapping is not known.
    """
    from mmengine.dataset import ClassBalancedDataset, RepeatDataset
    if isinstance(dataset, RepeatDataset):
        return np.tile(dataset_index_rows(dataset.dataset, num_rows),
                       dataset.times)
    if isinstance(dataset, ClassBalancedDataset):
        inner = dataset_index_rows(dataset.dataset, num_rows)
        return inner[np.asarray(dataset.repeat_indices, dtype=np.int64)]
    if hasattr(dataset, 'datasets') and not hasattr(dataset,
                                                    'load_data_list'):
        parts, offset = [], 0
        for sub in dataset.datasets:
            n_sub = sum(len(leaf) for leaf in unwrap_dataset(sub))
            parts.append(dataset_index_rows(sub, n_sub) + offset)
            offset += n_sub
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if len(dataset) == num_rows:
        return np.arange(num_rows)
    raise ValueError(
        f'cannot map the {len(dataset)} indices of {type(dataset).__name__} '
        f'to the {num_rows} labelled items of its datasets; use a plain '
        'dataset, ConcatDataset, RepeatDataset or ClassBalancedDataset')


def dataset_item_counts(dataset,
                        counter: Union[Dict, PixelCounter, None] = None,
                        ignore_index: int = 255,
                        num_workers: int = 2,
                        cache_dir: Optional[str] = None) -> tuple:
    """``(len(dataset), C)`` per-index pixel counts; counted on rank 0.

    Rank 0 counts (cached in ``cache_dir``) and broadcasts, like
    ``ClassWeightHook``; an error on rank 0 is raised on every rank.

    Returns:
        tuple: ``(rows, info)`` as :func:`count_dataset_pixels` with
        ``per_item=True``, rows indexed like ``dataset``.
    """
    payload = [None]
    if get_rank() == 0:
        try:
            rows, info = count_dataset_pixels(
                dataset,
                counter=counter,
                ignore_index=ignore_index,
                num_workers=num_workers,
                cache_dir=cache_dir,
                per_item=True)
            payload = [dict(rows=rows, info=info)]
        except Exception as e:  # noqa: BLE001  (re-raised on all ranks)
            if not is_distributed():
                raise
            payload = [dict(error=f'{type(e).__name__}: {e}')]
    broadcast_object_list(payload, src=0)
    if 'error' in payload[0]:
        raise RuntimeError('counting class pixels failed on rank 0: ' +
                           payload[0]['error'])
    rows = np.asarray(payload[0]['rows'], dtype=np.int64)
    return rows[dataset_index_rows(dataset, len(rows))], payload[0]['info']


@DATA_SAMPLERS.register_module()
class RareClassSampler(InfiniteSampler):
    """Infinite sampler drawing images of rare classes more often.

    For iteration-based loops (``IterBasedTrainLoop``), in place of
    ``InfiniteSampler``: ``train_dataloader.sampler=dict(type=
    'RareClassSampler')``. Each rank takes every ``world_size``-th index of
    one stream seeded by ``seed`` (as ``InfiniteSampler``), so the ranks'
    shares are disjoint slices that together are the single-process stream.

    The stream:

    - ``mode='rcs'`` (DAFormer, Hoyer et al., CVPR 2022): a class is drawn
      with ``P(c) ∝ exp((1 - f_c) / temperature)`` (``f_c``: pixel
      frequency over the training labels; classes no image contains get 0),
      then uniformly one of the images with ``>= min_pixels`` pixels of it
      (drawn in chunks of ``len(dataset)``). Draws are random by nature;
      ``shuffle`` is not used.
    - ``mode='repeat_factor'`` (LVIS, Gupta et al., CVPR 2019): image ``i``
      is repeated ``r_i = max_{c in i} max(1, sqrt(repeat_thr / f_c))``
      times per pass, ``f_c`` being the fraction of images containing ``c``;
      the fractional part is **stochastic rounding** (each pass repeats
      ``floor(r_i)`` times, plus once more with probability
      ``r_i - floor(r_i)``, as Detectron2's ``RepeatFactorTrainingSampler``),
      then the pass is shuffled (``shuffle=True``) and yielded whole.

    Per-image counts come from the dataset's pixel counter (label maps,
    packed multi-label PNGs, RLE CSVs: the counter ``ClassWeightHook``
    uses), counted on rank 0 in ``num_workers`` processes and cached in
    ``{work_dir}/class_pixel_counts_{fingerprint}.json``. It logs a table
    of the sampling (pixel frequency, images, ``P(c)`` or ``r_c``, share of
    draws containing each class, uniform vs this sampler) and writes
    ``{work_dir}/class_sampling.json`` and ``class_sampling.png``. The work
    dir is the Runner's, found through its log file (:func:`find_work_dir`;
    the sampler is built without the Runner), or ``work_dir``.

    Args:
        dataset (Sized): The dataset (wrappers: see
            :func:`dataset_index_rows`).
        mode (str): ``'rcs'`` or ``'repeat_factor'``. Defaults to ``'rcs'``.
        temperature (float): RCS temperature ``T > 0``. Defaults to 0.01.
        min_pixels (int): Pixels of a class for an image to "contain" it
            (DAFormer uses 3000 on 1024x512 Cityscapes crops). Defaults
            to 1.
        repeat_thr (float): LVIS threshold ``t > 0`` (image-level
            frequency). Defaults to 0.5.
        shuffle (bool): Shuffle each repeat-factor pass. Defaults to True.
        seed (int, optional): Random seed; None: a random seed shared by
            the ranks (as ``InfiniteSampler``). Defaults to None.
        counter (dict | PixelCounter, optional): Pixel counter override
            (as ``ClassWeightHook``'s). Defaults to None.
        ignore_index (int): For counters built from configs.
            Defaults to 255.
        num_workers (int): Counting processes. Defaults to 2.
        work_dir (str, optional): Cache and report folder; None: the
            Runner's work dir, or no cache and no files without a Runner.
            Defaults to None.
        save_plot (bool): Write ``class_sampling.png``. Defaults to True.

    Attributes:
        presence (np.ndarray): ``(N, C)`` bool, image ``i`` contains ``c``.
        class_probs (np.ndarray): ``(C,)`` ``P(c)`` (``'rcs'``) or None.
        image_factors (np.ndarray): ``(N,)`` ``r_i``
            (``'repeat_factor'``) or None.
        image_probs (np.ndarray): ``(N,)`` probability of each image per
            draw.

    Raises:
        ValueError: on an unknown ``mode``, a non-positive ``temperature``
            or ``repeat_thr``, ``min_pixels < 1``, or (``'rcs'``) no image
            containing any class.

    Examples:
        >>> train_dataloader = dict(
        ...     sampler=dict(type='RareClassSampler', temperature=0.01))
    """

    def __init__(self,
                 dataset: Sized,
                 mode: str = 'rcs',
                 temperature: float = 0.01,
                 min_pixels: int = 1,
                 repeat_thr: float = 0.5,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 counter: Union[Dict, PixelCounter, None] = None,
                 ignore_index: int = 255,
                 num_workers: int = 2,
                 work_dir: Optional[str] = None,
                 save_plot: bool = True) -> None:
        if mode not in SAMPLING_MODES:
            raise ValueError(f'`mode` should be one of {SAMPLING_MODES}, '
                             f'but got {mode!r}')
        for name, value in (('temperature', temperature), ('repeat_thr',
                                                           repeat_thr)):
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not value > 0:
                raise ValueError(f'`{name}` should be a number > 0, but got '
                                 f'{value!r}')
        if isinstance(min_pixels, bool) or not isinstance(
                min_pixels, (int, np.integer)) or min_pixels < 1:
            raise ValueError('`min_pixels` should be an int >= 1, but got '
                             f'{min_pixels!r}')
        self.mode = mode
        self.temperature = float(temperature)
        self.min_pixels = int(min_pixels)
        self.repeat_thr = float(repeat_thr)
        work_dir = work_dir or find_work_dir()

        rows, info = dataset_item_counts(dataset, counter, ignore_index,
                                         num_workers, work_dir)
        leaf = unwrap_dataset(dataset)[0]
        names = list(getattr(leaf, 'metainfo', {}).get('classes') or [])
        if len(names) != rows.shape[1]:
            names = [str(c) for c in range(rows.shape[1])]
        self.class_names = names
        counts = rows.sum(0)
        self.presence = image_presence(rows, self.min_pixels)
        self.class_probs = self.image_factors = None
        if mode == 'rcs':
            self.class_probs = rcs_class_probs(counts, self.presence,
                                               self.temperature)
            self.image_probs = image_draw_probs(
                self.presence, class_probs=self.class_probs)
            self._class_images = [
                torch.from_numpy(np.flatnonzero(self.presence[:, c]))
                for c in range(rows.shape[1])
            ]
            value, value_name = self.class_probs, 'P(class)'
        else:
            self.image_factors, class_factors = repeat_factors(
                self.presence, self.repeat_thr)
            self.image_probs = image_draw_probs(
                self.presence, image_factors=self.image_factors)
            value, value_name = class_factors, 'r_c'
        share = class_draw_share(self.presence, self.image_probs)
        super().__init__(dataset, shuffle=shuffle, seed=seed)

        print_log(
            f'RareClassSampler ({mode}) over {len(rows)} images'
            f'{" (cached counts)" if info.get("cache_hit") else ""}:\n' +
            sampling_table(names, counts, self.presence, value, share,
                           value_name), logger='current')
        if work_dir is not None and get_rank() == 0:
            report = dict(
                mode=mode, temperature=self.temperature,
                min_pixels=self.min_pixels, repeat_thr=self.repeat_thr,
                seed=self.seed, classes=names, counts=counts.tolist(),
                images_with_class=self.presence.sum(0).tolist(),
                class_probs=None if self.class_probs is None else
                self.class_probs.tolist(),
                class_factors=None if mode == 'rcs' else value.tolist(),
                draw_share=share.tolist(),
                uniform_share=self.presence.mean(0).tolist(),
                fingerprint=info['fingerprint'])
            paths = save_sampling_report(work_dir, names, self.presence,
                                         share, report, plot=save_plot)
            print_log('class sampling written to ' +
                      ', '.join(paths.values()), logger='current')

    def _infinite_indices(self) -> Iterator[int]:
        """The single-process stream (sliced by rank in the base class)."""
        g = torch.Generator()
        g.manual_seed(self.seed)
        if self.mode == 'rcs':
            probs = torch.from_numpy(self.class_probs)
            while True:
                classes = torch.multinomial(
                    probs, self.size, replacement=True, generator=g)
                picks = torch.rand(self.size, generator=g,
                                   dtype=torch.float64)
                for c, u in zip(classes.tolist(), picks.tolist()):
                    images = self._class_images[c]
                    yield int(images[min(int(u * len(images)),
                                         len(images) - 1)])
        factors = torch.from_numpy(self.image_factors)
        base = torch.floor(factors)
        while True:
            extra = torch.rand(len(factors), generator=g,
                               dtype=torch.float64) < factors - base
            reps = (base + extra).long()
            indices = torch.repeat_interleave(torch.arange(len(reps)), reps)
            if self.shuffle:
                indices = indices[torch.randperm(len(indices), generator=g)]
            yield from indices.tolist()
