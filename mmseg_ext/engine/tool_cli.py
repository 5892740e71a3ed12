# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Command-line helpers of the tools: ``--launcher`` and test-time hooks."""
import os

from mmengine.config import Config

from .dist_env import LAUNCHERS
from .dist_launch import init_tool_distributed

__all__ = [
    'TRAIN_ONLY_HOOKS', 'drop_train_only_hooks', 'add_launcher_args',
    'start_tool_distributed'
]


# Hooks that only act while training. mmengine's EarlyStoppingHook builds
# the train loop (and so the training dataset) in `before_run`, also in a
# test run, which then fails where only test data exists.
TRAIN_ONLY_HOOKS = ('EarlyStoppingHook', 'ClassWeightHook')


def drop_train_only_hooks(cfg: Config) -> list:
    """Remove :data:`TRAIN_ONLY_HOOKS` from ``cfg.custom_hooks`` for testing.

    Returns:
        list[str]: Types of the removed hooks.
    """
    hooks = cfg.get('custom_hooks', None) or []
    dropped = [h.get('type') for h in hooks
               if h.get('type') in TRAIN_ONLY_HOOKS]
    cfg.custom_hooks = [h for h in hooks
                        if h.get('type') not in TRAIN_ONLY_HOOKS]
    return dropped


def add_launcher_args(parser) -> None:
    """Add mmseg's ``--launcher`` and ``--local_rank`` to a tool's parser.
    """
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='job launcher (multi-process: shards the images over ranks)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def start_tool_distributed(args, tool: str) -> str:
    """:func:`init_tool_distributed` for parsed ``args`` of
    :func:`add_launcher_args`; exits with a one-line error naming ``tool``
    when the launcher's environment is missing.

    Returns:
        str: The device of this process (``'cuda:N'`` or ``'cpu'``).
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    try:
        return init_tool_distributed(args.launcher)[2]
    except (KeyError, ValueError, RuntimeError) as err:
        raise SystemExit(f'{tool}: error: cannot start the '
                         f'{args.launcher!r} launcher: {err}') from None
