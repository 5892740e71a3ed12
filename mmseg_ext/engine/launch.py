# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Launch helpers of the tools, one import for all of them.

Each concern has its own module; this one re-exports their names, so
``from mmseg_ext.engine.launch import X`` keeps working:

- :mod:`mmseg_ext.engine.amp`: ``--amp`` and the CUDA check of AMP configs;
- :mod:`mmseg_ext.engine.dist_env`: torchrun / SLURM / Open MPI variables
  to ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``... (``--launcher``);
- :mod:`mmseg_ext.engine.dist_launch`: process-group start-up (``gloo`` and
  CPU DDP without CUDA) and teardown;
- :mod:`mmseg_ext.engine.tool_cli`: ``--launcher`` arguments of the tools
  and the hooks dropped at test time.
"""
from .amp import AmpUnavailableError, check_amp_config, enable_amp
from .dist_env import LAUNCHERS, set_rank_env
from .dist_launch import (abort_distributed, init_cpu_process_group,
                          init_tool_distributed, replace_gpu_only_norms,
                          setup_cpu_distributed, teardown_distributed)
from .tool_cli import (TRAIN_ONLY_HOOKS, add_launcher_args,
                       drop_train_only_hooks, start_tool_distributed)

__all__ = [
    'AmpUnavailableError', 'check_amp_config', 'enable_amp', 'LAUNCHERS',
    'set_rank_env', 'abort_distributed', 'init_cpu_process_group',
    'init_tool_distributed', 'replace_gpu_only_norms',
    'setup_cpu_distributed', 'teardown_distributed', 'TRAIN_ONLY_HOOKS',
    'add_launcher_args', 'drop_train_only_hooks', 'start_tool_distributed'
]
