# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Multi-process helpers of the streaming tools (ensemble, pseudo-labels).

``tools/ensemble.py`` and ``tools/pseudo_label.py`` are not mmengine
``Runner`` jobs (they stream images through several models or probability
folders), so they cannot use a metric's ``collect_results``. Under
``torchrun`` they shard the images by rank (:func:`shard`), let every rank
write its per-image files, and bring everything that ends up in ONE output
file (the submission CSV, ``train.csv``, ``manifest.json``, threshold sums)
to rank 0 with the helpers here:

- :func:`gather_chunks` streams each rank's records to rank 0 in bounded
  chunks (mmengine's ``collect_results`` holds every rank's whole list in
  memory at once; a submission of 2048² masks is hundreds of megabytes);
- :func:`sync_errors` / :func:`run_on_main` turn an exception on one rank
  into an error on every rank, instead of the other ranks waiting for it at
  the next collective until the process-group timeout.

All of them are no-ops (plain local calls) without a process group, so the
single-process path runs the same code.
"""
from typing import Any, Callable, Optional, Sequence, Tuple

from mmengine.dist import (all_gather_object, barrier, broadcast_object_list,
                           gather_object, get_dist_info)


class RankError(RuntimeError):
    """Another rank of a multi-process run failed; the message names it."""


def dist_info() -> Tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    return get_dist_info()


def is_main_process() -> bool:
    return dist_info()[0] == 0


def shard(num_items: int,
          rank: Optional[int] = None,
          world_size: Optional[int] = None) -> range:
    """Positions of ``num_items`` that ``rank`` handles: every
    ``world_size``-th one, starting at ``rank`` (balanced to within one).

    Args:
        num_items (int): Length of the full list.
        rank (int, optional): Defaults to the current rank.
        world_size (int, optional): Defaults to the current world size.
    """
    if rank is None or world_size is None:
        rank, world_size = dist_info()
    if not 0 <= rank < world_size:
        raise ValueError(f'`rank` should be in [0, world_size={world_size}), '
                         f'but got {rank}')
    return range(rank, num_items, world_size)


def _describe(err: BaseException) -> str:
    return f'{type(err).__name__}: {err}'


def sync_errors(error: Optional[BaseException]) -> None:
    """Raise on every rank if any rank failed; every rank must call it.

    A rank passes the exception it caught (or None). The failing rank
    re-raises its own exception; the others raise :class:`RankError`
    naming the failed rank(s) and their messages. Without a process group
    it just re-raises ``error``.

    Example:
        >>> err = None
        >>> try:
        ...     work_on_my_shard()
        ... except Exception as e:  # noqa: B902
        ...     err = e
        >>> sync_errors(err)  # all ranks pass here or all raise
    """
    _, world_size = dist_info()
    if world_size > 1:
        messages = all_gather_object(None if error is
                                     None else _describe(error))
    else:
        messages = [None if error is None else _describe(error)]
    if error is not None:
        raise error
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if failed:
        raise RankError('; '.join(f'rank {r} failed: {m}' for r, m in failed))


def run_on_main(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only and broadcast its result (or its failure).

    Returns:
        The result of ``fn`` on every rank.

    Raises:
        The exception of ``fn`` on rank 0; :class:`RankError` with its
        message on the other ranks.
    """
    rank, world_size = dist_info()
    if world_size == 1:
        return fn()
    box = [None, None]
    error = None
    if rank == 0:
        try:
            box[0] = fn()
        except Exception as e:  # noqa: B902 (re-raised on every rank)
            error = e
            box[1] = _describe(e)
    broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if box[1] is not None:
        raise RankError(f'rank 0 failed: {box[1]}')
    return box[0]


def gather_chunks(num_chunks: int, get_chunk: Callable[[int], Any],
                  consume: Callable[[int, Any], None]) -> None:
    """Stream every rank's chunks to rank 0, one round of chunks at a time.

    Rank ``r`` offers ``get_chunk(0) .. get_chunk(num_chunks_r - 1)``
    (picklable, e.g. lists of rows; keep them a few MB); rank 0 calls
    ``consume(src_rank, chunk)`` for each, rank 0's own included, in rank
    order within a round. Peak memory is one chunk per rank, not the whole
    result. Every rank must call it.

    Args:
        num_chunks (int): How many chunks this rank has.
        get_chunk (Callable[[int], Any]): Returns this rank's chunk ``i``.
        consume (Callable[[int, Any], None]): Called on rank 0 only.
    """
    rank, world_size = dist_info()
    if world_size == 1:
        for i in range(num_chunks):
            consume(0, get_chunk(i))
        return
    rounds = max(all_gather_object(int(num_chunks)))
    for i in range(rounds):
        chunk = (True, get_chunk(i)) if i < num_chunks else (False, None)
        received = gather_object(chunk, dst=0)
        if rank == 0:
            for src, (present, data) in enumerate(received):
                if present:
                    consume(src, data)
            del received
        del chunk


def sum_over_ranks(value: Any) -> Any:
    """Sum numbers or numpy arrays (same shape on every rank) over ranks.

    ``None`` on a rank counts as nothing (a rank without images).
    """
    _, world_size = dist_info()
    if world_size == 1:
        return value
    values = [v for v in all_gather_object(value) if v is not None]
    if not values:
        return None
    total = values[0]
    for v in values[1:]:
        total = total + v  # ints stay ints (JSON), arrays add elementwise
    return total


def advance_progress(bar, position: int, total: int) -> None:
    """Move rank 0's progress bar after it finished image ``position`` of
    ``total``: ranks work in lockstep, so about ``position + world_size``
    images are done (never more than ``total``). No-op if ``bar`` is None.
    """
    if bar is None:
        return
    done = min(position + dist_info()[1], total)
    if done > bar.completed:
        bar.update(done - bar.completed)


def chunk_bounds(sizes: Sequence[int], max_bytes: int = 8 << 20) -> list:
    """Split consecutive records of ``sizes`` bytes into ``[start, stop)``
    ranges of at most ``max_bytes`` (a larger record gets a range alone).
    """
    bounds, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > max_bytes:
            bounds.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        bounds.append((start, len(sizes)))
    return bounds


__all__ = [
    'RankError', 'dist_info', 'is_main_process', 'shard', 'sync_errors',
    'run_on_main', 'gather_chunks', 'sum_over_ranks', 'chunk_bounds',
    'advance_progress', 'barrier'
]
