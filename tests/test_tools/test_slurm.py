# Copyright (c) mmseg_ext contributors. All rights reserved.
"""tools/slurm_train.sh and slurm_test.sh with stub ``srun``/``scontrol``.

The stub ``srun`` (written into ``tmp_path``, first on ``PATH``) starts its
``--ntasks`` tasks as local processes with SLURM's environment
(``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``, ``SLURM_NODELIST``,
...), the way a one-node allocation does; the stub ``scontrol show
hostname`` answers ``127.0.0.1``. ``--launcher slurm`` then starts a
2-process CPU (gloo) run from those variables alone: no ``RANK``,
``WORLD_SIZE`` or ``MASTER_ADDR`` is set.
"""
import json
import os
import os.path as osp
import stat

import pytest

CONFIG = 'tiny_segformer_synthimb-64x64_test-hooks.py'
NTASKS = 2

# Logs its options to $SRUN_LOG, then runs the command once per task.
SRUN = r'''#!/usr/bin/env bash
ntasks=1
while [ $# -gt 0 ]; do
    case "$1" in
        --ntasks=*) ntasks=${1#--ntasks=} ;;
        -n|--ntasks) ntasks=$2; echo "$1" >> "$SRUN_LOG"; shift ;;
        -p|--partition|-J|--job-name) echo "$1" >> "$SRUN_LOG"; shift ;;
        -*) ;;
        *) break ;;
    esac
    echo "$1" >> "$SRUN_LOG"
    shift
done
pids=()
for ((i = 0; i < ntasks; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NODEID=0 SLURM_NTASKS=$ntasks \
    SLURM_NPROCS=$ntasks SLURM_NNODES=1 SLURM_JOB_ID=4242 \
    SLURM_NODELIST='stubnode[01]' SLURM_JOB_NODELIST='stubnode[01]' \
    SLURM_TASKS_PER_NODE="$ntasks" "$@" &
    pids+=($!)
done
# --kill-on-bad-exit: a failed task ends the others (they would wait for
# it in the process group until the timeout)
status=0
for ((i = 0; i < ntasks; i++)); do
    if ! wait -n; then
        status=1
        kill "${pids[@]}" 2>/dev/null
    fi
done
exit $status
'''
# `scontrol show hostname[s] NODELIST`: the first host of the node list.
SCONTROL = r'''#!/usr/bin/env bash
echo "$*" >> "$SCONTROL_LOG"
if [ "$1" = show ] && { [ "$2" = hostname ] || [ "$2" = hostnames ]; }; then
    echo 127.0.0.1
    exit 0
fi
echo "stub scontrol: unsupported: $*" >&2
exit 1
'''


def _write_exe(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IRUSR)


def _slurm_env(tools, tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    _write_exe(bin_dir / 'srun', SRUN)
    _write_exe(bin_dir / 'scontrol', SCONTROL)
    env = tools.env(
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        SRUN_LOG=tmp_path / 'srun.log',
        SCONTROL_LOG=tmp_path / 'scontrol.log',
        MASTER_PORT=tools.free_port(),
        PYTHON=tools.python,
        GPUS=NTASKS,
        GPUS_PER_NODE=NTASKS,
        CPUS_PER_TASK=1)
    # What torchrun or an outer job would set: the ranks must come from
    # SLURM's variables only.
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        env.pop(name, None)
    return env


@pytest.fixture(scope='module')
def slurm_run(tools, toy_data_root, tmp_path_factory):
    """``bash tools/slurm_train.sh debug tiny CONFIG WORK_DIR`` for 2
    iterations on 2 local CPU tasks."""
    tmp_path = tmp_path_factory.mktemp('slurm')
    work_dir = str(tmp_path / 'work')
    env = _slurm_env(tools, tmp_path)
    proc = tools.run([
        'bash', 'tools/slurm_train.sh', 'debug', 'tiny-job',
        osp.join(tools.config_dir, CONFIG), work_dir, '--cfg-options',
        *tools.data_root_options(toy_data_root), 'train_cfg.max_iters=2'
    ], env=env, timeout=240)
    return tmp_path, work_dir, env, proc


def test_slurm_train_two_tasks(slurm_run, tools):
    tmp_path, work_dir, _, proc = slurm_run
    assert proc.returncode == 0, tools.describe(proc)
    srun_args = (tmp_path / 'srun.log').read_text().split()
    for arg in ('-p', 'debug', '--job-name=tiny-job', f'--ntasks={NTASKS}',
                f'--ntasks-per-node={NTASKS}', '--cpus-per-task=1',
                f'--gres=gpu:{NTASKS}', '--kill-on-bad-exit=1'):
        assert arg in srun_args
    # Both ranks asked scontrol for the master host of the node list.
    assert (tmp_path / 'scontrol.log').read_text().split('\n').count(
        'show hostname stubnode[01]') == NTASKS
    assert "using the 'gloo' backend" in proc.stdout
    assert 'Iter(train) [2/2]' in proc.stdout
    records = []
    for rank in range(NTASKS):
        with open(osp.join(work_dir, f'rank{rank}_weights.json')) as f:
            records.append(json.load(f))
    assert [r['world_size'] for r in records] == [NTASKS] * NTASKS
    assert [r['end_iter'] for r in records] == [2] * NTASKS
    # One DDP run: the gradients were averaged over both ranks.
    assert records[0]['param_sum'] == records[1]['param_sum']
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))


def test_slurm_test_two_tasks(slurm_run, tools, toy_data_root):
    tmp_path, work_dir, env, train = slurm_run
    assert train.returncode == 0, tools.describe(train)
    env = dict(env, MASTER_PORT=str(tools.free_port()), GRES='')
    os.remove(tmp_path / 'srun.log')
    proc = tools.run([
        'bash', 'tools/slurm_test.sh', 'debug', 'tiny-test',
        osp.join(tools.config_dir, CONFIG),
        osp.join(work_dir, 'iter_2.pth'), '--work-dir', work_dir,
        '--cfg-options', *tools.data_root_options(toy_data_root)
    ], env=env, timeout=180)
    assert proc.returncode == 0, tools.describe(proc)
    # GRES='' (CPU-only nodes): no --gres option
    assert not any(a.startswith('--gres')
                   for a in (tmp_path / 'srun.log').read_text().split())
    # 4 val images over 2 ranks: 2 iterations each.
    assert 'Iter(test) [2/2]' in proc.stdout
    assert 'mIoU' in proc.stdout


def test_slurm_train_usage(tools):
    proc = tools.run(['bash', 'tools/slurm_train.sh', 'debug', 'job'])
    assert proc.returncode == 2
    assert 'usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG ' \
        'WORK_DIR' in proc.stderr
