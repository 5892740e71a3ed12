# Copyright (c) mmseg_ext contributors. All rights reserved.
"""What a config's model costs: parameters, FLOPs, images/s, peak memory.

The model is built from the config on the CPU without pretrained weights
(``pretrained`` and every ``init_cfg`` removed: nothing is downloaded) and
fed an ``(1, in_channels, H, W)`` input at the config's own channels and
crop. MMSeg's ``tools/analysis_tools/get_flops.py`` does the same count
(mmengine's ``get_model_complexity_info``) but hard-codes 3 input channels,
wrong for 1-channel X-rays and 4-modality MRI. Used by
:mod:`mmseg_ext.apis.compare_runs`.
"""
import copy
import time
import warnings
from typing import Optional, Tuple

import numpy as np

__all__ = ['crop_of', 'model_input_shape', 'model_complexity', 'measure_speed']


def crop_of(cfg) -> Optional[Tuple[int, int]]:
    """``(H, W)``: the data preprocessor's ``size``, ``crop_size``, or the
    train pipeline's ``RandomCrop``."""
    model = cfg.get('model', {}) or {}
    size = (model.get('data_preprocessor') or {}).get('size')
    if size is None:
        size = cfg.get('crop_size')
    if size is None:
        pipeline = ((cfg.get('train_dataloader') or {}).get('dataset')
                    or {}).get('pipeline') or []
        for step in pipeline:
            if isinstance(step, dict) and 'crop_size' in step:
                size = step['crop_size']
    if size is None:
        return None
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    return int(size[0]), int(size[1])


def _no_pretrained(node):
    """A copy of a model config without ``pretrained`` and ``init_cfg``."""
    if isinstance(node, dict):
        return {k: _no_pretrained(v) for k, v in node.items()
                if k not in ('pretrained', 'init_cfg')}
    if isinstance(node, list):
        return [_no_pretrained(v) for v in node]
    return node


def _build_model(cfg):
    from mmengine.config import ConfigDict
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope, init_default_scope
    from mmseg.registry import MODELS
    model_cfg = ConfigDict(
        _no_pretrained(copy.deepcopy(cfg.to_dict()['model'])))
    scope = cfg.get('default_scope', 'mmseg') or 'mmseg'
    if DefaultScope.get_current_instance() is None:
        init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')  # deprecations of mmseg's builders
        model = MODELS.build(model_cfg)
    model = revert_sync_batchnorm(model)
    return model.eval()


def model_input_shape(cfg, crop=None) -> Tuple[int, int, int]:
    """``(C, H, W)``: the backbone's ``in_channels`` (default 3) and the
    crop (:func:`crop_of`, or ``crop``).

    Raises:
        ValueError: if the config gives no crop and ``crop`` is None.
    """
    backbone = (cfg.get('model', {}) or {}).get('backbone') or {}
    crop = crop or crop_of(cfg)
    if crop is None:
        raise ValueError('the config gives no crop size '
                         '(model.data_preprocessor.size, crop_size or a '
                         'RandomCrop)')
    return (int(backbone.get('in_channels', 3) or 3), int(crop[0]),
            int(crop[1]))


def model_complexity(cfg, crop: Optional[Tuple[int, int]] = None) -> dict:
    """Parameters and FLOPs of a config's model at its channels and crop.

    Built on the CPU without pretrained weights (``pretrained`` and every
    ``init_cfg`` removed) and counted by mmengine's
    ``get_model_complexity_info`` (fvcore-style: one multiply-add is one
    FLOP) on the tensor forward, as MMSeg's ``get_flops.py`` does, but with
    an ``(1, in_channels, H, W)`` input from the config.

    Args:
        cfg (Config): The run's config.
        crop (tuple[int, int], optional): ``(H, W)``; defaults to the
            config's crop.

    Returns:
        dict: ``params`` and ``flops`` (ints), ``input_shape``
        (``[C, H, W]``).
    """
    import torch
    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    shape = model_input_shape(cfg, crop)
    model = _build_model(cfg)
    if hasattr(model, 'auxiliary_head'):
        model.auxiliary_head = None  # training only (as get_flops.py)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('ERROR')  # "unsupported operator" notes per op type
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            result = get_model_complexity_info(
                model, inputs=torch.rand(1, *shape), show_table=False,
                show_arch=False)
    finally:
        logger.setLevel(level)
    return dict(params=int(result['params']), flops=int(result['flops']),
                input_shape=list(shape))


def _rss_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_name() -> str:
    import platform
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or 'cpu'


def measure_speed(cfg,
                  device: Optional[str] = None,
                  iters: int = 10,
                  warmup: int = 2,
                  crop: Optional[Tuple[int, int]] = None) -> dict:
    """Inference images/s and peak memory of a config's model.

    ``model.predict`` (the config's ``test_cfg``: whole / slide, flip) on
    random ``(1, in_channels, H, W)`` inputs at the crop, batch 1, after
    ``warmup`` calls; images/s is one over the median time of a call (the
    median: robust to other processes taking the CPU now and then). Peak
    memory: CUDA ``max_memory_allocated`` during the timed calls; CPU: the
    growth of the process' peak resident set (``VmHWM``, reset through
    ``/proc/self/clear_refs`` where allowed), an upper bound of what the
    model needed.

    Returns:
        dict: ``images_per_s``, ``peak_memory_mb``, ``device`` (its name,
        e.g. ``'NVIDIA H200'`` or the CPU model), ``iters``.
    """
    import torch
    if iters < 1:
        raise ValueError(f'`iters` should be >= 1, but got {iters}')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    shape = model_input_shape(cfg, crop)
    model = _build_model(cfg).to(device)
    inputs = torch.rand(1, *shape, device=device)
    cuda = str(device).startswith('cuda')
    with torch.no_grad():
        for _ in range(warmup):
            model.predict(inputs)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        else:
            try:
                with open('/proc/self/clear_refs', 'w') as f:
                    f.write('5')  # resets VmHWM to the current RSS
            except OSError:
                pass
            base = _rss_kib('VmRSS')
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            model.predict(inputs)
            if cuda:
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    if cuda:
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        name = torch.cuda.get_device_name(device)
    else:
        hwm = _rss_kib('VmHWM')
        peak = None if hwm is None or base is None else max(
            0, hwm - base) / 1024
        threads = torch.get_num_threads()
        name = (f'CPU {_cpu_name()} ({threads} thread'
                f'{"s" if threads != 1 else ""})')
    return dict(images_per_s=1.0 / max(float(np.median(times)), 1e-12),
                peak_memory_mb=peak, device=name, iters=iters)
