# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Process-group start-up and teardown for our tools (CPU: ``gloo``).

mmengine 0.10's launch path assumes one GPU per process: ``init_dist`` calls
``torch.cuda.set_device(LOCAL_RANK)`` and ``Runner.wrap_model`` gives
``MMDistributedDataParallel`` ``device_ids=[LOCAL_RANK]``; both fail on a
machine without CUDA. :func:`setup_cpu_distributed` makes multi-process
training and testing work there with the ``gloo`` backend, without patching
mmengine: it only edits the config and initialises the process group before
the ``Runner`` is built (``Runner.setup_env`` calls ``init_dist`` only when no
process group exists yet).
"""
import datetime
import logging
import os
from typing import Any, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log

from .dist_env import set_rank_env

__all__ = [
    'replace_gpu_only_norms', 'setup_cpu_distributed',
    'init_cpu_process_group', 'init_tool_distributed',
    'teardown_distributed', 'abort_distributed'
]

# Norm layers that need CUDA (``SyncBN`` is ``torch.nn.SyncBatchNorm``,
# ``MMSyncBN`` is mmcv's) and the CPU layer that replaces them.
_GPU_ONLY_NORMS = ('SyncBN', 'MMSyncBN')
_CPU_NORM = 'BN'


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def replace_gpu_only_norms(node: Any, path: str = 'cfg') -> list:
    """Replace ``SyncBN``/``MMSyncBN`` norm configs by ``BN`` in place.

    Walks dicts and lists recursively; a dict whose ``type`` is one of them
    gets ``type='BN'`` (other keys such as ``requires_grad`` are kept).

    Args:
        node: A config node (``Config``, dict, list, tuple or a leaf).
        path (str): Dotted name of ``node``, for the returned report.

    Returns:
        list[str]: Dotted paths of the replaced norm configs.
    """
    replaced = []
    if isinstance(node, dict):
        if node.get('type') in _GPU_ONLY_NORMS:
            node['type'] = _CPU_NORM
            replaced.append(path)
        for key, value in node.items():
            replaced += replace_gpu_only_norms(value, f'{path}.{key}')
    elif isinstance(node, list):
        for i, value in enumerate(node):
            replaced += replace_gpu_only_norms(value, f'{path}.{i}')
    return replaced


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a multi-process run on CPU (``gloo``); no-op with CUDA.

    Call it after the config is loaded and ``--cfg-options`` merged, before
    the ``Runner`` is built. When ``launcher != 'none'`` and
    ``torch.cuda.is_available()`` is False it:

    1. sets ``cfg.env_cfg.dist_cfg.backend = 'gloo'``;
    2. initialises the default process group with ``gloo`` (``env://``, from
       torchrun's / SLURM's / Open MPI's variables), so ``Runner.setup_env``
       skips mmengine's ``init_dist`` and its ``torch.cuda.set_device``;
    3. sets ``cfg.model_wrapper_cfg`` so ``MMDistributedDataParallel`` gets
       ``device_ids=None`` (CPU modules): ``Runner.wrap_model`` passes
       ``device_ids=[LOCAL_RANK]`` only as a default argument, and a key of
       the wrapper config wins over default arguments. A user wrapper config
       is kept, with ``device_ids`` forced to None;
    4. replaces ``SyncBN``/``MMSyncBN`` norm configs by ``BN`` and drops
       ``cfg.sync_bn`` (synchronised BN needs CUDA), with a warning: the
       statistics of every BN layer are then per process.

    Args:
        cfg (Config): The full config; edited in place.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: True if the CPU set-up was applied.
    """
    if launcher == 'none' or _cuda_available():
        return False

    if cfg.get('env_cfg', None) is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg', None) is None:
        cfg.env_cfg.dist_cfg = dict()
    dist_cfg = cfg.env_cfg.dist_cfg
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        print_log(
            f"No CUDA device: using the 'gloo' backend instead of "
            f"{dist_cfg.get('backend', 'nccl')!r} for distributed training.",
            logger='current', level=logging.WARNING)
    dist_cfg.backend = 'gloo'

    replaced = replace_gpu_only_norms(
        cfg._cfg_dict if isinstance(cfg, Config) else cfg)
    if replaced:
        print_log(
            'No CUDA device: SyncBN needs GPUs, so these norm layers are '
            f"plain 'BN' (per-process statistics): {', '.join(replaced)}",
            logger='current', level=logging.WARNING)
    if cfg.get('sync_bn', None) is not None:
        print_log(f'No CUDA device: ignoring `sync_bn={cfg.sync_bn!r}`.',
                  logger='current', level=logging.WARNING)
        cfg.sync_bn = None

    wrapper_cfg = cfg.get('model_wrapper_cfg', None)
    if wrapper_cfg is None:
        # What Runner.wrap_model builds without a wrapper config, on CPU.
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif wrapper_cfg.get('type', 'MMDistributedDataParallel') in (
            'MMDistributedDataParallel', 'MMSeparateDistributedDataParallel'):
        if wrapper_cfg.get('device_ids', None) is not None:
            print_log(
                'No CUDA device: `model_wrapper_cfg.device_ids` set to None.',
                logger='current', level=logging.WARNING)
        wrapper_cfg['device_ids'] = None

    init_cpu_process_group(launcher, timeout=dist_cfg.get('timeout', None))
    return True


def init_cpu_process_group(launcher: str,
                           timeout: Optional[float] = None) -> None:
    """Initialise the default process group with ``gloo`` (idempotent).

    Args:
        launcher (str): ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        timeout (float, optional): Seconds, as in mmengine's
            ``env_cfg.dist_cfg.timeout``. Defaults to torch's default.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        return
    set_rank_env(launcher)
    kwargs = {}
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(
        backend='gloo',
        init_method='env://',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)


def teardown_distributed() -> None:
    """Wait for every rank, then destroy the default process group.

    mmengine never destroys it; with ``gloo`` a rank that exits while the
    group is alive can abort in the group's destructor ("terminate called
    without an active exception", SIGABRT) after its work is done, failing
    the torchrun job. No-op when no process group exists.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def init_tool_distributed(launcher: str,
                          timeout: Optional[float] = None) -> tuple:
    """Start the process group of a tool that runs no ``Runner``.

    Used by ``tools/ensemble.py`` and ``tools/pseudo_label.py`` under
    ``torchrun`` (``--launcher pytorch``), SLURM or MPI: with CUDA,
    mmengine's ``init_dist`` (NCCL, one GPU per process, device set to
    ``LOCAL_RANK``); without, :func:`init_cpu_process_group` (gloo).

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        timeout (float, optional): Process-group timeout in seconds.

    Returns:
        tuple[int, int, str]: ``(rank, world_size, device)``; the device is
        ``'cuda:{LOCAL_RANK}'`` with CUDA, else ``'cpu'`` (``'none'``:
        ``(0, 1, 'cuda:0' or 'cpu')``).
    """
    if launcher == 'none':
        return 0, 1, 'cuda:0' if _cuda_available() else 'cpu'
    if _cuda_available():
        from mmengine.dist import init_dist
        if not (torch_dist.is_available() and torch_dist.is_initialized()):
            kwargs = {}
            if timeout is not None:
                kwargs['timeout'] = datetime.timedelta(seconds=timeout)
            init_dist(launcher, backend='nccl', **kwargs)
        device = f'cuda:{torch.cuda.current_device()}'
    else:
        init_cpu_process_group(launcher, timeout=timeout)
        device = 'cpu'
    return torch_dist.get_rank(), torch_dist.get_world_size(), device


def abort_distributed() -> None:
    """Destroy the default process group without waiting for other ranks
    (the error path: a rank that failed alone must not hang in a barrier).
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
