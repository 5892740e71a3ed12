# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Run-length encoding in the format of segmentation competitions.

The mask is flattened row-major (C order); the string lists ``start length``
pairs, 1-indexed, separated by single spaces; an empty mask is the empty
string. This is what the hand-bone and the building-footprint competitions
(and Kaggle's) read, and what their reference encoder writes::

    pixels = np.concatenate([[0], mask.flatten(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    ' '.join(str(x) for x in runs)

:func:`rle_encode` returns the same string for every binary mask: it finds
the edges on the uint8 mask (no int64 copy, no padded copy) and formats the
numbers by gathering cached decimal strings (values below ``2**16``: all of
a 224 x 224 mask, the run lengths of larger ones) instead of one ``str`` per
numpy scalar.

**Grammar** (strict: the competitions' parsers, not Python's ``int()``):
tokens of ASCII digits ``0-9`` separated by ASCII whitespace, an even
number of them, read as ``start length`` pairs with both ``>= 1``, runs
sorted and disjoint (a run may start where the previous ends) and inside
the mask. A sign (``'+3'``), ``'_'`` (``int('1_0') == 10``), non-ASCII
digits or spaces, ``'1.5'`` or ``'0x10'`` are errors. Every violation
raises :class:`mmseg_ext.utils.errors.InputError` (a ``ValueError``)
naming the token or run and its value; readers of files holding RLEs add
the file, line and field with :meth:`InputError.located`.

:func:`parse_rle` / :func:`rle_decode` parse with ``np.fromstring`` (C
speed) once the string is known to hold only ASCII digits and whitespace;
any other string is invalid and a token-by-token pass names the first bad
token. The runs are then validated (an odd count, a start or length < 1,
runs out of order or overlapping, runs past the end).
:func:`rle_decode` fills the runs without a Python loop, choosing by the
number of runs ``R`` against the mask size ``P``:

- ``R <= P / 16`` (real masks: bones, buildings): ``np.repeat`` of the
  alternating values 0/1 by the gap and run lengths writes the mask in one
  pass at ``memset`` speed;
- more runs (noise-like masks): toggles at every start and end and a
  running XOR (``np.bitwise_xor.accumulate``), whose cost does not grow with
  ``R``.

**Compiled path.** With numba installed (``pip install mmseg_ext[fast]``;
the ``tests`` extra has it) both functions first run the kernels of
:mod:`mmseg_ext.utils._rle_kernels`: the encoder skips all-zero / all-one
8-byte words and writes the digits itself, the decoder parses and fills in
one pass. They decide exactly as the numpy path (tested on random masks
and strings); on an invalid input they hand over to the numpy path, which
raises the detailed error. ``MMSEG_EXT_RLE_BACKEND=numpy`` turns them off.
The first call in a process imports numba and loads the cached machine
code (compiled once, ~2 s, then cached next to the module).

See ``benchmarks/bench_rle.py`` for the speed against the reference
encoder and the reference loop decoder.
"""
import os
import re
from typing import Sequence, Tuple

import numpy as np

from .errors import InputError

# Bytes allowed on the fast parsing path: digits and ASCII whitespace.
_DIGITS_AND_SPACE = b'0123456789 \t\n\r\v\f'
# The same whitespace as a separator, for naming a bad token (str.split()
# would also split at non-ASCII and \x1c-\x1f spaces).
# Values from here on are reported as too large rather than by position.
_TOO_LARGE = 1 << 62
_SPLIT = re.compile('[ \t\n\r\v\f]+')
# Above this many runs per pixel, decode with the XOR pass (see module doc).
_XOR_RUNS_PER_PIXEL = 1 / 16
# Decimal strings of 0 .. 2**16 - 1 as an object array, built on first use
# (about 4 MB): every value of a 224 x 224 mask, and every run length of
# most larger masks, is formatted by a C gather instead of int.__repr__.
_NUM_STR_SIZE = 1 << 16
_num_strs = None

# Compiled kernels (numba) when installed; see _rle_kernels. None: not
# looked up yet; False: unavailable or disabled by
# MMSEG_EXT_RLE_BACKEND=numpy.
_kernels = None


def _get_kernels():
    """The numba kernels module, or None (numpy path)."""
    global _kernels
    if _kernels is None:
        _kernels = False
        if os.environ.get('MMSEG_EXT_RLE_BACKEND', 'auto') != 'numpy':
            try:
                from . import _rle_kernels
                _kernels = _rle_kernels
            except ImportError:
                pass
    return _kernels or None


def _format_ints(values: np.ndarray) -> str:
    """``' '.join(str(v) for v in values)`` for non-negative int64 values.
    """
    global _num_strs
    if _num_strs is None:
        _num_strs = np.array([str(i) for i in range(_NUM_STR_SIZE)],
                             dtype=object)
    small = values < _NUM_STR_SIZE
    if small.all():
        return ' '.join(_num_strs[values].tolist())
    strs = np.empty(values.size, dtype=object)
    strs[small] = _num_strs[values[small]]
    big = ~small
    strs[big] = list(map(str, values[big].tolist()))
    return ' '.join(strs.tolist())


def _flat_binary(mask: np.ndarray) -> np.ndarray:
    """Flatten ``mask`` row-major into a uint8 array of 0/1 (a view if bool
    or uint8 and contiguous)."""
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        return np.ascontiguousarray(mask).reshape(-1).view(np.uint8)
    flat = np.ascontiguousarray(mask).reshape(-1)
    if flat.size:
        if flat.dtype.kind not in 'biuf':
            raise ValueError('`mask` should be bool or numeric with values '
                             f'in {{0, 1}}, but got dtype {flat.dtype}')
        hi = flat.max()
        lo = 0 if flat.dtype.kind in 'bu' else flat.min()
        if lo < 0 or hi > 1 or (flat.dtype.kind == 'f' and
                                not np.array_equal(flat, flat.round())):
            raise ValueError(
                '`mask` should be binary (bool, or values in {0, 1}), but '
                f'got values in [{lo}, {hi}] (dtype {flat.dtype}); '
                'threshold it first (e.g. `mask > 0`)')
    return flat.astype(np.uint8, copy=False)


def _edges(flat: np.ndarray) -> np.ndarray:
    """0-indexed positions where runs start and end (exclusive), alternating.

    Args:
        flat (np.ndarray): ``(P,)`` uint8 0/1.

    Returns:
        np.ndarray: int64 ``[s0, e0, s1, e1, ...]``.
    """
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    edges += 1
    head, tail = flat[0] == 1, flat[-1] == 1
    if head or tail:
        edges = np.concatenate(([0] if head else [], edges,
                                [flat.size] if tail else [])).astype(
                                    np.int64, copy=False)
    return edges


def rle_runs(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """1-indexed run starts and lengths of a binary mask (row-major).

    Args:
        mask (np.ndarray): Binary mask of any shape (usually ``(H, W)``).

    Returns:
        tuple[np.ndarray, np.ndarray]: int64 ``starts`` and ``lengths``.

    Raises:
        ValueError: if ``mask`` holds values other than 0 and 1.
    """
    edges = _edges(_flat_binary(mask))
    starts = edges[0::2]
    return starts + 1, edges[1::2] - starts


def rle_encode(mask: np.ndarray) -> str:
    """Encode a binary mask as ``'start length start length ...'``.

    Args:
        mask (np.ndarray): Binary mask ``(H, W)`` (bool or {0, 1}).

    Returns:
        str: 1-indexed, row-major ``start length`` pairs; ``''`` if empty.

    Raises:
        ValueError: if ``mask`` holds values other than 0 and 1.

    Examples:
        >>> rle_encode(np.array([[0, 1, 1], [0, 0, 1]]))
        '2 2 6 1'
    """
    kernels = _get_kernels()
    if kernels is not None:
        mask = np.asarray(mask)
        if mask.dtype in (np.uint8, np.bool_) and mask.flags.c_contiguous:
            flat = mask.reshape(-1).view(np.uint8)  # validated by the kernel
        else:
            flat = _flat_binary(mask)
        words = flat[:flat.size // 8 * 8].view(np.uint64)
        buf, length, bad = kernels.encode(flat, words)
        if bad < 0:
            return buf[:length].tobytes().decode('ascii')
        # a value other than 0/1: the numpy path below raises the error
    edges = _edges(_flat_binary(mask))
    if edges.size == 0:
        return ''
    edges[1::2] -= edges[0::2]  # ends -> lengths
    edges[0::2] += 1  # 0-indexed -> 1-indexed starts
    return _format_ints(edges)


def _token_error(index: int, token: str) -> InputError:
    """The error for token ``index`` of an RLE, which is not ASCII digits."""
    role = 'start' if index % 2 == 0 else 'length'
    if '_' in token:
        why = ("Python's int() reads '_' as a digit separator, the "
               "competition's grammar does not")
    elif token[:1] in '+-':
        why = 'a sign is not allowed'
    elif not token.isascii():
        why = 'non-ASCII characters: digits or spaces'
    else:
        why = 'characters other than the digits 0-9'
    return InputError(
        where=f'RLE token {index} ({role} of run {index // 2})',
        reason=f'not a plain positive integer ({why})',
        value=token,
        expected='ASCII digits 0-9 only, tokens separated by spaces')


def _parse_values(rle: str) -> np.ndarray:
    """The integers of ``rle`` as an int64 array (not yet validated).

    Grammar: tokens of ASCII digits separated by ASCII whitespace (space,
    tab, newline, CR, VT, FF; leading and trailing allowed). Anything else
    (a sign, ``'_'``, non-ASCII digits or spaces, ``'1.5'``, ``'0x10'``) is
    an :class:`InputError` naming the token, which ``int()`` would
    sometimes have read (``int('1_0') == 10``).
    """
    if not isinstance(rle, str):
        raise InputError(reason='an RLE should be a str', value=rle,
                         expected="a str of 'start length' pairs ('' for "
                         'an empty mask)')
    if rle.isascii():
        data = rle.encode('ascii')
        if not data.translate(None, _DIGITS_AND_SPACE):
            # Only digits and whitespace: np.fromstring reads exactly the
            # whitespace-separated tokens (it would read a whitespace-only
            # string as [0], hence the strip). A token past int64 saturates
            # and fails the range check.
            if not data.strip():
                return np.zeros(0, dtype=np.int64)
            return np.fromstring(data, sep=' ', dtype=np.int64)
    # Some character is neither an ASCII digit nor ASCII whitespace, so
    # some token is bad: name the first one.
    for i, token in enumerate(t for t in _SPLIT.split(rle) if t):
        if not (token.isascii() and token.isdigit()):
            raise _token_error(i, token)
    raise AssertionError('unreachable: a bad character outside any token')


def _run_error(index: int, message: str, value) -> InputError:
    return InputError(message, where=f'RLE run {index}', value=value)


def _validate(values: np.ndarray, size: int):
    """Check ``start length`` pairs against a mask of ``size`` pixels.

    Returns:
        tuple: int64 ``(starts, ends, lengths, gaps)``: 0-indexed starts,
        exclusive ends, lengths and the ``R - 1`` gaps between runs.
    """
    if values.size % 2:
        raise InputError(
            f'an RLE should have an even number of values (start length '
            f'pairs), but got {values.size}', where=f'RLE token '
            f'{values.size - 1}', value=int(values[-1]),
            expected='start length pairs')
    starts, lengths = values[0::2], values[1::2]
    if values.size == 0:
        return starts, starts, lengths, starts
    if values.min() < 1:
        if (starts < 1).any():
            i = int(np.flatnonzero(starts < 1)[0])
            raise _run_error(
                i, f'RLE run {i} has start {starts[i]}; starts are '
                '1-indexed and should be >= 1', int(starts[i]))
        i = int(np.flatnonzero(lengths < 1)[0])
        raise _run_error(
            i, f'RLE run {i} has length {lengths[i]}; lengths should be '
            '>= 1', int(lengths[i]))
    if values.max() > size:  # checked before any sum can overflow
        if values.max() >= _TOO_LARGE:  # np.fromstring saturates at 2**63
            i = int(np.flatnonzero(values >= _TOO_LARGE)[0])
            raise InputError(
                where=f'RLE token {i} ({("start", "length")[i % 2]} of run '
                f'{i // 2})', reason='too large for a pixel index',
                expected=f'a value <= {size} (the mask has {size} pixels)')
        i = int(np.flatnonzero((starts > size) | (lengths > size))[0])
        end = int(starts[i]) - 1 + int(lengths[i])
        raise _run_error(
            i, f'RLE run {i} ends at pixel {end}, beyond the mask of {size} '
            'pixels', (int(starts[i]), int(lengths[i])))
    starts = starts - 1
    ends = starts + lengths
    gaps = starts[1:] - ends[:-1]
    if gaps.size and gaps.min() < 0:
        i = int(np.flatnonzero(gaps < 0)[0])
        raise _run_error(
            i + 1,
            f'RLE runs {i} and {i + 1} overlap or are out of order (run {i} '
            f'covers pixels {starts[i] + 1}..{ends[i]}, run {i + 1} starts at '
            f'{starts[i + 1] + 1}); runs should be sorted and disjoint',
            int(starts[i + 1] + 1))
    if ends[-1] > size:
        i = starts.size - 1
        raise _run_error(
            i, f'RLE run {i} ends at pixel {ends[-1]}, beyond the mask of '
            f'{size} pixels', (int(starts[i] + 1), int(lengths[i])))
    return starts, ends, lengths, gaps


def parse_rle(rle: str, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Parse and validate an RLE string into 0-indexed ``starts``, ``ends``.

    Args:
        rle (str): ``'start length ...'``, 1-indexed; ``''`` (or only
            whitespace) for empty.
        size (int): Number of pixels of the mask (``H * W``).

    Returns:
        tuple[np.ndarray, np.ndarray]: int64 0-indexed starts and exclusive
        ends, sorted and non-overlapping.

    Raises:
        InputError: (a ``ValueError``) naming the problem, the token or run
            and its value: not a string, a token that is not ASCII digits,
            an odd count, a start < 1 or a length < 1, runs out of order or
            overlapping, or a run past pixel ``size``.
    """
    starts, ends, _, _ = _validate(_parse_values(rle), int(size))
    return starts, ends


def rle_decode(rle: str, shape: Sequence[int]) -> np.ndarray:
    """Decode an RLE string into a uint8 mask of ``shape``.

    Args:
        rle (str): ``'start length ...'``, 1-indexed, row-major; ``''`` (or
            whitespace) decodes to an empty mask.
        shape (Sequence[int]): ``(H, W)`` of the mask.

    Returns:
        np.ndarray: ``shape`` uint8 mask of 0/1.

    Raises:
        InputError: for an invalid string (see :func:`parse_rle`).

    Examples:
        >>> rle_decode('2 2 6 1', (2, 3))
        array([[0, 1, 1],
               [0, 0, 1]], dtype=uint8)
    """
    shape = tuple(int(s) for s in shape)
    size = int(np.prod(shape))
    kernels = _get_kernels()
    if kernels is not None and isinstance(rle, str) and rle.isascii():
        mask, ok = kernels.decode(
            np.frombuffer(rle.encode('ascii'), dtype=np.uint8),
            np.zeros(size, dtype=np.uint8))
        if ok:
            return mask.reshape(shape)
        # invalid: the numpy path below raises the detailed error
    starts, ends, lengths, gaps = _validate(_parse_values(rle), size)
    num_runs = starts.size
    if num_runs == 0:
        return np.zeros(shape, dtype=np.uint8)
    if num_runs > size * _XOR_RUNS_PER_PIXEL:
        # Toggle at each start and end, then a running XOR. Starts are
        # distinct, and so are ends; where a run ends exactly where the
        # next starts the two toggles cancel and the runs merge.
        toggles = np.zeros(size + 1, dtype=np.uint8)
        toggles[starts] = 1
        toggles[ends] ^= 1
        mask = np.bitwise_xor.accumulate(toggles[:size])
    else:
        # Lengths of the alternating segments gap, run, gap, ..., run, gap.
        counts = np.empty(2 * num_runs + 1, dtype=np.int64)
        counts[0] = starts[0]
        counts[1::2] = lengths
        counts[2:-1:2] = gaps
        counts[-1] = size - ends[-1]
        values = np.zeros(counts.size, dtype=np.uint8)
        values[1::2] = 1
        mask = np.repeat(values, counts)
    return mask.reshape(shape)


def rle_area(rle: str, size: int) -> int:
    """Number of foreground pixels of an RLE, without decoding it.

    Args:
        rle (str): ``'start length ...'``.
        size (int): ``H * W`` of the mask, for validation.

    Returns:
        int: Sum of the run lengths.

    Raises:
        InputError: for an invalid string (see :func:`parse_rle`).
    """
    _, _, lengths, _ = _validate(_parse_values(rle), int(size))
    return int(lengths.sum())
