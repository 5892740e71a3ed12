# Copyright (c) mmseg_ext contributors. All rights reserved.
"""Fuzzing the competition RLE on both backends against a pure-Python
reference: random masks round-trip; random and mutated strings decode to
what the reference says, or raise InputError when the reference rejects."""
import contextlib

import numpy as np
import pytest

from mmseg_ext.utils import rle
from mmseg_ext.utils.errors import InputError

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=60, deadline=None, derandomize=True)
BACKENDS = ['numpy'] + (['compiled'] if rle._get_kernels() else [])
WHITESPACE = ' \t\n\r\v\f'


@contextlib.contextmanager
def backend(name):
    """The compiled kernels on (when installed) or off."""
    saved = rle._kernels
    rle._kernels = None if name == 'compiled' else False
    try:
        yield
    finally:
        rle._kernels = saved


def ref_encode(mask):
    """The competitions' encoder, verbatim."""
    pixels = np.concatenate([[0], mask.flatten(), [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return ' '.join(str(x) for x in runs)


def ref_decode(text, size):
    """Pure-Python decoder of the strict grammar: a list of 0/1, or None
    for an invalid string."""
    tokens, current = [], ''
    for ch in text:
        if ch in WHITESPACE:
            if current:
                tokens.append(current)
            current = ''
        elif ch in '0123456789':
            current += ch
        else:
            return None
    if current:
        tokens.append(current)
    if len(tokens) % 2:
        return None
    out, prev_end = [0] * size, 0
    for i in range(0, len(tokens), 2):
        start, length = int(tokens[i]), int(tokens[i + 1])
        if start < 1 or length < 1 or start - 1 < prev_end or \
                start - 1 + length > size:
            return None
        out[start - 1:start - 1 + length] = [1] * length
        prev_end = start - 1 + length
    return out


def check_against_reference(text, shape):
    size = int(np.prod(shape))
    expected = ref_decode(text, size)
    for name in BACKENDS:
        with backend(name):
            if expected is None:
                for call in (lambda: rle.rle_decode(text, shape),
                             lambda: rle.parse_rle(text, size),
                             lambda: rle.rle_area(text, size)):
                    with pytest.raises(InputError):
                        call()
            else:
                got = rle.rle_decode(text, shape)
                assert got.shape == tuple(shape) and got.dtype == np.uint8
                assert got.reshape(-1).tolist() == expected, (name, text)
                assert rle.rle_area(text, size) == sum(expected)


shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))


@st.composite
def masks(draw):
    h, w = draw(shapes)
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return (rng.random((h, w)) < density).astype(np.uint8)


@FUZZ
@given(masks())
def test_masks_round_trip_on_both_backends(mask):
    expected = ref_encode(mask)
    for name in BACKENDS:
        with backend(name):
            text = rle.rle_encode(mask)
            assert text == expected
            np.testing.assert_array_equal(rle.rle_decode(text, mask.shape),
                                          mask)


# Characters that int() or str.split() treat differently from the grammar.
ALPHABET = list('0123456789') * 3 + list(WHITESPACE) + [
    '+', '-', '_', '.', 'x', ',', '\x1c', '\u00a0', '\u2003', '٣', '５', '¹'
]


@FUZZ
@given(st.text(st.sampled_from(ALPHABET), max_size=30), shapes)
def test_random_strings_match_the_reference(text, shape):
    check_against_reference(text, shape)


MUTATIONS = ['insert', 'delete', 'replace', 'swap', 'drop_token',
             'dup_token', 'shift']


@FUZZ
@given(masks(), st.lists(st.tuples(st.sampled_from(MUTATIONS),
                                   st.integers(0, 10**6),
                                   st.sampled_from(ALPHABET + ['1_0', '+3',
                                                               '0', '99'])),
                         min_size=1, max_size=3))
def test_mutated_valid_strings_match_the_reference(mask, mutations):
    text = ref_encode(mask)
    for kind, pos, piece in mutations:
        tokens = text.split(' ')
        if kind == 'insert':
            i = pos % (len(text) + 1)
            text = text[:i] + piece + text[i:]
        elif kind == 'delete' and text:
            i = pos % len(text)
            text = text[:i] + text[i + 1:]
        elif kind == 'replace' and text:
            i = pos % len(text)
            text = text[:i] + piece + text[i + 1:]
        elif kind == 'swap' and len(tokens) > 1:
            i = pos % (len(tokens) - 1)
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
            text = ' '.join(tokens)
        elif kind == 'drop_token' and tokens:
            del tokens[pos % len(tokens)]
            text = ' '.join(tokens)
        elif kind == 'dup_token' and tokens:
            i = pos % len(tokens)
            tokens.insert(i, tokens[i])
            text = ' '.join(tokens)
        elif kind == 'shift' and tokens and tokens[0]:
            i = pos % len(tokens)
            if tokens[i].isdigit():
                tokens[i] = str(int(tokens[i]) + pos % 3 - 1)
            text = ' '.join(tokens)
    check_against_reference(text, mask.shape)


@FUZZ
@given(st.one_of(st.none(), st.integers(), st.binary(max_size=8),
                 st.lists(st.integers(), max_size=4)))
def test_non_strings_raise_input_error(value):
    for name in BACKENDS:
        with backend(name):
            with pytest.raises(InputError, match='should be a str'):
                rle.rle_decode(value, (2, 2))
