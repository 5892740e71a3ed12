# Copyright (c) mmseg_ext contributors. All rights reserved.
"""The compiled (numba) RLE path decides exactly as the numpy path."""
import numpy as np
import pytest

from mmseg_ext.utils import rle
from mmseg_ext.utils.errors import InputError

pytest.importorskip('numba')


@pytest.fixture
def numpy_only(monkeypatch):
    """Run a block with the compiled kernels switched off."""

    def run(fn, *args):
        monkeypatch.setattr(rle, '_kernels', False)
        try:
            return fn(*args)
        finally:
            monkeypatch.setattr(rle, '_kernels', None)

    return run


def test_kernels_are_used():
    assert rle._get_kernels() is not None


@pytest.mark.parametrize('shape', [(1, 1), (3, 5), (7, 8), (16, 16),
                                   (63, 65), (224, 224)])
@pytest.mark.parametrize('density', [0.0, 0.01, 0.3, 0.5, 0.97, 1.0])
def test_encode_decode_agree(shape, density, numpy_only):
    rng = np.random.default_rng([shape[0], shape[1], int(density * 100)])
    mask = (rng.random(shape) < density).astype(np.uint8)
    fast = rle.rle_encode(mask)
    assert fast == numpy_only(rle.rle_encode, mask)
    assert rle.rle_encode(mask.astype(bool)) == fast
    assert rle.rle_encode(np.asfortranarray(mask)) == fast
    np.testing.assert_array_equal(rle.rle_decode(fast, shape), mask)
    np.testing.assert_array_equal(
        numpy_only(rle.rle_decode, fast, shape), mask)


def test_encode_more_runs_than_the_first_buffer():
    # > 2,048 runs: the kernel scans a second time into an exact buffer.
    mask = np.zeros(20000, np.uint8)
    mask[::4] = 1
    text = rle.rle_encode(mask)
    assert len(text.split()) == 2 * 5000
    np.testing.assert_array_equal(rle.rle_decode(text, (20000, )), mask)


def test_touching_runs_merge_like_numpy(numpy_only):
    np.testing.assert_array_equal(
        rle.rle_decode('1 2 3 2', (2, 3)),
        numpy_only(rle.rle_decode, '1 2 3 2', (2, 3)))


@pytest.mark.parametrize('bad,match', [
    ('1 2 3', 'even number'),
    ('0 2', 'start 0'),
    ('1 0', 'length 0'),
    ('3 2 1 1', 'overlap or are out of order'),
    ('1 2 2 1', 'overlap or are out of order'),
    ('1 100', 'beyond the mask'),
    ('a 1', "token 0 .*got 'a'"),
    ('-1 2', "token 0 .*sign.*got '-1'"),
    ('+1 2', "token 0 .*sign.*got '\\+1'"),
    ('1_0 2', "token 0 .*got '1_0'"),
    ('1 99999999999999999999999', 'too large'),
    ('1 4611686018427387905', 'too large'),  # past the kernel's 2**62
])
def test_invalid_strings_raise_the_numpy_errors(bad, match):
    with pytest.raises(InputError, match=match):
        rle.rle_decode(bad, (4, 4))


def test_non_binary_mask_raises():
    with pytest.raises(ValueError, match='binary'):
        rle.rle_encode(np.array([[0, 2, 1]], np.uint8))
