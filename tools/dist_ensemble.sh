#!/usr/bin/env bash
# Multi-process tools/ensemble.py (see tools/dist_tool.sh for the environment).
#   bash tools/dist_ensemble.sh GPUS [ensemble.py args...]
exec bash "$(dirname "$0")/dist_tool.sh" "$(dirname "$0")/ensemble.py" "$@"
