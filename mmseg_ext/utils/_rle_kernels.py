# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Compiled RLE kernels (numba), used by :mod:`mmseg_ext.utils.rle`.

Imported lazily, only when numba is installed (``pip install numba``, also
in the ``tests`` extra) and ``MMSEG_EXT_RLE_BACKEND`` is not ``'numpy'``.
The numpy code path stays the reference: every kernel returns a status, and
on any problem :mod:`~mmseg_ext.utils.rle` reruns the numpy path, which
raises the detailed error.

Why compiled: a 224 x 224 mask costs the reference encoder ~60 µs, of which
numpy spends ~20 µs on per-call overhead alone; decoding a bone mask of a
few hundred runs costs the reference loop ~0.2 ms, dominated by parsing.
The kernels skip all-zero / all-one 8-byte words, write the digits
themselves and fill runs in one pass.
"""
import numba as nb
import numpy as np

_ONES = np.uint64(0x0101010101010101)
_ZERO = np.uint64(0)
_HIGH_BITS = np.uint64(0xFEFEFEFEFEFEFEFE)
# Index of the single set bit of a power of two: de Bruijn multiplication.
_DEBRUIJN_MUL = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN = np.zeros(64, np.int64)
for _i in range(64):  # Python ints: the product wraps mod 2**64 by hand
    _DEBRUIJN[((((1 << _i) * 0x03F79D71B4CB0A89) & (2**64 - 1)) >> 58)] = _i


@nb.njit(cache=True, nogil=True)
def _write_int(buf, pos, value):
    """Write the decimal digits of ``value >= 0`` at ``buf[pos:]``.

    Unsigned arithmetic: division by the constant 10 compiles to a
    multiply and shift (signed floor division needs sign fix-ups).
    """
    v = np.uint64(value)
    ten = np.uint64(10)
    # count the digits by comparisons (no divisions)
    digits = 1
    bound = np.uint64(10)
    while digits < 20 and v >= bound:
        digits += 1
        bound *= ten
    end = pos + digits
    i = end - 1
    while True:
        buf[i] = np.uint8(48) + np.uint8(v % ten)
        v //= ten
        if v == 0:
            break
        i -= 1
    return end


@nb.njit(cache=True, nogil=True)
def _scan(flat, words, edges, store):
    """Run edges of ``flat``: counted, and written to ``edges`` if ``store``.

    Returns ``(count, bad)``; ``bad`` is the index of a value other than
    0/1, or -1. Edges past ``edges.size`` are counted but not stored (the
    caller then scans again into an exact-size array: growing an array
    inside the loop would make numba reference-count it every iteration).
    """
    n = flat.size
    count = 0
    prev = np.uint8(0)
    fill = _ZERO  # the word a run of `prev` values looks like
    for w in range(words.size):
        word = words[w]
        if word == fill:
            continue
        if word & _HIGH_BITS:  # a byte other than 0/1: find it
            for i in range(w * 8, w * 8 + 8):
                if flat[i] > 1:
                    return count, i
        # byte k of `shifted` is byte k - 1 of the word (byte 0: prev), so
        # the XOR has exactly bit 8k set where a run starts or ends at k
        shifted = (word << np.uint64(8)) | np.uint64(prev)
        x = word ^ shifted
        while x:
            low = x & (~x + np.uint64(1))
            k = _DEBRUIJN[(low * _DEBRUIJN_MUL) >> np.uint64(58)] >> 3
            if store and count < edges.size:
                edges[count] = w * 8 + k
            count += 1
            x ^= low
        prev = np.uint8(word >> np.uint64(56))
        fill = _ONES if prev == 1 else _ZERO
    for i in range(words.size * 8, n):
        v = flat[i]
        if v > 1:
            return count, i
        if v != prev:
            if store and count < edges.size:
                edges[count] = i
            count += 1
            prev = v
    if prev == 1:
        if store and count < edges.size:
            edges[count] = n
        count += 1
    return count, -1


@nb.njit(cache=True, nogil=True)
def encode(flat, words):
    """RLE text of a flat uint8 0/1 mask.

    Args:
        flat: ``(P,)`` uint8.
        words: ``flat[:P // 8 * 8]`` viewed as uint64 (for skipping).

    Returns:
        tuple: ``(buf, length, bad)``: ASCII bytes ``buf[:length]``; ``bad``
        is the index of a value other than 0/1, or -1.
    """
    # One pass into a small buffer; a second, exact one only if it was
    # too small (masks with more than 2,048 runs).
    edges = np.empty(4096, np.int64)
    count, bad = _scan(flat, words, edges, True)
    if bad >= 0:
        return np.empty(0, np.uint8), 0, bad
    if count > edges.size:
        edges = np.empty(count, np.int64)
        _scan(flat, words, edges, True)
    # 'start length ' with at most 20 digits each
    buf = np.empty(max(count * 21, 1), np.uint8)
    pos = 0
    for r in range(0, count, 2):
        if r > 0:
            buf[pos] = 32
            pos += 1
        pos = _write_int(buf, pos, edges[r] + 1)
        buf[pos] = 32
        pos += 1
        pos = _write_int(buf, pos, edges[r + 1] - edges[r])
    return buf, pos, -1


@nb.njit(cache=True, nogil=True)
def decode(text, mask):
    """Parse, validate and fill an RLE given as ASCII bytes into ``mask``.

    Args:
        text: uint8 ASCII codes of the string.
        mask: ``(size,)`` uint8 zeros, filled in place. Made by the caller
            with ``np.zeros`` (calloc: pages the runs never touch are never
            written), which is much cheaper for large masks than zeroing
            here.

    Returns:
        tuple: ``(mask, ok)``: the filled mask and whether the string was
        valid (digits and whitespace only, even count, starts and lengths
        >= 1, runs sorted, disjoint and inside the mask).

    The grammar is the numpy path's, byte for byte: ASCII digits, and as
    separators only space, ``\\t \\n \\v \\f \\r`` (codes 9-13), the
    bytes ``np.fromstring(sep=' ')`` skips; a sign, ``'_'`` or any other
    byte fails (``tests/test_fuzz/test_fuzz_rle.py`` checks both paths
    against a pure-Python reference). Values past ``2**62`` fail before
    they can overflow.
    """
    size = mask.size
    value = 0
    in_number = False
    is_start = True
    start = 0
    last_end = 0
    limit = 1 << 62
    for c in text:
        if 48 <= c <= 57:
            value = value * 10 + (c - 48)
            if value > limit:
                return mask, False
            in_number = True
        elif c == 32 or 9 <= c <= 13:
            if in_number:
                if is_start:
                    if value < 1 or value - 1 < last_end:
                        return mask, False
                    start = value - 1
                else:
                    if value < 1 or start + value > size:
                        return mask, False
                    end = start + value
                    mask[start:end] = 1
                    last_end = end
                is_start = not is_start
                value = 0
                in_number = False
        else:
            return mask, False
    if in_number:
        if is_start:
            return mask, False  # a start without its length
        if value < 1 or start + value > size:
            return mask, False
        mask[start:start + value] = 1
        is_start = True
    return mask, is_start
