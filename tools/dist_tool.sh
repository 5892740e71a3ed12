#!/usr/bin/env bash
# Run a multi-process tool (one that takes --launcher) with torchrun: one
# process per GPU; on a machine without CUDA, GPUS processes on CPU (gloo).
#   bash tools/dist_tool.sh TOOL.py GPUS [tool args...]
# e.g. bash tools/dist_tool.sh tools/ensemble.py 4 --member a.py a.pth ...
# Environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR
# (127.0.0.1), PYTHON (python).
set -e
if [ $# -lt 2 ]; then
    echo "usage: bash $0 TOOL.py GPUS [tool args...]" >&2
    exit 2
fi
TOOL=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$TOOL" \
    --launcher pytorch \
    "${@:3}"
