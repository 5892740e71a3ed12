# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The launchers' environment: torchrun, SLURM and Open MPI variables.

:func:`set_rank_env` maps ``SLURM_*`` / ``OMPI_COMM_WORLD_*`` to the
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*`` variables of torch's
``env://`` start-up, the way ``mmengine.dist.utils._init_dist_slurm`` /
``_init_dist_mpi`` do (mmengine's own functions also call
``torch.cuda.set_device``, which fails without CUDA; see
:mod:`mmseg_ext.engine.dist_launch`).
"""
import os
import shlex
import subprocess

__all__ = ['LAUNCHERS', 'set_rank_env']

#: ``--launcher`` choices, as in MMSeg's tools.
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except KeyError:
        raise KeyError(
            f'The environment variable {name} is not set; start the '
            'processes with `torchrun` (tools/dist_train.sh), `srun` or '
            '`mpirun`, matching `--launcher`.') from None


def set_rank_env(launcher: str) -> None:
    """Fill ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*`` like mmengine.

    ``pytorch`` (torchrun) sets them itself; ``slurm`` and ``mpi`` are mapped
    the way ``mmengine.dist.utils._init_dist_{slurm,mpi}`` map them.
    """
    if launcher == 'slurm':
        os.environ['RANK'] = str(_env_int('SLURM_PROCID'))
        os.environ['WORLD_SIZE'] = str(_env_int('SLURM_NTASKS'))
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            node_list = os.environ['SLURM_NODELIST']
            # quoted: a node list such as `node[01-04]` is a shell glob
            os.environ['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {shlex.quote(node_list)} | head -n1')
    elif launcher == 'mpi':
        os.environ['RANK'] = str(_env_int('OMPI_COMM_WORLD_RANK'))
        os.environ['WORLD_SIZE'] = str(_env_int('OMPI_COMM_WORLD_SIZE'))
        os.environ['LOCAL_RANK'] = str(_env_int('OMPI_COMM_WORLD_LOCAL_RANK'))
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            raise KeyError('The environment variable MASTER_ADDR is not set')
    elif launcher != 'pytorch':
        raise ValueError("`launcher` should be one of 'pytorch', 'slurm', "
                         f"'mpi' or 'none', but got {launcher!r}")
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if name not in os.environ:
            raise KeyError(
                f'The environment variable {name} is not set; start the '
                'processes with `torchrun` (e.g. tools/dist_train.sh) when '
                'using `--launcher pytorch`.')
