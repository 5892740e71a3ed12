# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Command-line helpers of the tools: ``--launcher``, test-time hooks and
one-line errors (:func:`run_tool`)."""
import errno
import functools
import math
import os
import os.path as osp
import sys
import traceback
from typing import Any, Callable, Optional, Sequence

from mmengine.config import Config

from mmseg_ext.utils.dist import RankError
from mmseg_ext.utils.errors import InputError
from .amp import AmpUnavailableError
from .dist_env import LAUNCHERS
from .dist_launch import abort_distributed, init_tool_distributed

__all__ = [
    'TRAIN_ONLY_HOOKS', 'drop_train_only_hooks', 'add_launcher_args',
    'start_tool_distributed', 'add_debug_arg', 'run_tool', 'tool_main', 'load_config',
    'note_config', 'note_partial', 'describe_error', 'check_unit_interval',
    'EXIT_ERROR', 'EXIT_INTERRUPTED', 'ToolError'
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
    :func:`add_launcher_args`.

    Raises:
        ValueError: The launcher's environment is missing (one line under
            :func:`run_tool`; ``tool`` is kept for the callers' signature).

    Returns:
        str: The device of this process (``'cuda:N'`` or ``'cpu'``).
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    try:
        return init_tool_distributed(args.launcher)[2]
    except (KeyError, ValueError, RuntimeError) as err:
        # One line through run_tool: `{tool}: error: cannot start ...`.
        raise ValueError(f'cannot start the {args.launcher!r} launcher: '
                         f'{err}') from None


# --------------------------------------------------------------------------
# One-line errors
#
# Every tool's ``__main__`` is ``run_tool(main, 'tools/x.py')``: the
# project's errors (bad files and values, missing paths, configs naming
# unregistered types, another rank's failure) become ONE line on stderr,
#
#     tools/x.py: error: {message}
#
# and exit code 2, as argparse does for a bad argument; ``--debug`` prints
# the traceback first. Other exceptions (bugs) keep their traceback.
# Multi-process runs: only rank 0 prints. The tools route the work of every
# rank through `sync_errors` / `run_on_main`, so rank 0 holds either its own
# error (the same one when every rank failed alike) or a RankError naming
# the ranks that failed and their messages: one line per job, not one per
# rank. With ``--debug`` every rank prints its traceback.

#: Exit status of a handled error (argparse's for a bad argument).
EXIT_ERROR = 2
#: Exit status after Ctrl-C (128 + SIGINT, what a shell reports).
EXIT_INTERRUPTED = 130

_state = dict(config=None, partial=None)


class ToolError(Exception):
    """A failure a tool reports as its one line (e.g. a child process that
    failed and already printed its own log); handled by :func:`run_tool`.
    """


def add_debug_arg(parser) -> None:
    """Add ``--debug``: show the traceback of an error (see
    :func:`run_tool`)."""
    parser.add_argument(
        '--debug',
        action='store_true',
        help='on an error, print the traceback before the one-line message')


def note_config(path: Optional[str]) -> None:
    """Remember the config a tool runs, so that a type the config names
    that is not registered is reported as ``config {path}: ...``."""
    _state['config'] = path


def note_partial(text: Optional[str]) -> None:
    """Say which outputs are complete if the tool fails from now on.

    Multi-image tools call it before their image loop, e.g.
    ``note_partial(f'masks written so far in {out_dir} are complete; the CSV
    was not written')``; :func:`run_tool` appends it to the error line.
    ``None`` clears it.
    """
    _state['partial'] = text


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile(path)`` (and ``merge_from_dict(cfg_options)``) with
    errors that name ``path``.

    Raises:
        FileNotFoundError: ``path`` (or a ``_base_`` of it) does not exist.
        ValueError: ``path`` is not a py/yml/yaml/json file, or does not
            parse.
    """
    note_config(path)
    if not osp.exists(path):
        raise FileNotFoundError(errno.ENOENT, 'config file does not exist; '
                                'check the path', path)
    if osp.isdir(path):
        raise IsADirectoryError(errno.EISDIR, 'config is a directory; give '
                                'a .py config file', path)
    try:
        cfg = Config.fromfile(path)
    except FileNotFoundError as err:  # a missing _base_
        raise FileNotFoundError(f'config {path}: {err}') from err
    except (SyntaxError, OSError, ImportError, NameError) as err:
        raise ValueError(f'config {path} cannot be loaded: '
                         f'{type(err).__name__}: {_first_line(err)}') from err
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_OS_FIXES = {
    FileNotFoundError: 'check the path',
    FileExistsError: 'choose another path or remove it',
    PermissionError: 'check its permissions or choose another path',
    IsADirectoryError: 'expected a file, not a folder',
    NotADirectoryError: 'expected a folder, not a file',
}
_HANDLED = (ValueError, OSError, RankError, AmpUnavailableError, ToolError)


def is_registry_error(err: BaseException) -> bool:
    """Whether ``err`` is mmengine's "X is not in the ... registry"."""
    return isinstance(err, KeyError) and 'registry' in str(err) and \
        'is not in the' in str(err)


def describe_error(err: BaseException) -> str:
    """The one-line message of a handled error (see :func:`run_tool`)."""
    if isinstance(err, OSError) and err.filename is not None and \
            not isinstance(err, InputError):
        reason = err.strerror or _first_line(err)
        fix = next((f for cls, f in _OS_FIXES.items()
                    if isinstance(err, cls)), None)
        if fix and fix not in reason:
            reason = f'{reason}; {fix}'
        where = str(err.filename)
        if err.filename2 is not None:
            where = f'{where} -> {err.filename2}'
        return f'{where}: {reason}'
    if is_registry_error(err):
        text = _first_line(err).strip('"\'')
        text = text.split('. ')[0]
        config = _state['config']
        head = f'config {config}: ' if config else ''
        return (f'{head}{text} (is not registered: check the spelling of '
                'the type, and that custom_imports imports its package)')
    # repr() of a value keeps messages one line; join what is left.
    return ' '.join(str(err).split()) or type(err).__name__


def _rank() -> int:
    try:
        from mmengine.dist import get_dist_info
        rank = get_dist_info()[0]
    except Exception:  # noqa: B902 (no process group at all)
        rank = 0
    if rank == 0:
        rank = int(os.environ.get('RANK', '0') or 0)
    return rank


def run_tool(main: Callable[..., Any],
             prog: str,
             argv: Optional[Sequence[str]] = None) -> Any:
    """Call ``main(argv)``; turn a handled error into one line and exit 2.

    Handled: :class:`~mmseg_ext.utils.errors.InputError` and any
    ``ValueError``, ``OSError`` (``FileNotFoundError``, ``FileExistsError``,
    ``PermissionError``, ``IsADirectoryError``, ``NotADirectoryError``, ...;
    with a file name the line names it and the fix),
    :class:`~mmseg_ext.utils.dist.RankError`, ``AmpUnavailableError``,
    :class:`ToolError` and
    mmengine's ``KeyError`` for a type that is not registered (named with
    the config of :func:`load_config`). ``KeyboardInterrupt`` prints one
    line and exits 130. Anything else (a bug) propagates with its
    traceback. ``SystemExit`` (argparse, ``sys.exit``) passes through.

    The line is ``{prog}: error: {message}`` (argparse's style), followed
    by the note of :func:`note_partial` if one is set. Only rank 0 of a
    multi-process run prints it (see the module comment). With ``--debug``
    in ``argv`` the traceback is printed before it.

    Args:
        main (Callable): The tool's ``main(argv=None)``.
        prog (str): The tool as users call it, e.g. ``'tools/ensemble.py'``.
        argv (Sequence[str], optional): Arguments; defaults to
            ``sys.argv[1:]``.

    Returns:
        What ``main`` returns.

    Raises:
        SystemExit: 2 after a handled error, 130 after Ctrl-C.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in args
    _state.update(config=None, partial=None)
    try:
        return main(argv)
    except KeyboardInterrupt:
        _abort()
        partial = _state['partial']
        print(f'{prog}: interrupted' + (f' ({partial})' if partial else ''),
              file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except BaseException as err:  # noqa: B902 (filtered right below)
        if not (isinstance(err, _HANDLED) or is_registry_error(err)):
            raise
        rank = _rank()
        if debug:
            prefix = f'[rank {rank}] ' if rank else ''
            sys.stderr.write(prefix + ''.join(traceback.format_exception(
                type(err), err, err.__traceback__)))
        _abort()
        if rank == 0:
            line = f'{prog}: error: {describe_error(err)}'
            if _state['partial']:
                line = f'{line} ({_state["partial"]})'
            print(line, file=sys.stderr, flush=True)
        raise SystemExit(EXIT_ERROR) from None


def tool_main(prog: str) -> Callable:
    """Decorator form of :func:`run_tool` for a tool's ``main(argv=None)``:
    calling the decorated ``main`` runs it through :func:`run_tool`; the
    plain function stays as ``main.__wrapped__`` (errors propagate).

    Examples:
        >>> @tool_main('tools/x.py')
        ... def main(argv=None):
        ...     args = parse_args(argv)
        ...     ...
        >>> if __name__ == '__main__':
        ...     main()
    """

    def decorate(main: Callable) -> Callable:

        @functools.wraps(main)
        def wrapped(argv: Optional[Sequence[str]] = None) -> Any:
            return run_tool(main, prog, argv)

        return wrapped

    return decorate


def _abort() -> None:
    """Leave the process group without waiting for the other ranks."""
    try:
        abort_distributed()
    except Exception:  # noqa: B902 (already failing; keep the first error)
        pass


def check_unit_interval(values, option: str, *, closed_right: bool = True):
    """Check that every value of ``option`` is a finite number in [0, 1]
    ([0, 1) when ``closed_right`` is False). For a tool's ``parse_args``:
    pass a message to ``parser.error``.

    Returns:
        str or None: The message, or None when all values are fine.
    """
    if values is None:
        return None
    if not isinstance(values, (list, tuple)):
        values = [values]
    hi = ']' if closed_right else ')'
    bad = [v for v in values if not (math.isfinite(v) and 0 <= v and (
        v <= 1 if closed_right else v < 1))]
    if bad:
        return (f'{option} should be in [0, 1{hi}, but got '
                f'{", ".join(repr(v) for v in bad)}')
    return None
