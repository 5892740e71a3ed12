#!/usr/bin/env bash
# Testing on a SLURM cluster, one task per GPU (MMSeg's slurm_test.sh):
#   [GPUS=8] bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT \
#       [test.py args...]
# Environment: GPUS (4: tasks in all), GPUS_PER_NODE (4), CPUS_PER_TASK (5),
# SRUN_ARGS (more srun options), PY_ARGS (more test.py arguments), GRES
# (gpu:GPUS_PER_NODE; empty for CPU-only nodes), PYTHON (python).
# See slurm_train.sh for how the tasks find each other.
set -x
if [ $# -lt 4 ]; then
    echo "usage: bash $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
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
    "$PYTHON" -u "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" \
    --launcher="slurm" ${PY_ARGS} "${@:5}"
