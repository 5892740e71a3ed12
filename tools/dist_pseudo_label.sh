#!/usr/bin/env bash
# Multi-process tools/pseudo_label.py (see tools/dist_tool.sh for the environment).
#   bash tools/dist_pseudo_label.sh GPUS [pseudo_label.py args...]
exec bash "$(dirname "$0")/dist_tool.sh" "$(dirname "$0")/pseudo_label.py" "$@"
