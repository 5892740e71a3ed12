# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Mixed precision for ``tools/train.py``: ``--amp`` and its CUDA check.

mmengine's ``AmpOptimWrapper`` (fp16 autocast + ``GradScaler``) supports no
CPU; these helpers fail before the ``Runner`` is built, with the fix.
"""
import logging

import torch
from mmengine.config import Config
from mmengine.logging import print_log

__all__ = ['AmpUnavailableError', 'enable_amp', 'check_amp_config']


class AmpUnavailableError(RuntimeError):
    """Mixed precision was asked for, but there is no CUDA device."""


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def enable_amp(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to ``AmpOptimWrapper`` (``--amp``).

    Same as MMSeg's ``tools/train.py --amp`` (``loss_scale='dynamic'``), but
    checks first that a CUDA device exists: mmengine's ``AmpOptimWrapper``
    (fp16 autocast + ``GradScaler``) supports no CPU.

    Args:
        cfg (Config): The full config; edited in place.

    Raises:
        AmpUnavailableError: if ``torch.cuda.is_available()`` is False.
        ValueError: if the config's optimizer wrapper is neither
            ``OptimWrapper`` nor ``AmpOptimWrapper``.
    """
    if not _cuda_available():
        raise AmpUnavailableError(
            '--amp needs a CUDA device; torch.cuda.is_available() is False '
            'here (mmengine\'s AmpOptimWrapper does not support CPU). Train '
            'without --amp (fp32) on this machine, or run on a GPU.')
    wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.',
                  logger='current', level=logging.WARNING)
        return
    if wrapper_type != 'OptimWrapper':
        raise ValueError(
            '`--amp` is only supported when `optim_wrapper.type` is '
            f'`OptimWrapper`, but got {wrapper_type!r}.')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def check_amp_config(cfg: Config) -> None:
    """Fail early when the config itself asks for AMP on a CPU-only machine.

    Raises:
        AmpUnavailableError: if ``optim_wrapper.type`` is
            ``AmpOptimWrapper`` and there is no CUDA device.
    """
    optim_wrapper = cfg.get('optim_wrapper', None) or {}
    if optim_wrapper.get('type') == 'AmpOptimWrapper' and \
            not _cuda_available():
        raise AmpUnavailableError(
            "optim_wrapper.type='AmpOptimWrapper' (mixed precision) needs a "
            'CUDA device; torch.cuda.is_available() is False here. Use the '
            "config's fp32 variant (`type='OptimWrapper'`, e.g. the config "
            'it inherits from) on this machine, or run on a GPU.')
