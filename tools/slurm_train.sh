#!/usr/bin/env bash
# Training on a SLURM cluster, one task per GPU (MMSeg's slurm_train.sh):
#   [GPUS=8] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR \
#       [train.py args...]
# Environment: GPUS (4: tasks in all), GPUS_PER_NODE (4), CPUS_PER_TASK (5),
# SRUN_ARGS (more srun options), PY_ARGS (more train.py arguments), GRES
# (gpu:GPUS_PER_NODE; empty for CPU-only nodes), PYTHON (python).
# Each task runs train.py --launcher slurm: rank, world size and master
# address come from SLURM_PROCID, SLURM_NTASKS and SLURM_NODELIST
# (`scontrol show hostname`); MASTER_PORT (29500) from the environment. On
# nodes without CUDA the tasks train on CPU with the gloo backend.
set -x
if [ $# -lt 4 ]; then
    echo "usage: bash $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES-gpu:${GPUS_PER_NODE}}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=${PY_ARGS:-""}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    ${GRES:+--gres=${GRES}} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$(dirname "$0")/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher="slurm" ${PY_ARGS} "${@:5}"
