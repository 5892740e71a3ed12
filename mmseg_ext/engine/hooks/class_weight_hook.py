# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Set the loss class weights from the training set's pixel counts."""
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch.nn as nn
from mmengine.dist import broadcast_object_list, get_rank, is_distributed
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import get_priority
from mmseg.registry import HOOKS

from mmseg_ext.datasets.pixel_counters import (PixelCounter,
                                               count_dataset_pixels,
                                               unwrap_dataset)
from mmseg_ext.utils.class_weights import (check_class_weight_args,
                                           class_weight_table,
                                           compute_class_weights,
                                           save_class_weight_report)


def _as_list(module: Optional[nn.Module]) -> List[nn.Module]:
    if module is None:
        return []
    if isinstance(module, (nn.ModuleList, list, tuple)):
        return list(module)
    return [module]


def iter_head_losses(
        model: nn.Module) -> List[Tuple[str, nn.Module, nn.Module]]:
    """``(name, head, loss)`` of every loss of the decode and auxiliary heads.

    ``decode_head`` and ``auxiliary_head`` may be absent, one head or a
    ``ModuleList`` of heads; each head's ``loss_decode`` may be one loss or a
    ``ModuleList``. Model wrappers (DDP) are unwrapped.
    """
    if is_model_wrapper(model):
        model = model.module
    found = []
    for attr in ('decode_head', 'auxiliary_head'):
        heads = _as_list(getattr(model, attr, None))
        for i, head in enumerate(heads):
            losses = _as_list(getattr(head, 'loss_decode', None))
            for j, loss in enumerate(losses):
                name = attr + (f'[{i}]' if len(heads) > 1 else '')
                name += f'.loss_decode[{j}]' if len(losses) > 1 \
                    else '.loss_decode'
                found.append((name, head, loss))
    return found


@HOOKS.register_module()
class ClassWeightHook(Hook):
    """Compute class weights from the training labels and set them on losses.

    In ``before_train`` (after checkpoint loading, so also on resume) it
    counts the labelled pixels of each class over the label files of
    ``runner.train_dataloader.dataset`` (wrappers unwrapped, each label file
    once), read directly rather than through the augmentation pipeline, in
    ``num_workers`` processes with a progress bar, honouring the dataset's
    ``reduce_zero_label`` and ``label_map`` and skipping ``ignore_index`` and
    values ``>= C``. The counts are cached in
    ``{work_dir}/class_pixel_counts_{fingerprint}.json`` (the fingerprint
    covers each label file's path, size and mtime and the counter settings),
    so a resumed or repeated run reuses them and gets the same weights.
    Weights come from :func:`mmseg_ext.utils.compute_class_weights` and are
    set as a list of floats on the ``class_weight`` attribute of every loss
    in ``loss_decode`` of the decode head(s) and auxiliary head(s) (e.g.
    mmseg's ``CrossEntropyLoss``, which turns it into a tensor in
    ``forward``). It logs a table (class, pixels, frequency, weight) and
    writes ``{work_dir}/class_weights.json`` and ``class_weights.png``.

    Distributed: rank 0 counts and writes files; the counts are broadcast so
    every rank sets the same weights. The weights are also saved in the
    checkpoint's ``meta`` and, on resume, the checkpoint's weights are kept
    (with a warning if the labels now give different ones).

    Counting other label formats: see
    :class:`mmseg_ext.datasets.pixel_counters.PixelCounter`; a dataset names
    its counter with ``get_pixel_counter()`` or a ``pixel_counter`` class
    attribute, and ``counter`` here overrides both.

    Args:
        method (str): See :func:`compute_class_weights`.
            Defaults to ``'inverse_freq'``.
        beta (float): For ``'effective_num'``. Defaults to 0.9999.
        normalize (str, optional): ``'mean'``, ``'sum'`` or None.
            Defaults to ``'mean'``.
        max_ratio (float, optional): Clip so ``max(w) / min(w) <=
            max_ratio``. Defaults to None.
        num_workers (int): Counting processes. Defaults to 2.
        use_cache (bool): Read and write the count cache in the work dir.
            Defaults to True.
        counter (dict | PixelCounter, optional): ``TASK_UTILS`` config of a
            :class:`PixelCounter` used for every dataset. Defaults to None.
        apply_to (Sequence[str], optional): Only set losses whose
            ``loss_name`` is listed (e.g. ``['loss_ce']``); None: all losses
            with a ``class_weight`` attribute. Defaults to None.
        ignore_index (int): Label value that is not counted, for counters
            built from configs (a dataset's counter instance keeps its
            own). Defaults to 255.
        save_plot (bool): Write ``class_weights.png``. Defaults to True.
        priority (int | str): Hook priority. Defaults to ``'VERY_HIGH'`` so
            the weights are set before other ``before_train`` hooks.

    Raises:
        ValueError: on bad weighting options
            (:func:`mmseg_ext.utils.class_weights.check_class_weight_args`),
            a negative ``num_workers``, an empty or non-str ``apply_to`` or
            a ``priority`` mmengine does not know.
        TypeError: on a ``counter`` that is not a dict or
            :class:`PixelCounter`, a non-int ``ignore_index`` or non-bool
            flags.

    Examples:
        >>> custom_hooks = [
        ...     dict(type='ClassWeightHook', method='median_freq',
        ...          max_ratio=50)]
    """

    def __init__(self,
                 method: str = 'inverse_freq',
                 beta: float = 0.9999,
                 normalize: Optional[str] = 'mean',
                 max_ratio: Optional[float] = None,
                 num_workers: int = 2,
                 use_cache: bool = True,
                 counter: Union[Dict, PixelCounter, None] = None,
                 apply_to: Optional[Sequence[str]] = None,
                 ignore_index: int = 255,
                 save_plot: bool = True,
                 priority: Union[int, str] = 'VERY_HIGH') -> None:
        check_class_weight_args(method, beta, normalize, max_ratio)
        if isinstance(num_workers, bool) or not isinstance(
                num_workers, int) or num_workers < 0:
            raise ValueError('`num_workers` should be an int >= 0, but got '
                             f'{num_workers!r}')
        if counter is not None and not isinstance(counter,
                                                  (dict, PixelCounter)):
            raise TypeError('`counter` should be a config dict, a '
                            'PixelCounter or None, but got '
                            f'{type(counter).__name__}')
        if isinstance(apply_to, str):
            apply_to = [apply_to]
        if apply_to is not None and (
                not isinstance(apply_to, Sequence) or not apply_to
                or any(not isinstance(n, str) or not n for n in apply_to)):
            raise ValueError(
                '`apply_to` should be None (all losses with a '
                "`class_weight`) or a non-empty list of `loss_name` s, e.g. "
                f"['loss_ce'], but got {apply_to!r}")
        if isinstance(ignore_index, bool) or not isinstance(
                ignore_index, (int, np.integer)):
            raise TypeError('`ignore_index` should be an int, but got '
                            f'{ignore_index!r}')
        for name, flag in (('use_cache', use_cache), ('save_plot',
                                                      save_plot)):
            if not isinstance(flag, bool):
                raise TypeError(f'`{name}` should be True or False, but got '
                                f'{flag!r}')
        try:
            if isinstance(priority, bool):
                raise TypeError
            get_priority(priority)
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                '`priority` should be an int in [0, 100] or a name of '
                "mmengine's Priority (e.g. 'VERY_HIGH'), but got "
                f'{priority!r}') from None
        self.method = method
        self.beta = beta
        self.normalize = normalize
        self.max_ratio = max_ratio
        self.num_workers = num_workers
        self.use_cache = use_cache
        self.counter = counter
        self.apply_to = None if apply_to is None else list(apply_to)
        self.ignore_index = ignore_index
        self.save_plot = save_plot
        self.priority = priority
        self.class_weights: Optional[List[float]] = None
        self._resumed_weights: Optional[List[float]] = None

    @property
    def params(self) -> Dict[str, Any]:
        """The weight parameters, as written to ``class_weights.json``."""
        return dict(
            method=self.method,
            beta=self.beta,
            normalize=self.normalize,
            max_ratio=self.max_ratio,
            ignore_index=self.ignore_index)

    def before_train(self, runner) -> None:
        """Count (rank 0, cached), broadcast, compute and set the weights."""
        dataset = runner.train_dataloader.dataset
        leaf = unwrap_dataset(dataset)[0]
        class_names = list(getattr(leaf, 'metainfo', {}).get('classes', ()))

        payload = [None]
        if get_rank() == 0:
            try:
                counts, info = count_dataset_pixels(
                    dataset,
                    counter=self.counter,
                    ignore_index=self.ignore_index,
                    num_workers=self.num_workers,
                    cache_dir=runner.work_dir if self.use_cache else None,
                    logger=runner.logger)
                payload = [dict(counts=counts.tolist(), info=info)]
            except Exception as e:  # noqa: BLE001  (re-raised on all ranks)
                payload = [dict(error=f'{type(e).__name__}: {e}')]
                if not is_distributed():
                    raise
        broadcast_object_list(payload, src=0)
        result = payload[0]
        if 'error' in result:
            raise RuntimeError('ClassWeightHook: counting failed on rank 0: '
                               + result['error'])
        counts = np.asarray(result['counts'], dtype=np.int64)
        info = result['info']
        if not class_names:
            class_names = [str(i) for i in range(len(counts))]

        weights = compute_class_weights(
            counts,
            method=self.method,
            beta=self.beta,
            normalize=self.normalize,
            max_ratio=self.max_ratio,
            class_names=class_names)
        weights = [float(w) for w in weights]
        if self._resumed_weights is not None:
            if not np.allclose(self._resumed_weights, weights, rtol=1e-6):
                warnings.warn(
                    'ClassWeightHook: the labels now give class weights '
                    f'{weights}, but the resumed checkpoint used '
                    f'{self._resumed_weights}; keeping the checkpoint\'s '
                    'for a consistent resumed run')
            weights = list(self._resumed_weights)
        self.class_weights = weights

        set_names = self._apply(runner.model, weights)
        runner.logger.info(
            f'ClassWeightHook ({self.method}) pixel counts of '
            f'{info["num_items"]} items'
            f'{" (cached)" if info.get("cache_hit") else ""}:\n' +
            class_weight_table(class_names, counts, weights) +
            '\nclass_weight set on: ' + ', '.join(set_names))

        if get_rank() == 0:
            paths = save_class_weight_report(
                runner.work_dir,
                class_names,
                counts,
                weights,
                self.params,
                extra=dict(
                    fingerprint=info['fingerprint'],
                    num_items=info['num_items'],
                    counters=info['counters'],
                    losses=set_names),
                plot=self.save_plot)
            runner.logger.info('class weights written to ' +
                               ', '.join(paths.values()))

    def _apply(self, model: nn.Module, weights: List[float]) -> List[str]:
        set_names = []
        for name, head, loss in iter_head_losses(model):
            loss_name = getattr(loss, 'loss_name', None)
            if self.apply_to is not None and loss_name not in self.apply_to:
                continue
            if not hasattr(loss, 'class_weight'):
                continue
            num_classes = getattr(head, 'num_classes', len(weights))
            if num_classes != len(weights):
                raise ValueError(
                    f'ClassWeightHook: the dataset has {len(weights)} '
                    f'classes, but {name} is for num_classes={num_classes}; '
                    'make the head match the dataset or use `apply_to`')
            loss.class_weight = list(weights)
            set_names.append(f'{name} ({loss_name or type(loss).__name__})')
        if not set_names:
            warnings.warn(
                'ClassWeightHook: no loss of the decode or auxiliary heads '
                'has a `class_weight` attribute'
                + (f' and a `loss_name` in {self.apply_to}'
                   if self.apply_to is not None else '') +
                '; the class weights are computed but not used')
        return set_names

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the weights in ``checkpoint['meta']['class_weights']``."""
        if self.class_weights is not None:
            checkpoint.setdefault('meta', {})['class_weights'] = dict(
                weights=list(self.class_weights), **self.params)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume, remember the checkpoint's weights to keep them."""
        saved = dict(checkpoint.get('meta', {}).get('class_weights') or {})
        weights = saved.pop('weights', None)
        # Only a resumed run with the same parameters keeps them.
        if weights and saved == self.params and getattr(
                runner, '_resume', False):
            self._resumed_weights = [float(w) for w in weights]
